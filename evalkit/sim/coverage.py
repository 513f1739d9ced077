"""What the simulator can honestly answer: which corpus a label set maps to, and which rows it trained on.

A simulated classifier is only evidence about the pipeline when it learned the task's domain from rows
that are *not* the ones being evaluated. These facts let ``evalkit validate`` and the run's validity gate
refuse the two ways a simulated run silently becomes meaningless: no corpus for the task's labels (the
simulator would guess by word overlap), and evaluated rows that are also training rows (a leak).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evalkit.config import Settings, SimCorpus, SimulatorSettings


def choose_corpus(label_sets: Sequence[frozenset[str]], labels: Iterable[str]) -> int | None:
    """Index of the corpus whose labels overlap the request's most, if it covers enough of them
    (at least two, and at least half): the rule the simulated models answer by."""
    wanted = set(labels)
    best, best_overlap = None, 0
    for index, label_set in enumerate(label_sets):
        overlap = len(label_set & wanted)
        if overlap > best_overlap:
            best, best_overlap = index, overlap
    return best if best_overlap >= max(2, len(wanted) // 2) else None


@dataclass(frozen=True)
class CorpusRows:
    corpus: SimCorpus
    texts: list[str]
    labels: list[str]

    @property
    def label_set(self) -> frozenset[str]:
        return frozenset(self.labels)


def read_corpora(settings: SimulatorSettings, root: Path) -> list[CorpusRows]:
    """Every configured corpus's training rows (after its ``where`` filter)."""
    from evalkit.sim.brain import read_corpus  # noqa: PLC0415 - the simulator only when its corpora are read

    return [CorpusRows(corpus, *read_corpus(corpus, root)) for corpus in settings.corpora]


@dataclass(frozen=True)
class Coverage:
    """How the simulator would answer a task with these labels."""

    corpus: str | None  # the corpus file that answers, or None: no corpus, answers are guesses
    corpus_labels: list[str]
    missing_labels: list[str]  # task labels that corpus never saw
    leaked: list[str]  # evaluated texts (normalised) that are also training rows of some corpus


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def coverage(corpora: Sequence[CorpusRows], labels: Sequence[str], texts: Iterable[str]) -> Coverage:
    chosen = choose_corpus([c.label_set for c in corpora], labels) if labels else None
    corpus = corpora[chosen] if chosen is not None else None
    training = {_normalise(text) for rows in corpora for text in rows.texts}
    leaked = [text for text in texts if _normalise(text) in training]
    return Coverage(
        corpus=corpus.corpus.path if corpus else None,
        corpus_labels=sorted(corpus.label_set) if corpus else [],
        missing_labels=sorted(set(labels) - corpus.label_set) if corpus else sorted(labels),
        leaked=leaked,
    )


@dataclass(frozen=True)
class SimulatorFacts:
    """What the validity gate needs to know about the simulator behind a run."""

    corpus: str | None
    missing_labels: list[str]
    leaked: int

    @classmethod
    def none(cls) -> SimulatorFacts:
        return cls(corpus=None, missing_labels=[], leaked=0)

    @classmethod
    def of(cls, settings: Settings, labels: Sequence[str], texts: Sequence[str]) -> SimulatorFacts:
        """Read from this project's ``[simulator]`` settings (a served simulator is assumed to share them)."""
        found = coverage(read_corpora(settings.simulator, settings.root), labels, texts)
        return cls(corpus=found.corpus, missing_labels=found.missing_labels, leaked=len(found.leaked))
