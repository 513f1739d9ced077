"""Reference values from stats-spec section 7, plus the edge cases the metrics must get right."""

from __future__ import annotations

import pytest

from evalkit.scoring.textmetrics import (
    UnicodeRougeTokenizer,
    _as_number,
    exact_match,
    field_prf,
    flatten,
    micro_field_prf,
    normalize_answer,
    per_field_accuracy,
    rouge_l,
    token_f1,
)

TOL = 1e-4


def approx(x: float) -> object:
    return pytest.approx(x, abs=TOL)


# ----------------------------------------------------------------------------- normalize / EM


def test_normalize_answer_squad_steps() -> None:
    assert normalize_answer("The Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("  An apple,  a   pear & THE plum. ") == "apple pear plum"
    # Articles only as whole words: "theatre" and "another" survive.
    assert normalize_answer("the theatre another") == "theatre another"
    assert normalize_answer("") == ""


def test_exact_match_reference_values() -> None:
    assert exact_match("The Eiffel Tower!", "eiffel tower") == 1.0
    assert exact_match("Eiffel Tower, Paris", "Eiffel Tower") == 0.0


# ----------------------------------------------------------------------------- token F1


def test_token_f1_reference_values() -> None:
    assert token_f1("the cat sat on the mat", "a cat sat on a red mat") == approx(0.8889)
    assert token_f1("Paris, France", "Paris") == approx(0.6667)


def test_token_f1_empty_and_disjoint() -> None:
    assert token_f1("", "") == 1.0
    assert token_f1("the", "a!") == 1.0  # both normalize to nothing
    assert token_f1("", "Paris") == 0.0
    assert token_f1("Paris", "") == 0.0
    assert token_f1("London", "Paris") == 0.0


def test_token_f1_counts_multiset_overlap() -> None:
    # "paris" is only once in the reference, so repeating it earns no extra credit.
    # P = 1/3, R = 1 → F1 = 0.5
    assert token_f1("Paris Paris Paris", "Paris") == approx(0.5)


# ----------------------------------------------------------------------------- ROUGE-L


def test_rouge_l_reference_values() -> None:
    s = rouge_l("the cat sat on the mat", "the cat was sitting on the red mat")
    assert s["precision"] == approx(0.8333)
    assert s["recall"] == approx(0.6250)
    assert s["fmeasure"] == approx(0.7143)


def test_rouge_l_argument_order_matters() -> None:
    a = rouge_l("the cat sat on the mat", "the cat was sitting on the red mat")
    b = rouge_l("the cat was sitting on the red mat", "the cat sat on the mat")
    assert b["precision"] == approx(a["recall"])
    assert b["recall"] == approx(a["precision"])
    assert b["fmeasure"] == approx(a["fmeasure"])
    assert a["precision"] != approx(a["recall"])


@pytest.mark.parametrize("text", ["привет мир", "東京 タワー", "Ünïcödé straße café"])
def test_rouge_l_identical_non_latin_scores_one(text: str) -> None:
    s = rouge_l(text, text)
    assert s == {"precision": approx(1.0), "recall": approx(1.0), "fmeasure": approx(1.0)}


def test_rouge_l_non_latin_partial_overlap() -> None:
    s = rouge_l("привет мир", "привет всем")
    assert s["precision"] == approx(0.5)
    assert s["recall"] == approx(0.5)
    assert rouge_l("привет", "東京")["fmeasure"] == 0.0


def test_rouge_l_both_empty_is_one_and_one_empty_is_zero() -> None:
    assert rouge_l("", "")["fmeasure"] == 1.0
    assert rouge_l("!!!", "...")["fmeasure"] == 1.0
    assert rouge_l("", "the cat")["fmeasure"] == 0.0
    assert rouge_l("the cat", "")["fmeasure"] == 0.0


def test_tokenizer_matches_default_on_ascii() -> None:
    from rouge_score.tokenizers import DefaultTokenizer

    text = "The cats were RUNNING quickly, foo_bar 42 times! Jumped-over flies."
    assert UnicodeRougeTokenizer().tokenize(text) == DefaultTokenizer(use_stemmer=True).tokenize(text)
    # Non-ASCII tokens are kept (and not stemmed); ASCII neighbours still are.
    assert UnicodeRougeTokenizer().tokenize("Running в Москве") == ["run", "в", "москве"]


def test_rouge_l_uses_stemming() -> None:
    # Porter stems ("cats" -> "cat", "running"/"runs" -> "run") match, as with the default scorer.
    assert rouge_l("cats running", "cat runs")["fmeasure"] == approx(1.0)


# ----------------------------------------------------------------------------- field-level F1

SPEC_REF = {"name": "Acme Corp", "date": "2024-01-05", "total": 1200.0, "items": ["bolt", "nut"]}
SPEC_PRED = {
    "name": "ACME corp.",
    "date": "2024-01-05",
    "total": 1200,
    "items": ["nut", "washer"],
    "currency": "USD",
}


def test_field_prf_reference_example() -> None:
    r = field_prf(SPEC_PRED, SPEC_REF)
    assert (r["tp"], r["n_pred"], r["n_ref"]) == (4, 6, 5)
    assert r["precision"] == approx(0.6667)
    assert r["recall"] == approx(0.8)
    assert r["f1"] == approx(0.7273)
    assert r["exact_record"] == 0.0


def test_flatten_paths_and_leaf_normalization() -> None:
    flat = flatten({"a": {"b": 1, "c": ["x", "The X", None]}, "ok": True, "n": None})
    assert flat == {
        ("a.b", 1.0): 1,
        ("a.c[]", "x"): 2,
        ("a.c[]", None): 1,
        ("ok", True): 1,
        ("n", None): 1,
    }


def test_flatten_scalar_list_ignores_order() -> None:
    assert flatten({"tags": ["b", "a", "a"]}) == flatten({"tags": ["a", "b", "a"]})
    assert field_prf({"tags": ["b", "a"]}, {"tags": ["a", "b"]})["exact_record"] == 1.0


def test_nested_list_of_objects_is_positional() -> None:
    ref = {"lines": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}]}
    assert flatten(ref) == {
        ("lines[0].sku", "a1"): 1,
        ("lines[0].qty", 2.0): 1,
        ("lines[1].sku", "b2"): 1,
        ("lines[1].qty", 1.0): 1,
    }
    swapped = {"lines": [{"sku": "B2", "qty": 1}, {"sku": "A1", "qty": 2}]}
    r = field_prf(swapped, ref)
    assert r["tp"] == 0
    assert r["f1"] == 0.0
    assert field_prf(ref, ref)["exact_record"] == 1.0


