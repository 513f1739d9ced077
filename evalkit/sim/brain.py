"""The simulated models' minds: small local classifiers of different capacity that compute each answer.

Nothing here is a recorded or invented "Claude output". Every answer is computed from the request:

* the label set comes from the request's JSON schema (the ``enum`` of the label property), or failing
  that from the labels listed in the system prompt;
* a scikit-learn model trained on a labelled corpus (from ``[simulator]`` in evalkit.toml, never the rows
  being evaluated) scores the user message; the tier decides its capacity: ``small`` sees a fraction of
  the corpus through a bag of a few hundred binary word features (Naive Bayes), ``large`` through word
  and character n-grams (logistic regression);
* with no matching corpus, a lexical model scores labels by the words their descriptions share with
  the message (weak, but still computed);
* labels the system prompt neither names nor describes are penalised, so prompt edits change answers
  the way a real prompt change can;
* the answer is *sampled* from the tier's tempered distribution with a seed derived from the request
  (and ``metadata.user_id``, which callers use to ask for an independent repeat), so it is reproducible
  yet noisy like a real model, and its self-reported confidence is the
  probability of the answer it gave, overstated by the small tier (small models are over-confident).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalkit import media
from evalkit.config import SimCorpus
from evalkit.datasets import _matches
from evalkit.modelinfo import default_effort
from evalkit.sim import writer
from evalkit.sim.tokens import content_text, output_format, system_texts
from evalkit.tabular import read_table

_WORD = re.compile(r"[a-z][a-z0-9']+")


@dataclass(frozen=True)
class TierProfile:
    """Capacity and behaviour of one simulated model size."""

    train_fraction: float
    temperature: float  # >1 flattens the distribution the answer is sampled from
    overconfidence: float  # reported confidence = p ** overconfidence (<1 overstates it)
    confidence_step: float  # how finely the model states its confidence
    escalate_below: float
    reason_words: int


#: How much more deliberate each effort level makes a simulated model: its sampling temperature is
#: scaled by this (a longer thought settles on the model's best answer more often). Low effort, or no
#: thinking, is the tier's own temperature.
EFFORT_FOCUS: dict[str, float] = {"low": 1.0, "medium": 0.85, "high": 0.7, "xhigh": 0.6, "max": 0.5}

TIERS: dict[str, TierProfile] = {
    "small": TierProfile(1.0, 0.35, 0.6, 0.05, 0.5, 2),
    "medium": TierProfile(1.0, 0.3, 0.55, 0.05, 0.45, 3),
    "large": TierProfile(1.0, 0.15, 0.45, 0.01, 0.4, 3),
}


def _build_classifier(tier: str) -> Any:
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import FeatureUnion, make_pipeline

    if tier == "small":
        return make_pipeline(CountVectorizer(max_features=500, binary=True, stop_words="english"),
                             MultinomialNB(alpha=1.0))
    if tier == "medium":
        return make_pipeline(TfidfVectorizer(max_features=3000, sublinear_tf=True),
                             LogisticRegression(C=10.0, max_iter=2000))
    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2)),
    ])
    return make_pipeline(features, LogisticRegression(C=30.0, max_iter=3000))


def read_corpus(corpus: SimCorpus, root: Path) -> tuple[list[str], list[str]]:
    """(texts, labels) of a corpus's rows after its ``where`` filter, in a fixed order (by the first
    column) so training does not depend on how the file happens to be sorted."""
    path = Path(corpus.path)
    path = path if path.is_absolute() else root / path
    rows = read_table(path, keep=lambda row: _matches(row, corpus.where)).rows
    if rows:
        first = next(iter(rows[0]))
        rows.sort(key=lambda row: (str(type(row.get(first))), row.get(first)))
    texts = [str(row.get(corpus.text_column)) for row in rows]
    return texts, [str(row.get(corpus.label_column)) for row in rows]





#: Trained classifiers shared by every simulator of this process, keyed by corpus content hash, tier (and
#: its profile) and seed. Training is deterministic in those, so a new SimulatorState (one per run, and
#: many per test session) reuses the same fitted model instead of spending seconds fitting an identical one.
_TrainedKey = tuple[str, str, TierProfile, int]
_TRAINED: dict[_TrainedKey, Any] = {}
_TRAINED_LOCKS: dict[_TrainedKey, threading.Lock] = {}
_TRAINED_GUARD = threading.Lock()


def _content_hash(texts: list[str], labels: list[str]) -> str:
    return hashlib.sha256(json.dumps([texts, labels], ensure_ascii=False).encode()).hexdigest()


class CorpusModels:
    """One labelled corpus and its per-tier classifiers (trained on first use, once per process)."""

    def __init__(self, texts: list[str], labels: list[str], seed: int) -> None:
        self.texts = texts
        self.labels = labels
        self.label_set = frozenset(labels)
        self.seed = seed
        self.content_hash = _content_hash(texts, labels)

    def model(self, tier: str) -> Any:
        key = (self.content_hash, tier, TIERS[tier], self.seed)
        with _TRAINED_GUARD:
            lock = _TRAINED_LOCKS.setdefault(key, threading.Lock())
        with lock:  # per key: one corpus training does not hold up another's
            if key not in _TRAINED:
                _TRAINED[key] = self._train(tier)
            return _TRAINED[key]

    def _train(self, tier: str) -> Any:
        profile = TIERS[tier]
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(self.texts))
        # Keep every label represented even in the small tier's subset.
        keep = max(len(self.label_set) * 2, int(round(profile.train_fraction * len(order))))
        chosen: list[int] = []
        seen: set[str] = set()
        for index in order:
            if self.labels[index] not in seen:
                chosen.append(int(index))
                seen.add(self.labels[index])
        for index in order:
            if len(chosen) >= keep:
                break
            if int(index) not in chosen:
                chosen.append(int(index))
        classifier = _build_classifier(tier)
        classifier.fit([self.texts[i] for i in chosen], [self.labels[i] for i in chosen])
        return classifier


@dataclass(frozen=True)
class Thought:
    """What the simulated model concluded for one request."""

    label: str
    probability: float
    confidence: float
    escalate: bool
    evidence: list[str]
    distribution: dict[str, float]


class Brain:
    """Answers classification-style requests for any simulated model id."""

    def __init__(self, corpora: list[tuple[list[str], list[str]]], seed: int) -> None:
        self.seed = seed
        self.corpora = [CorpusModels(texts, labels, seed) for texts, labels in corpora]

    @classmethod
    def from_settings(cls, corpora: list[SimCorpus], root: Path, seed: int) -> Brain:
        return cls([read_corpus(corpus, root) for corpus in corpora], seed)

    # -- request understanding -------------------------------------------------------------------
    @staticmethod
    def schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
        fmt = output_format(body)
        schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
        return schema if isinstance(schema, dict) else None

    @staticmethod
    def answer_keys(schema: dict[str, Any] | None
                    ) -> tuple[str, list[str], str | None, str | None, list[str]]:
        """(label key, labels, confidence key, escalate key, other string keys) from the schema."""
        if schema is None:
            return "label", [], "confidence", "escalate", []
        labels: list[str]
        label_key, labels, confidence_key, escalate_key, others = "label", [], None, None, []
        for key, prop in (schema.get("properties") or {}).items():
            kind = prop.get("type")
            if "enum" in prop and not labels:
                label_key, labels = key, [str(v) for v in prop["enum"]]
            elif kind == "number" and confidence_key is None:
                confidence_key = key
            elif kind == "boolean" and escalate_key is None:
                escalate_key = key
            elif kind == "string":
                others.append(key)
        return label_key, labels, confidence_key, escalate_key, others

    @staticmethod
    def labels_from_system(system: str) -> list[str]:
        """Labels listed in a prompt as ``- label: description`` or ``- label`` lines."""
        return re.findall(r"^\s*[-*]\s*`?([A-Za-z][\w-]*)`?\s*(?::|—|-|$)", system, flags=re.MULTILINE)

    # -- thinking ----------------------------------------------------------------------------------
    def think(self, *, model: str, tier: str, system: str, user: str, labels: list[str],
              occurrence: int = 0, effort: str | None = None) -> Thought:
        profile = TIERS[tier]
        corpus = self._best_corpus(labels)
        if corpus is not None:
            classifier = corpus.model(tier)
            known = list(classifier.classes_)
            probs = classifier.predict_proba([user])[0]
            raw = {label: float(probs[known.index(label)]) if label in known else 1e-3 for label in labels}
            evidence = self._evidence(classifier, user, profile.reason_words)
        else:
            raw = self._lexical(system, user, labels)
            evidence = []
        raw = self._prompt_awareness(system, raw)
        distribution = self._temper(raw, profile.temperature * EFFORT_FOCUS.get(effort or "low", 1.0))
        rng = np.random.default_rng(self._stream(model, system, user, occurrence))
        names = list(distribution)
        label = names[int(rng.choice(len(names), p=np.array([distribution[n] for n in names])))]
        # The model's own sense of certainty: its probability for the answer it gave, stated with the
        # tier's bias (the small model overstates it, the large one is close to calibrated).
        probability = _normalise(raw)[label]
        confidence = probability ** profile.overconfidence
        step = profile.confidence_step
        confidence = min(1.0, max(0.0, round(round(confidence / step) * step, 4)))
        return Thought(label=label, probability=probability, confidence=confidence,
                       escalate=confidence < profile.escalate_below, evidence=evidence,
                       distribution=distribution)

    def _best_corpus(self, labels: list[str]) -> CorpusModels | None:
        best, best_overlap = None, 0
        for corpus in self.corpora:
            overlap = len(corpus.label_set & set(labels))
            if overlap > best_overlap:
                best, best_overlap = corpus, overlap
        return best if best_overlap >= max(2, len(labels) // 2) else None

    def _stream(self, model: str, system: str, user: str, occurrence: int) -> int:
        """The sampling seed: the same request gets the same draw; ``occurrence`` asks for another one."""
        material = json.dumps([self.seed, model, system, user]
                              + ([occurrence] if occurrence else [])).encode()
        return int.from_bytes(hashlib.sha256(material).digest()[:8], "big")

    @staticmethod
    def _temper(raw: dict[str, float], temperature: float) -> dict[str, float]:
        logits = {k: math.log(max(v, 1e-9)) / temperature for k, v in raw.items()}
        top = max(logits.values())
        exp = {k: math.exp(v - top) for k, v in logits.items()}
        return _normalise(exp)

    @staticmethod
    def _prompt_awareness(system: str, raw: dict[str, float]) -> dict[str, float]:
        """A label the instructions never mention is one the model rarely picks."""
        lowered = system.lower()
        return {label: p if label.lower() in lowered else p * 1e-4 for label, p in raw.items()}

    @staticmethod
    def _lexical(system: str, user: str, labels: list[str]) -> dict[str, float]:
        words = set(_WORD.findall(user.lower()))
        scores = {}
        for label in labels:
            description = " ".join(
                line for line in system.lower().splitlines() if label.lower() in line
            ) + " " + label.lower().replace("_", " ")
            shared = words & set(_WORD.findall(description))
            scores[label] = 1.0 + 2.0 * len(shared)
        return _normalise(scores)

    @staticmethod
    def _evidence(classifier: Any, user: str, count: int) -> list[str]:
        """The message's words the model leaned on most, for the answer's reason."""
        vectorizer = classifier.steps[0][1]
        if hasattr(vectorizer, "transformer_list"):
            vectorizer = vectorizer.transformer_list[0][1]
        vocabulary = getattr(vectorizer, "vocabulary_", {})
        words = [w for w in dict.fromkeys(_WORD.findall(user.lower())) if w in vocabulary and len(w) > 3]
        words.sort(key=len, reverse=True)
        return words[:count]


def _normalise(values: dict[str, float]) -> dict[str, float]:
    total = sum(values.values()) or 1.0
    return {k: v / total for k, v in values.items()}


_SCAFFOLD_LINE = re.compile(r"^\s*[A-Za-z][A-Za-z _-]{0,24}:\s*[\w.-]{0,24}\s*$")


def message_content(user: str) -> str:
    """The part of a user turn a model would classify: template scaffolding such as ``Channel: chat`` or
    ``Message:`` lines is dropped (a real model does not take a field label for evidence)."""
    kept = [line for line in user.splitlines() if not _SCAFFOLD_LINE.match(line)]
    return "\n".join(kept).strip() or user


def user_text(body: dict[str, Any]) -> str:
    """The text of the last user turn, with the text of its PDF documents read as a model would (pypdf's
    extraction, before the turn's own text); images contribute nothing (the simulator reads no pixels).
    Blocks up to a cache breakpoint in that turn are the task's shared reference material (static
    documents), not the case at hand, and are left out."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                marks = [i for i, block in enumerate(content)
                         if isinstance(block, dict) and "cache_control" in block]
                content = content[marks[-1] + 1:] if marks else content
            documents = [media.block_text(block) for block in content or []
                         if isinstance(block, dict) and block.get("type") == "document"] \
                if isinstance(content, list) else []
            return "\n".join([*filter(None, documents), *content_text(content)])
    return ""


