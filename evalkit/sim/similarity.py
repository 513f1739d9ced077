"""How the simulated judge measures closeness of two answers — the simulator's own, not evalkit's metrics.

Text: SQuAD-style token F1 (lower-case, ASCII punctuation and the articles a/an/the removed). JSON objects:
F1 over their flattened ``path = value`` leaves, values compared as normalised text. The simulator stands in
for a model; it deliberately shares no code with the scoring it is used to test.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any

_DROP = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _words(text: str) -> list[str]:
    return _ARTICLES.sub(" ", text.lower().translate(_DROP)).split()


def _f1(left: Counter[Any], right: Counter[Any]) -> float:
    if not left or not right:
        return float(left == right)
    common = sum((left & right).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(left.values()), common / sum(right.values())
    return 2 * precision * recall / (precision + recall)


def token_overlap(candidate: str, reference: str) -> float:
    return _f1(Counter(_words(candidate)), Counter(_words(reference)))


def _leaves(value: Any, path: str = "") -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(_leaves(item, f"{path}.{key}" if path else str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out.update(_leaves(item, f"{path}[{index}]"))
    else:
        out[(path, " ".join(_words(str(value))))] += 1
    return out


def field_overlap(candidate: dict[str, Any], reference: dict[str, Any]) -> float:
    return _f1(_leaves(candidate), _leaves(reference))