@pytest.mark.parametrize("text", ["$1,200.00", "1,200", "1200", "£1200.0", "€ 1,200.000", " 1200 "])
def test_currency_and_thousands_strings_equal_number(text: str) -> None:
    assert _as_number(text) == 1200.0
    r = field_prf({"total": text}, {"total": 1200})
    assert r["tp"] == 1
    assert r["exact_record"] == 1.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("-$3.50", -3.5), (".5", 0.5), ("+7", 7.0), ("1,234,567.891", 1234567.891), ("0", 0.0)],
)
def test_as_number_accepts(text: str, expected: float) -> None:
    assert _as_number(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text", ["2024-01-05", "1,2", "1.200,00", "1200 USD", "1e3", "$", "", "12,00", "abc", "1,200.", "$$1"]
)
def test_as_number_rejects(text: str) -> None:
    assert _as_number(text) is None


def test_iso_dates_stay_strings_and_match() -> None:
    assert flatten({"date": "2024-01-05"}) == {("date", "20240105"): 1}
    assert field_prf({"date": "2024-01-05"}, {"date": "2024-01-05"})["f1"] == 1.0
    assert field_prf({"date": "2024-01-06"}, {"date": "2024-01-05"})["f1"] == 0.0


def test_bools_do_not_match_numbers() -> None:
    # In Python True == 1.0, but a boolean field answered with 1 is not a match.
    assert field_prf({"paid": 1}, {"paid": True})["tp"] == 0
    assert field_prf({"paid": 0}, {"paid": False})["tp"] == 0
    assert field_prf({"paid": True}, {"paid": True})["tp"] == 1