def system_text(body: dict[str, Any]) -> str:
    return "\n".join(system_texts(body.get("system")))


def compose_answer(brain: Brain, body: dict[str, Any], *, model: str, tier: str,
                   occurrence: int = 0) -> tuple[str, str]:
    """(answer text, thinking text) for a Messages request body."""
    schema = Brain.schema_of(body)
    system, user = system_text(body), user_text(body)
    rng = np.random.default_rng(brain._stream(model, system, user, occurrence))
    properties = (schema or {}).get("properties") or {}
    if properties.get("equivalent", {}).get("type") == "boolean":
        verdict, why = writer.judge(user, tier, rng)
        return json.dumps({"equivalent": verdict, "reason": why}), f"Comparing the answers. {why}"
    if schema is not None and not any("enum" in prop for prop in properties.values()):
        from evalkit.sim.extract import extract  # noqa: PLC0415

        return extract(schema, user, tier, rng)
    if schema is None and re.search(r"summar", system + user[:200], re.IGNORECASE):
        return writer.summarize(user, tier, rng), "Picking the sentences that carry the key facts."
    label_key, labels, confidence_key, escalate_key, others = Brain.answer_keys(schema)
    if not labels:
        labels = Brain.labels_from_system(system)
        if schema is None:
            confidence_key, escalate_key = "confidence", "escalate"
    if not labels:
        # No schema and no label set: a free-text task (the simulator writes extractive summaries).
        return writer.summarize(user, tier, rng), "Picking the sentences that carry the key facts."
    thinking_off = (body.get("thinking") or {}).get("type") == "disabled"
    sent = (body.get("output_config") or {}).get("effort")
    effort = None if thinking_off else sent or default_effort(model)
    thought = brain.think(model=model, tier=tier, system=system, user=message_content(user), labels=labels,
                          occurrence=occurrence, effort=effort)
    answer: dict[str, Any] = {label_key: thought.label}
    if confidence_key:
        answer[confidence_key] = thought.confidence
    if escalate_key:
        answer[escalate_key] = thought.escalate
    reason = (f"Mentions {', '.join(repr(w) for w in thought.evidence)}." if thought.evidence
              else "No strong cue; closest match.")
    for key in others:
        answer[key] = reason
    runner_up = sorted(thought.distribution.items(), key=lambda kv: -kv[1])
    alternatives = ", ".join(f"{k} ({v:.2f})" for k, v in runner_up[:2])
    thinking = (f"The message reads like {thought.label}. Candidates: {alternatives}. "
                f"{reason} Confidence {thought.confidence:.2f}.")
    return json.dumps(answer), thinking

