"""Two candidate configurations on the same samples, sample by sample: which labels a change fixed or
broke."""

from __future__ import annotations

from collections.abc import Sequence

from evalkit._typed import Typed
from evalkit.scoring.samples import ScoredSample, scoring_mode


class LabelChange(Typed):
    label: str
    n: int
    base_right: int
    variant_right: int
    fixed: int  # wrong with the base configuration, right with the variant
    broke: int  # right with the base, wrong with the variant


def _right(row: ScoredSample, gold: bool) -> bool | None:
    return row.correct("candidate") if gold else row.agree


def label_changes(base: Sequence[ScoredSample], variant: Sequence[ScoredSample]) -> list[LabelChange]:
    """Per label (gold, or the reference's answer without gold), how the variant's candidate answers
    differ from the base's on the same samples; labels ordered by the net change, largest first."""
    by_id = {row.sample.id: row for row in variant}
    gold = scoring_mode(list(base)) == "gold" and scoring_mode(list(variant)) == "gold"
    counts: dict[str, list[int]] = {}
    for row in base:
        other = by_id.get(row.sample.id)
        if other is None:
            continue
        label = row.sample.label if gold else (row.reference.label if row.reference.ok else None)
        before, after = _right(row, gold), _right(other, gold)
        if label is None or before is None or after is None:
            continue
        cell = counts.setdefault(str(label), [0, 0, 0, 0, 0])
        cell[0] += 1
        cell[1] += before
        cell[2] += after
        cell[3] += (not before) and after
        cell[4] += before and not after
    changes = [LabelChange(label=label, n=c[0], base_right=c[1], variant_right=c[2], fixed=c[3], broke=c[4])
               for label, c in counts.items()]
    return sorted(changes, key=lambda change: (-(change.fixed - change.broke), change.label))