def test_field_prf_empty_cases() -> None:
    both = field_prf({}, {})
    assert (both["precision"], both["recall"], both["f1"], both["exact_record"]) == (1.0, 1.0, 1.0, 1.0)
    no_pred = field_prf({}, {"a": 1})
    assert (no_pred["precision"], no_pred["recall"], no_pred["f1"]) == (0.0, 0.0, 0.0)
    no_ref = field_prf({"a": 1}, {})
    assert (no_ref["precision"], no_ref["recall"], no_ref["f1"]) == (0.0, 0.0, 0.0)


def test_micro_field_prf_sums_counts_over_documents() -> None:
    doc2_ref = {"name": "Widget Ltd", "total": 50}
    doc2_pred = {"name": "widget ltd", "total": "$50.00"}
    r = micro_field_prf([(SPEC_PRED, SPEC_REF), (doc2_pred, doc2_ref)])
    # doc1: tp 4, pred 6, ref 5; doc2: tp 2, pred 2, ref 2.
    assert (r["tp"], r["n_pred"], r["n_ref"], r["n_docs"]) == (6, 8, 7, 2)
    assert r["precision"] == approx(6 / 8)
    assert r["recall"] == approx(6 / 7)
    assert r["f1"] == approx(2 * (6 / 8) * (6 / 7) / (6 / 8 + 6 / 7))
    assert r["exact_record"] == approx(0.5)
    # Micro is not the mean of per-document F1s.
    macro = (field_prf(SPEC_PRED, SPEC_REF)["f1"] + 1.0) / 2
    assert r["f1"] != approx(macro)


def test_micro_field_prf_requires_pairs() -> None:
    with pytest.raises(ValueError):
        micro_field_prf([])


def test_per_field_accuracy() -> None:
    doc2_ref = {"name": "Widget Ltd", "total": 50, "items": ["gear"]}
    doc2_pred = {"name": "Widget Ltd", "total": 51, "items": ["gear"]}
    doc3_ref = {"name": "Solo", "lines": [{"sku": "A1"}]}
    doc3_pred = {"name": "Solo", "lines": [{"sku": "A1"}], "extra": 1}
    acc = per_field_accuracy([(SPEC_PRED, SPEC_REF), (doc2_pred, doc2_ref), (doc3_pred, doc3_ref)])
    # name: doc1 ok (after normalization), doc2 ok, doc3 ok.
    # date: doc1 only, ok. total: doc1 ok, doc2 wrong. items: doc1 wrong, doc2 ok. lines: doc3 ok.
    # "currency" and "extra" appear only in predictions, so they are not reported.
    assert acc == {
        "date": approx(1.0),
        "items": approx(0.5),
        "lines": approx(1.0),
        "name": approx(1.0),
        "total": approx(0.5),
    }


def test_per_field_accuracy_missing_and_extra_items_are_misses() -> None:
    ref = {"tags": ["a", "b"]}
    assert per_field_accuracy([({}, ref)]) == {"tags": 0.0}
    assert per_field_accuracy([({"tags": ["a"]}, ref)]) == {"tags": 0.0}
    assert per_field_accuracy([({"tags": ["a", "b", "c"]}, ref)]) == {"tags": 0.0}
    assert per_field_accuracy([({"tags": ["b", "a"]}, ref)]) == {"tags": 1.0}
    assert per_field_accuracy([]) == {}
