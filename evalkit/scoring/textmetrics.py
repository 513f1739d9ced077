"""Per-sample metrics against a reference (or gold) text or JSON record (stats spec, section 7).

Free-text answers:

* :func:`normalize_answer`, :func:`exact_match` and :func:`token_f1` follow the SQuAD v1.1
  evaluation script, so the numbers can be compared with published results.
* :func:`rouge_l` wraps ``rouge_score`` but swaps in a Unicode-aware tokenizer. The default one
  keeps only ``[a-z0-9]``, so Russian or Japanese text would always score 0.

Structured (JSON) extraction:

* :func:`flatten` turns a record into a multiset of ``(path, normalized leaf)`` items.
* :func:`field_prf`, :func:`micro_field_prf` and :func:`per_field_accuracy` score those
  multisets against the reference.

This module deliberately imports nothing from the rest of evalkit, so it can be used (and tested)
on its own.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rouge_score import rouge_scorer

__all__ = [
    "Leaf",
    "UnicodeRougeTokenizer",  # noqa: F822 - built on first use (module __getattr__)
    "exact_match",
    "field_prf",
    "flatten",
    "micro_field_prf",
    "normalize_answer",
    "per_field_accuracy",
    "rouge_l",
    "token_f1",
]

Leaf = float | str | bool | None
"""A normalized leaf value: ``round(float, 6)``, a normalized string, a bool or ``None``."""

# ----------------------------------------------------------------------------- SQuAD EM / token F1

_PUNCT = frozenset(string.punctuation)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Normalize an answer the way SQuAD v1.1 does, so trivial surface differences don't count.

    The steps run in this order: lower-case, delete every ``string.punctuation`` character, remove
    the whole-word articles *a*, *an* and *the*, then collapse runs of whitespace into single
    spaces. Only ASCII punctuation is removed (as in SQuAD). For example, "«" and "。" are kept.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def exact_match(pred: str, ref: str) -> float:
    """Return 1.0 if the normalized prediction equals the normalized reference, else 0.0."""
    return float(normalize_answer(pred) == normalize_answer(ref))


def token_f1(pred: str, ref: str) -> float:
    """SQuAD token F1: the harmonic mean of precision and recall over the shared tokens.

    Tokens are the whitespace-split words of :func:`normalize_answer`. The overlap is a
    *multiset* intersection, so a word repeated in the prediction counts only as often as it
    appears in the reference. If either side has no tokens, the score is 1.0 when both are empty
    and 0.0 otherwise.
    """
    p_toks = normalize_answer(pred).split()
    r_toks = normalize_answer(ref).split()
    if not p_toks or not r_toks:
        return float(p_toks == r_toks)
    common = sum((Counter(p_toks) & Counter(r_toks)).values())
    if common == 0:
        return 0.0
    precision = common / len(p_toks)
    recall = common / len(r_toks)
    return 2 * precision * recall / (precision + recall)


# ----------------------------------------------------------------------------- ROUGE-L

# Unicode letters and digits. This is `\w` minus "_", because the default rouge tokenizer also
# splits on "_". ASCII text therefore gets exactly the default tokenization.
_WORD_RE = re.compile(r"[^\W_]+")


@lru_cache(maxsize=1)
def _ascii_tokenizer() -> Any:
    """Used for one lower-case ASCII token at a time. It applies rouge_score's own rule: Porter-stem
    tokens longer than 3 characters. rouge_score (and NLTK, 2 s of imports) loads on first use only."""
    from rouge_score import tokenizers  # noqa: PLC0415

    return tokenizers.DefaultTokenizer(use_stemmer=True)


@lru_cache(maxsize=65536)
def _stem_ascii(token: str) -> str:
    """Stem one ASCII token exactly as rouge_score's default tokenizer would (cached; it's hot)."""
    out = _ascii_tokenizer().tokenize(token)
    return out[0] if out else token


@lru_cache(maxsize=1)
def _tokenizer_class() -> type:
    from rouge_score import tokenizers  # noqa: PLC0415

    class UnicodeRougeTokenizer(tokenizers.Tokenizer):
        """A rouge tokenizer that keeps non-Latin words and matches the default one on ASCII.

        Steps: lower-case, then split into runs of Unicode letters and digits. ASCII tokens get the
        default Porter stemming, and other tokens are left as they are. Scripts written without spaces
        (for example Japanese without spaces) come out as one long token per run. Segment them first
        if you need token-level credit.
        """

        def tokenize(self, text: str) -> list[str]:
            return [_stem_ascii(tok) if tok.isascii() else tok for tok in _WORD_RE.findall(text.lower())]

    UnicodeRougeTokenizer.__module__ = __name__
    return UnicodeRougeTokenizer


def __getattr__(name: str) -> Any:
    if name == "UnicodeRougeTokenizer":  # built on first use: it subclasses rouge_score's Tokenizer
        return _tokenizer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@lru_cache(maxsize=1)
def _rouge_l_scorer() -> rouge_scorer.RougeScorer:
    """Build the scorer once and reuse it across the thousands of calls a run makes.

    ``use_stemmer`` has no effect when a tokenizer is passed. Stemming happens in the tokenizer.
    """
    from rouge_score import rouge_scorer  # noqa: PLC0415

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True, tokenizer=_tokenizer_class()())


def rouge_l(pred: str, ref: str) -> dict[str, float]:
    """ROUGE-L of ``pred`` against ``ref``: precision = LCS/|pred|, recall = LCS/|ref|, and their F1.

    rouge_score takes the reference *first* (``score(target, prediction)``). Keyword arguments are
    used here so the two can't be swapped by mistake. If neither text has any tokens, all three
    values are 1.0, so a text always scores 1 against itself. rouge_score would give 0.0 here,
    which would break the "reference against itself is 1" rule in mode (a).
    """
    # A text has tokens if and only if it contains a word-character run (stemming never empties one).
    if _WORD_RE.search(pred.lower()) is None and _WORD_RE.search(ref.lower()) is None:
        return {"precision": 1.0, "recall": 1.0, "fmeasure": 1.0}
    s = _rouge_l_scorer().score(target=ref, prediction=pred)["rougeL"]
    return {"precision": float(s.precision), "recall": float(s.recall), "fmeasure": float(s.fmeasure)}


# ----------------------------------------------------------------------------- field-level extraction

# Optional sign, optional currency symbol, then either well-formed thousands groups ("1,200,000")
# or plain digits, then an optional decimal part. A bare fraction (".5") is also accepted.
_NUMBER_RE = re.compile(
    r"""^\s*
    (?P<sign>[+-])?\s*
    [$€£]?\s*
    (?P<num>
        (?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?   # 1,200.00 | 1200 | 1200.5
      | \.\d+                                 # .5
    )
    \s*$""",
    re.VERBOSE,
)


def _as_number(text: str) -> float | None:
    """Read an amount such as ``"1,200.00"``, ``"$1,200"`` or ``"-€3.5"`` as a float, else return None.

    This lets a model that writes an amount as a string match a reference that stores it as a
    number. The rules are strict so that nothing is guessed:

    * One optional currency symbol ($, € or £) may come before the digits.
    * "," is only accepted as a thousands separator in groups of three.
    * "." is the decimal point.

    So "1,2" (which might be a European decimal), "1.200,00", "1200 USD", "1e3" and dates such as
    "2024-01-05" are *not* numbers. They stay strings.
    """
    m = _NUMBER_RE.match(text)
    if m is None:
        return None
    value = float(m.group("num").replace(",", ""))
    return -value if m.group("sign") == "-" else value


def _leaf(value: Any) -> Leaf:
    """Normalize one scalar so that equivalent spellings of the same value compare equal.

    * bool and None are kept as they are. bool is checked first because it is a subclass of int.
    * int and float become ``round(float(x), 6)``, so ``1200 == 1200.0``.
    * Strings that :func:`_as_number` accepts become that float, so ``"$1,200.00" == 1200``.
    * Any other string goes through :func:`normalize_answer`. ISO dates stay strings: "2024-01-05"
      becomes "20240105" on both sides.
    * Other objects are converted with ``str()`` and then normalized.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return round(float(value), 6)
    text = value if isinstance(value, str) else str(value)
    number = _as_number(text)
    if number is not None:
        return round(number, 6)
    return normalize_answer(text)


def _is_container(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple)


def flatten(obj: Any, path: str = "") -> Counter[tuple[str, Leaf]]:
    """Flatten a JSON-like value into a multiset of ``(path, normalized leaf)`` items.

    * Dict keys join with "." (``a.b``).
    * A list of scalars becomes a multiset under ``a[]``, so the order of tags or items doesn't
      matter.
    * A list that contains any dict or list is positional: ``a[0].x``, ``a[1].x`` and so on.
      Line items are matched by position.
    * Empty dicts and lists produce no items, so ``{"items": []}`` flattens like ``{}``.
    """
    out: Counter[tuple[str, Leaf]] = Counter()
    if isinstance(obj, Mapping):
        for key, val in obj.items():
            out.update(flatten(val, f"{path}.{key}" if path else str(key)))
    elif isinstance(obj, list | tuple):
        if not any(_is_container(x) for x in obj):
            out.update((f"{path}[]", _leaf(x)) for x in obj)
        else:
            for i, x in enumerate(obj):
                out.update(flatten(x, f"{path}[{i}]"))
    else:
        out[(path, _leaf(obj))] += 1
    return out


def _typed(items: Counter[tuple[str, Leaf]]) -> Counter[tuple[str, bool, Leaf]]:
    """Tag bool leaves so that they never match numbers.

    Without the tag, ``True == 1.0`` and ``False == 0.0`` in Python, so ``true`` would count as a
    correct answer for ``1``.
    """
    return Counter({(p, isinstance(v, bool), v): n for (p, v), n in items.items()})


def _prf(tp: int, n_pred: int, n_ref: int) -> tuple[float, float, float]:
    """Return precision, recall and F1 from counts.

    If both sides are empty, all three are 1.0. If one side is empty, its ratio is 0.0, and F1 is
    0 whenever tp is 0.
    """
    if n_pred == 0 and n_ref == 0:
        return 1.0, 1.0, 1.0
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_ref if n_ref else 0.0
    f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def _field_counts(pred: Any, ref: Any) -> tuple[int, int, int, bool]:
    p_items, r_items = _typed(flatten(pred)), _typed(flatten(ref))
    tp = sum((p_items & r_items).values())
    return tp, sum(p_items.values()), sum(r_items.values()), p_items == r_items


def field_prf(pred: Mapping[str, Any], ref: Mapping[str, Any]) -> dict[str, float]:
    """Score one extracted record against the reference, item by item (see :func:`flatten`).

    Returns ``tp``, ``n_pred`` and ``n_ref`` as counts, and ``precision``, ``recall`` and ``f1``.
    Also returns ``exact_record``: 1.0 if the two flattened multisets are identical, else 0.0.
    TP is the size of the multiset intersection, so a duplicated item only counts as often as
    the reference has it.
    """
    tp, n_pred, n_ref, same = _field_counts(pred, ref)
    return _scores(tp, n_pred, n_ref, float(same))


def _scores(tp: int, n_pred: int, n_ref: int, exact_record: float) -> dict[str, float]:
    precision, recall, f1 = _prf(tp, n_pred, n_ref)
    return {"tp": tp, "n_pred": n_pred, "n_ref": n_ref, "precision": precision, "recall": recall, "f1": f1,
            "exact_record": exact_record}


def micro_field_prf(pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> dict[str, float]:
    """Micro-average field P/R/F1 over documents, given ``(pred, ref)`` pairs.

    TP and the item counts are summed across documents before the ratios are taken. This way a
    document with many fields weighs more than one with a single field. The result has the same
    keys as :func:`field_prf`, with ``exact_record`` as the fraction of documents that match
    exactly, plus ``n_docs``. Raises ValueError if there are no pairs, because there is nothing
    to score.
    """
    tp = n_pred = n_ref = n_exact = n_docs = 0
    for pred, ref in pairs:
        d_tp, d_pred, d_ref, same = _field_counts(pred, ref)
        tp, n_pred, n_ref = tp + d_tp, n_pred + d_pred, n_ref + d_ref
        n_exact += same
        n_docs += 1
    if n_docs == 0:
        raise ValueError("micro_field_prf needs at least one (pred, ref) pair")
    return {**_scores(tp, n_pred, n_ref, n_exact / n_docs), "n_docs": n_docs}


def per_field_accuracy(pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> dict[str, float]:
    """For each top-level reference field, the fraction of documents where the model got it exactly right.

    "Exactly right" means the flattened items under that key are the same multiset in the
    prediction and the reference. A missing item, a wrong item or an extra item all count as a
    miss. The denominator for a field is the number of documents whose reference has that field
    with at least one item. Fields that appear only in predictions are not reported. Hallucinated
    fields already lower :func:`field_prf` precision.

    The fields are taken from the reference dict's keys rather than by parsing paths. That stays
    correct even when a key itself contains "." or "[". The result is sorted by field name.
    """
    hits: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for pred, ref in pairs:
        for key, ref_val in ref.items():
            r_items = _typed(flatten({key: ref_val}))
            if not r_items:
                continue
            p_items = _typed(flatten({key: pred[key]})) if key in pred else Counter()
            name = str(key)
            seen[name] += 1
            hits[name] += p_items == r_items
    return {name: hits[name] / seen[name] for name in sorted(seen)}
