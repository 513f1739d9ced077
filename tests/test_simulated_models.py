"""The simulator's models compute their answers, and the tiers really differ in capacity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from evalkit.sim.brain import Brain

REPO = Path(__file__).resolve().parents[1]
LABELS = ["billing", "technical", "account", "feature_request", "general"]
SYSTEM = "Queues: " + ", ".join(LABELS)


def _split(name: str) -> list[dict]:
    rows = [json.loads(line) for line in (REPO / "datasets" / "triage.jsonl").read_text().splitlines()]
    return [row for row in rows if row["split"] == name]


def test_large_tier_beats_small_tier_and_small_confidence_tracks_correctness() -> None:
    train, test = _split("train"), _split("test")
    brain = Brain([([r["text"] for r in train], [r["category"] for r in train])], seed=0)
    results = {}
    for model, tier in (("claude-haiku-5-5", "small"), ("claude-sonnet-5-5", "large")):
        thoughts = [brain.think(model=model, tier=tier, system=SYSTEM, user=r["text"], labels=LABELS)
                    for r in test]
        correct = np.array([t.label == r["category"] for t, r in zip(thoughts, test, strict=True)])
        confidence = np.array([t.confidence for t in thoughts])
        results[tier] = (correct.mean(), roc_auc_score(correct, confidence))
    small_accuracy, small_auroc = results["small"]
    large_accuracy, _ = results["large"]
    assert large_accuracy - small_accuracy >= 0.05  # measurably weaker
    assert small_accuracy > 0.4  # far better than the 0.2 of guessing among five
    assert small_auroc > 0.65  # self-reported confidence is informative


def test_without_a_matching_corpus_the_answer_is_still_computed_from_the_prompt() -> None:
    brain = Brain([], seed=0)
    system = "- refund: the customer wants money back\n- shipping: where is my parcel, delivery delays"
    thought = brain.think(model="m", tier="large", system=system, user="my parcel delivery is late again",
                          labels=["refund", "shipping"])
    assert thought.label == "shipping"


def test_a_label_the_prompt_never_mentions_is_rarely_chosen() -> None:
    train = _split("train")
    brain = Brain([([r["text"] for r in train], [r["category"] for r in train])], seed=0)
    text = "Please add a dark mode to the agent inbox, it would be great"
    with_label = brain.think(model="m", tier="large", system=SYSTEM, user=text, labels=LABELS)
    without = brain.think(model="m", tier="large", system="Queues: billing, technical, account, general",
                          user=text, labels=LABELS)
    assert with_label.label == "feature_request"
    assert without.distribution["feature_request"] < with_label.distribution["feature_request"]
