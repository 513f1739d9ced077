"""Run history: every finished run of a task, listed, shown and compared (``evalkit runs``, ``evalkit runs
show``, ``evalkit compare``).

Runs are read from the report folders (``reports/<task>/<run_id>/summary.json`` + ``results.jsonl``) with
the embedded default, and from the shared store's ``evalkit_runs`` table when a store is configured (every
run is published there as its folder is written, so a team sees every machine's runs).

A comparison pairs two runs' samples by id: per sample what the candidate answered and whether it was
right, per gold label the change in the candidate's accuracy, the drift of the decision (verdict, quality
loss and its interval) and of the cost, as text and as an HTML page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import escape

from evalkit._io import atomic_write_text
from evalkit.config import Settings, load_settings
from evalkit.errors import UsageError
from evalkit.record.files import read_record, read_rows
from evalkit.record.model import RunRecord
from evalkit.record.rows import SampleRow
from evalkit.store import describe_store, open_store


@dataclass(frozen=True)
class RunEntry:
    """One line of ``evalkit runs``."""

    task: str
    run_id: str
    verdict: str
    loss: float | None
    loss_interval: tuple[float, float] | None
    margin: float
    cost_usd: float  # every answer the run used, at what it was billed
    paid_usd: float  # what this run paid (cache hits were paid earlier)
    candidate: str
    reference: str
    dataset_hash: str
    sample_hash: str
    system_hash: str
    samples: int
    simulated: bool
    finished_at: str
    where: str  # the run folder, or the store

    @classmethod
    def of(cls, record: RunRecord, where: str) -> RunEntry:
        p, d = record.provenance, record.decision
        return cls(task=p.task.name, run_id=p.run_id, verdict=d.verdict, loss=d.loss,
                   loss_interval=d.loss_interval, margin=d.margin, cost_usd=record.cost_usd.answers,
                   paid_usd=record.cost_usd.this_run, candidate=p.models.candidate,
                   reference=p.models.reference, dataset_hash=record.dataset.hash,
                   sample_hash=record.dataset.sample_hash, system_hash=p.prompt.system_hash,
                   samples=record.dataset.sample_size, simulated=p.simulated, finished_at=p.finished_at,
                   where=where)


def _settings(project: Path | None) -> Settings:
    return load_settings(project)


def publish_run(settings: Settings, folder: Path, record: RunRecord) -> bool:
    """Put a written run folder into the shared store (no-op when embedded), then write the task's
    history page beside its run folders (``reports/<task>/history.html``, linked from every report).
    True when published to the store."""
    store = open_store(settings)
    if store is not None:
        summary = (folder / "summary.json").read_text(encoding="utf-8")
        results = (folder / "results.jsonl").read_text(encoding="utf-8")
        store.put_run(record.task_name, record.run_id, record.provenance.finished_at, summary, results)
    entries = list_runs(record.task_name, project=settings.root)
    atomic_write_text(folder.parent / "history.html", history_html(record.task_name, entries))
    return store is not None


def trend_svg(entries: list[RunEntry], *, width: int = 640, height: int = 180) -> str:
    """The decision over time: each run's quality loss with its interval, against the margin."""
    points = [e for e in entries if e.loss is not None]
    if not points:
        return "<p>no run with a quality loss yet</p>"
    lows = [e.loss_interval[0] if e.loss_interval else e.loss or 0.0 for e in points]
    highs = [e.loss_interval[1] if e.loss_interval else e.loss or 0.0 for e in points]
    top = max(*highs, points[-1].margin, 0.01) * 1.15
    bottom = min(*lows, 0.0)
    pad = 36

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * (i + 0.5) / len(points)

    def y(v: float) -> float:
        return height - pad / 2 - (height - pad) * (v - bottom) / (top - bottom or 1)

    colour = {"GO": "#2a7", "NO-GO": "#c33", "INCONCLUSIVE": "#c90"}
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
             f"aria-label='quality loss per run'>",
             f"<line x1='{pad}' x2='{width - pad}' y1='{y(points[-1].margin):.1f}' "
             f"y2='{y(points[-1].margin):.1f}' stroke='#888' stroke-dasharray='4'/>",
             f"<text x='{width - pad}' y='{y(points[-1].margin) - 4:.1f}' font-size='10' text-anchor='end'>"
             f"margin {100 * points[-1].margin:.1f}%</text>",
             f"<line x1='{pad}' x2='{width - pad}' y1='{y(0):.1f}' y2='{y(0):.1f}' stroke='#ccc'/>"]
    for i, (entry, low, high) in enumerate(zip(points, lows, highs, strict=True)):
        fill = colour.get(entry.verdict, "#666")
        parts.append(f"<line x1='{x(i):.1f}' x2='{x(i):.1f}' y1='{y(low):.1f}' y2='{y(high):.1f}' "
                     f"stroke='{fill}' stroke-width='2'/>")
        parts.append(f"<circle cx='{x(i):.1f}' cy='{y(entry.loss or 0.0):.1f}' r='4' fill='{fill}'>"
                     f"<title>{escape(entry.run_id)}: {escape(entry.verdict)}, loss "
                     f"{100 * (entry.loss or 0.0):.1f}%</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


def history_html(task: str, entries: list[RunEntry]) -> str:
    e = escape
    rows = "".join(
        f"<tr><td>{e(x.finished_at[:19])}</td><td><a href='{e(x.run_id)}/report.html'>{e(x.run_id)}</a></td>"
        f"<td>{e(x.verdict)}{' (simulated)' if x.simulated else ''}</td><td>{_pct(x.loss)} "
        f"{_interval(x.loss_interval)}</td><td>${x.cost_usd:.4f}</td><td>{e(x.candidate)} vs "
        f"{e(x.reference)}</td><td class=mono>{e(x.dataset_hash[:8])} / {e(x.system_hash[:8])}</td></tr>"
        for x in reversed(entries))
    return ("<!doctype html><html><head><meta charset=utf-8><title>evalkit history: "
            f"{e(task)}</title><style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}"
            "td,th{border:1px solid #ccc;padding:.2em .5em}.mono{font-family:monospace}</style></head><body>"
            f"<h1>History of {e(task)}</h1><p>{len(entries)} run(s); the quality loss of each with its "
            f"interval, oldest first (green GO, red NO-GO, amber INCONCLUSIVE).</p>{trend_svg(entries)}"
            "<table><tr><th>finished</th><th>run</th><th>verdict</th><th>loss [interval]</th><th>cost</th>"
            f"<th>models</th><th>dataset / prompt</th></tr>{rows}</table>"
            f"<p>Compare two runs: <code>evalkit compare {e(task)}/RUN_A {e(task)}/RUN_B</code></p>"
            "</body></html>\n")


def _folder_runs(settings: Settings, task: str | None) -> list[tuple[RunRecord, str]]:
    pattern = f"{task}/*/summary.json" if task else "*/*/summary.json"
    found = []
    for path in sorted(settings.reports_dir.glob(pattern)):
        try:
            found.append((read_record(path.parent), str(path.parent)))
        except UsageError:
            continue  # another evalkit version's run, or a damaged one: `runs show` says which
    return found


def list_runs(task: str | None = None, *, project: Path | None = None) -> list[RunEntry]:
    """Every finished run (of ``task``), oldest first: from the store when configured, else the folders."""
    settings = _settings(project)
    store = open_store(settings)
    entries: list[RunEntry] = []
    if store is not None:
        where = describe_store(settings)
        for _task, _run_id, summary in store.runs(task):
            try:
                entries.append(RunEntry.of(RunRecord.model_validate_json(summary), where))
            except ValueError:
                continue
    else:
        entries = [RunEntry.of(record, where) for record, where in _folder_runs(settings, task)]
    return sorted(entries, key=lambda e: (e.finished_at, e.run_id))


@dataclass(frozen=True)
class LoadedRun:
    record: RunRecord
    rows: list[SampleRow]
    where: str


def load_run(run: str, *, task: str | None = None, project: Path | None = None) -> LoadedRun:
    """A run by folder path, ``TASK/RUN_ID`` or ``RUN_ID`` (in the store when configured, else under
    reports/)."""
    candidate = Path(run)
    if (candidate / "summary.json").is_file():
        return LoadedRun(read_record(candidate), read_rows(candidate), str(candidate))
    if "/" in run and task is None:
        task, run = run.rsplit("/", 1)
    settings = _settings(project)
    store = open_store(settings)
    if store is not None:
        found = store.run(run, task)
        if len(found) == 1:
            _task, _run_id, summary, results = found[0]
            rows = [SampleRow.model_validate_json(line) for line in results.splitlines() if line.strip()]
            return LoadedRun(RunRecord.model_validate_json(summary), rows, describe_store(settings))
        if len(found) > 1:
            raise UsageError(f"run '{run}' exists in several tasks: {', '.join(sorted(f[0] for f in found))}",
                             hint=f"name it TASK/{run}")
    folders = sorted(settings.reports_dir.glob(f"{task or '*'}/{run}/summary.json"))
    if len(folders) > 1:
        tasks = ", ".join(sorted(f.parent.parent.name for f in folders))
        raise UsageError(f"run '{run}' exists in several tasks: {tasks}", hint=f"name it TASK/{run}")
    if not folders:
        where = describe_store(settings) if store is not None else str(settings.reports_dir)
        raise UsageError(f"no run '{run}'{f' of task {task}' if task else ''} in {where}",
                         hint="`evalkit runs` lists the runs there; give a run id, TASK/RUN_ID or a run "
                              "folder")
    folder = folders[0].parent
    return LoadedRun(read_record(folder), read_rows(folder), str(folder))


# -- comparison ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleChange:
    id: str
    gold: Any
    answer_a: str | None
    answer_b: str | None
    correct_a: bool | None
    correct_b: bool | None

    @property
    def kind(self) -> str:
        if self.correct_a is not None and self.correct_b is not None and self.correct_a != self.correct_b:
            return "fixed" if self.correct_b else "broke"
        return "changed answer"


@dataclass(frozen=True)
class LabelChange:
    label: str
    n: int
    accuracy_a: float | None
    accuracy_b: float | None


@dataclass
class Comparison:
    a: LoadedRun
    b: LoadedRun
    common: int
    only_a: int
    only_b: int
    changes: list[SampleChange] = field(default_factory=list)
    labels: list[LabelChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def broke(self) -> int:
        return sum(c.kind == "broke" for c in self.changes)

    @property
    def fixed(self) -> int:
        return sum(c.kind == "fixed" for c in self.changes)

    @property
    def decision_drift(self) -> bool:
        return self.a.record.decision.verdict != self.b.record.decision.verdict

    def quality(self, which: str) -> float | None:
        rows = (self.a if which == "a" else self.b).rows
        values = [_correct(row) for row in rows]
        known = [v for v in values if v is not None]
        return sum(known) / len(known) if known else None


def _correct(row: SampleRow) -> bool | None:
    if row.scores.candidate_correct is not None:
        return row.scores.candidate_correct
    return row.scores.agree


def _answer(row: SampleRow) -> str | None:
    answer = row.candidate.answer
    if answer.label is not None:
        return answer.label
    if answer.fields:
        return json.dumps(answer.fields, sort_keys=True)
    return row.candidate.output if answer.ok else f"<{answer.outcome}>"


def compare_runs(run_a: str, run_b: str, *, task: str | None = None,
                 project: Path | None = None) -> Comparison:
    """Pair two runs' samples by id (see the module docstring)."""
    a, b = load_run(run_a, task=task, project=project), load_run(run_b, task=task, project=project)
    if a.record.task_name != b.record.task_name:
        raise UsageError(f"{run_a} is a run of '{a.record.task_name}', {run_b} of '{b.record.task_name}'",
                         hint="compare two runs of the same task")
    rows_a, rows_b = {r.id: r for r in a.rows}, {r.id: r for r in b.rows}
    common = [i for i in rows_a if i in rows_b]
    comparison = Comparison(a=a, b=b, common=len(common), only_a=len(set(rows_a) - set(rows_b)),
                            only_b=len(set(rows_b) - set(rows_a)))
    if not common:
        raise UsageError(f"runs {run_a} and {run_b} share no sample",
                         hint="compare runs over the same dataset")
    if a.record.dataset.hash != b.record.dataset.hash:
        comparison.notes.append("the dataset changed between the runs (different dataset hash): samples "
                                "are paired by id")
    if a.record.provenance.prompt.system_hash != b.record.provenance.prompt.system_hash:
        comparison.notes.append("the system prompt changed between the runs")
    for model in ("candidate", "reference"):
        before, after = getattr(a.record.provenance.models, model), getattr(b.record.provenance.models, model)
        if before != after:
            comparison.notes.append(f"the {model} model changed: {before} → {after}")
    by_label: dict[str, list[tuple[bool | None, bool | None]]] = {}
    for sample_id in common:
        ra, rb = rows_a[sample_id], rows_b[sample_id]
        ca, cb = _correct(ra), _correct(rb)
        aa, ab = _answer(ra), _answer(rb)
        if aa != ab or ca != cb:
            comparison.changes.append(SampleChange(id=sample_id, gold=ra.gold, answer_a=aa, answer_b=ab,
                                                   correct_a=ca, correct_b=cb))
        if ra.gold is not None and isinstance(ra.gold, str | int | bool):
            by_label.setdefault(str(ra.gold), []).append((ca, cb))
    for label, pairs in sorted(by_label.items()):
        known_a = [x for x, _ in pairs if x is not None]
        known_b = [y for _, y in pairs if y is not None]
        comparison.labels.append(LabelChange(
            label=label, n=len(pairs), accuracy_a=sum(known_a) / len(known_a) if known_a else None,
            accuracy_b=sum(known_b) / len(known_b) if known_b else None))
    return comparison


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _interval(interval: tuple[float, float] | None) -> str:
    return "—" if interval is None else f"[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def comparison_text(c: Comparison, *, limit: int = 30) -> list[str]:
    ra, rb = c.a.record, c.b.record
    da, db = ra.decision, rb.decision
    lines = [f"compare {ra.task_name}: {ra.run_id} (A) → {rb.run_id} (B)",
             f"  samples: {c.common} in common ({c.only_a} only in A, {c.only_b} only in B)",
             f"  decision: {da.verdict} → {db.verdict}" + ("  (DRIFT)" if c.decision_drift else "  (same)"),
             f"  quality loss: {_pct(da.loss)} {_interval(da.loss_interval)} → {_pct(db.loss)} "
             f"{_interval(db.loss_interval)} (margin {_pct(db.margin)})",
             f"  candidate quality: {_pct(c.quality('a'))} → {_pct(c.quality('b'))}",
             f"  cost of the answers: ${ra.cost_usd.answers:.4f} → ${rb.cost_usd.answers:.4f}; paid by the "
             f"run: ${ra.cost_usd.this_run:.4f} → ${rb.cost_usd.this_run:.4f}",
             f"  per sample: {len(c.changes)} changed ({c.broke} broke, {c.fixed} fixed, "
             f"{len(c.changes) - c.broke - c.fixed} other answer changes)"]
    lines += [f"  note: {note}" for note in c.notes]
    if c.labels:
        lines.append("  per label (candidate accuracy, A → B):")
        for label in c.labels:
            delta = ("" if label.accuracy_a is None or label.accuracy_b is None
                     else f" ({100 * (label.accuracy_b - label.accuracy_a):+.1f} points)")
            lines.append(f"    {label.label}: {_pct(label.accuracy_a)} → {_pct(label.accuracy_b)}{delta}, "
                         f"n={label.n}")
    if c.changes:
        lines.append("  changed samples:")
        for change in c.changes[:limit]:
            lines.append(f"    {change.id}: {change.answer_a} → {change.answer_b} (gold {change.gold}; "
                         f"{change.kind})")
        if len(c.changes) > limit:
            lines.append(f"    … and {len(c.changes) - limit} more (see the HTML page)")
    return lines


def comparison_html(c: Comparison) -> str:
    ra, rb = c.a.record, c.b.record
    e = escape
    head = (f"<h1>{e(ra.task_name)}: {e(ra.run_id)} → {e(rb.run_id)}</h1>"
            + ("<p class=sim><b>SIMULATED</b> answers (evalkit's offline simulator)</p>"
               if ra.simulated or rb.simulated else ""))
    summary = "".join(f"<li>{e(line.strip())}</li>" for line in comparison_text(c, limit=0)[1:]
                      if not line.startswith("  changed samples") and not line.startswith("    … and"))
    labels = "".join(f"<tr><td>{e(x.label)}</td><td>{x.n}</td><td>{_pct(x.accuracy_a)}</td>"
                     f"<td>{_pct(x.accuracy_b)}</td></tr>" for x in c.labels)
    changes = "".join(f"<tr class='{e(x.kind.replace(' ', '-'))}'><td>{e(x.id)}</td><td>{e(str(x.gold))}</td>"
                      f"<td>{e(str(x.answer_a))}</td><td>{e(str(x.answer_b))}</td><td>{e(x.kind)}</td></tr>"
                      for x in c.changes)
    return ("<!doctype html><html><head><meta charset=utf-8><title>evalkit compare "
            f"{e(ra.run_id)} → {e(rb.run_id)}</title><style>body{{font-family:sans-serif;margin:2em}}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}"
            ".broke{background:#fdd}.fixed{background:#dfd}.sim{color:#a60}</style></head><body>"
            f"{head}<ul>{summary}</ul><h2>Per label</h2><table><tr><th>label</th><th>n</th>"
            f"<th>accuracy A</th><th>accuracy B</th></tr>{labels}</table>"
            f"<h2>Changed samples ({len(c.changes)})</h2><table id=changes><tr><th>sample</th><th>gold</th>"
            f"<th>A</th><th>B</th><th>change</th></tr>{changes}</table></body></html>\n")


def write_comparison(c: Comparison, out: Path | None = None, *, project: Path | None = None) -> Path:
    """The HTML page of a comparison (default: reports/<task>/compare-<A>-vs-<B>.html)."""
    path = out or (_settings(project).reports_dir / c.a.record.task_name
                   / f"compare-{c.a.record.run_id}-vs-{c.b.record.run_id}.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, comparison_html(c))
    return path
