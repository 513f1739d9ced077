"""Simulated free-text answers: extractive summaries of tier-dependent quality, and equivalence judgements.

Computed from the request like the classifiers in :mod:`evalkit.sim.brain`: the small tier returns the
lead sentences (the classic weak baseline), the large tier ranks sentences by how central and
informative they are (TF-IDF centroid similarity, numbers and names) and keeps the best two in order.
The judge compares two answers with token F1 (or field F1 for JSON) and samples its verdict around a
threshold, less sharply for a small model.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from evalkit.sim.similarity import field_overlap, token_overlap

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
_TAG = re.compile(r"<(reference_answer|candidate_answer)>\n?(.*?)\n?</\1>", re.DOTALL)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if len(s.strip().split()) >= 3]


def _document(user: str) -> str:
    """The text to work on: the user turn minus an instruction line such as 'Summarize this:'."""
    lines = user.strip().splitlines()
    if lines and lines[0].rstrip().endswith(":") and len(lines[0].split()) <= 8:
        lines = lines[1:]
    return "\n".join(lines)


def summarize(user: str, tier: str, rng: np.random.Generator) -> str:
    sentences = _sentences(_document(user))
    if not sentences:
        return _document(user)[:300]
    if tier == "small" or len(sentences) <= 2:
        chosen = sentences[:2]
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer

        matrix = TfidfVectorizer(stop_words="english").fit_transform(sentences)
        centroid = np.asarray(matrix.mean(axis=0))
        scores = (matrix @ centroid.T).ravel()
        for index, sentence in enumerate(sentences):
            scores[index] += 0.05 * len(re.findall(r"\d", sentence)) ** 0.5
            scores[index] += 0.03 * len(re.findall(r"\b[A-Z][a-z]+", sentence[1:]))
        if tier == "medium":
            scores = scores + rng.normal(0, scores.std() or 0.01, len(scores))
        top = sorted(np.argsort(-scores)[:2])
        chosen = [sentences[i] for i in top]
    words = " ".join(chosen).split()
    return " ".join(words[:60])


def judge(user: str, tier: str, rng: np.random.Generator) -> tuple[bool, str]:
    found = dict(_TAG.findall(user))
    reference, candidate = found.get("reference_answer", ""), found.get("candidate_answer", "")
    similarity, how = _similarity(reference, candidate)
    sharpness = {"small": 6.0, "medium": 10.0, "large": 16.0}[tier]
    probability = 1 / (1 + math.exp(-sharpness * (similarity - 0.55)))
    verdict = bool(rng.random() < probability)
    reason = (f"{how} {similarity:.2f}: "
              + ("same key facts." if verdict else "key facts differ or are missing."))
    return verdict, reason


def _similarity(reference: str, candidate: str) -> tuple[float, str]:
    try:
        ref_obj, cand_obj = json.loads(reference), json.loads(candidate)
    except (json.JSONDecodeError, ValueError):
        return token_overlap(candidate, reference), "Token overlap"
    if isinstance(ref_obj, dict) and isinstance(cand_obj, dict):
        return field_overlap(cand_obj, ref_obj), "Field agreement"
    return token_overlap(candidate, reference), "Token overlap"

