"""The simulator trains each corpus's classifier once per process: new simulator states reuse it."""

from __future__ import annotations

import numpy as np

from evalkit.sim.brain import Brain

TEXTS = ["card charged twice", "refund my invoice", "app crashes on login", "webhook returns 500",
         "reset my password", "add a user to our team", "invoice shows wrong tax", "api is slow today"]
LABELS = ["billing", "billing", "technical", "technical", "account", "account", "billing", "technical"]


def test_the_same_corpus_tier_and_seed_share_one_trained_model() -> None:
    first, second = Brain([(TEXTS, LABELS)], seed=3), Brain([(list(TEXTS), list(LABELS))], seed=3)
    assert first.corpora[0].model("small") is second.corpora[0].model("small")
    assert first.corpora[0].model("small") is not first.corpora[0].model("large")


def test_other_content_or_seed_trains_its_own_model() -> None:
    base = Brain([(TEXTS, LABELS)], seed=3).corpora[0].model("small")
    relabelled = Brain([(TEXTS, LABELS[::-1])], seed=3).corpora[0].model("small")
    reseeded = Brain([(TEXTS, LABELS)], seed=4).corpora[0].model("small")
    assert relabelled is not base and reseeded is not base
    assert list(relabelled.predict(TEXTS)) != list(base.predict(TEXTS))


def test_a_shared_model_answers_exactly_as_a_freshly_trained_one() -> None:
    """Memoising is only sound because training is deterministic in (content, tier, seed)."""
    corpus = Brain([(TEXTS, LABELS)], seed=5).corpora[0]
    for tier in ("small", "large"):
        shared, fresh = corpus.model(tier), corpus._train(tier)
        assert fresh is not shared
        assert np.array_equal(shared.predict_proba(TEXTS + ["charged for a seat"]),
                              fresh.predict_proba(TEXTS + ["charged for a seat"]))
