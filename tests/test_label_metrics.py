"""evalkit._labelstats gives scikit-learn's confusion matrix, kappa and macro-F1, bit for bit."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from sklearn import metrics as skm

from evalkit import _labelstats as ours

LABELS = ["billing", "bug", "account", "other", "__invalid__"]


def _cases(count: int) -> list[tuple[list[str], list[str], list[str]]]:
    rng = random.Random(22)
    cases = []
    for _ in range(count):
        n = rng.choice([1, 2, 3, 5, 20, 100, 468, 1000])
        k = rng.randint(2, len(LABELS))
        pool = LABELS[:k]
        skew = [rng.random() ** 3 for _ in pool]
        a = rng.choices(pool, weights=skew, k=n)
        agree = rng.random()
        b = [x if rng.random() < agree else rng.choice(pool) for x in a]
        labels = sorted(set(a) | set(b)) if rng.random() < 0.5 else LABELS[: rng.randint(1, len(LABELS))]
        cases.append((a, b, labels))
    return cases


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn warns about one-label inputs; same numbers
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_the_same_bits_as_sklearn() -> None:
    for a, b, labels in _cases(500):
        in_labels = any(x in labels for x in a)
        if in_labels:
            assert np.array_equal(ours.confusion_matrix(a, b, labels=labels),
                                  skm.confusion_matrix(a, b, labels=labels))
            theirs = skm.cohen_kappa_score(a, b, labels=labels, replace_undefined_by=np.nan)
            mine = ours.cohen_kappa_score(a, b, labels=labels, replace_undefined_by=np.nan)
            assert (math.isnan(mine) and math.isnan(theirs)) or mine.hex() == float(theirs).hex(), \
                (a, b, labels)
        else:
            with pytest.raises(ValueError):
                ours.confusion_matrix(a, b, labels=labels)
        theirs_f1 = float(skm.f1_score(a, b, labels=labels, average="macro", zero_division=0))
        assert ours.f1_score(a, b, labels=labels, average="macro", zero_division=0).hex() == theirs_f1.hex()


def test_the_run_path_uses_them_and_not_sklearn() -> None:
    from evalkit.scoring import metrics  # noqa: PLC0415 - what the run's metrics call

    assert metrics._skm is ours
