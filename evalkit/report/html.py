"""Run outputs: ``summary.json``, ``results.jsonl`` and a self-contained ``report.html``.

The report folder is assembled in a hidden temporary folder and renamed into place, so a crash never
leaves a half-written report behind.

``report.html`` needs no network: CSS, the plots (inline SVG from :mod:`evalkit.report.plots`) and the script
are all in the file. Model output and dataset text are untrusted input:

* in the HTML they go through jinja2's autoescape;
* the data the script needs (the routing sweep, the samples) is embedded as JSON in a
  ``<script type="application/json">`` block with ``<``, ``>``, ``&`` and U+2028/U+2029 escaped, so
  nothing in it can close the block; the script reads it with ``JSON.parse`` and builds the DOM with
  ``textContent`` only;
* a Content-Security-Policy allows no network access and runs only the report's own script (by its
  SHA-256), so even markup that slipped through could not load or execute anything.
"""

from __future__ import annotations

import base64
import errno
import functools
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from evalkit._io import atomic_write_lines, atomic_write_text, pid_alive
from evalkit.errors import StateError
from evalkit.record.model import RunRecord
from evalkit.record.rows import CallRow, SampleRow
from evalkit.report import plots
from evalkit.scoring.answers import Answer
from evalkit.scoring.metrics import ConfusionMatrix, Rate
from evalkit.stats.decision import Decision, wilson_interval
from evalkit.stats.groups import GroupDecision

#: At most this many samples are embedded for the sample browser (disagreements first).
MAX_BROWSER_SAMPLES = 2000
#: Longer texts and outputs are cut in the browser (results.jsonl keeps them whole).
MAX_TEXT_CHARS = 6000
#: Above this many labels the confusion matrix is a table of its largest off-diagonal cells: a 77 × 78
#: heatmap is unreadable and weighs megabytes.
MAX_MATRIX_LABELS = 20
#: Rows of the top-confusions table.
TOP_CONFUSIONS = 40
#: Group dimensions with more groups than this are left out of the interval plot.
MAX_PLOTTED_GROUPS = 20

STACK_TITLES = {"all_reference": "always the reference", "all_candidate": "always the candidate",
                "routed": "routed at the shipped threshold (in-sample escalation)",
                "routed_held_out": "routed, held-out escalation estimate"}


# -- formatting helpers (jinja globals) ---------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _pct(value: Any, digits: int = 1) -> str:
    """0.571 -> '57.1%'."""
    return f"{100 * value:.{digits}f}%" if _is_number(value) else "—"


def _points(value: Any, digits: int = 1) -> str:
    """A difference of fractions in percentage points: 0.12 -> '12.0'."""
    return f"{100 * value:.{digits}f}" if _is_number(value) else "—"


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _is_number(value) else "—"


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else "—"


def _usd(value: Any) -> str:
    """Dollars with enough significant digits for both $1,850/month and $0.0000743/request."""
    if not _is_number(value):
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{magnitude:,.0f}"
    elif magnitude >= 1:
        text = f"{magnitude:,.2f}"
    elif magnitude == 0:
        text = "0.00"
    else:
        decimals = min(10, max(4, 2 - math.floor(math.log10(magnitude)) + 1))
        text = f"{magnitude:.{decimals}f}"
    return ("−$" if value < 0 else "$") + text


def _wilson(entry: Rate | None, confidence: float = 0.95) -> dict[str, Any] | None:
    """A rate with its Wilson interval."""
    if entry is None or not entry.n or entry.value is None:
        return None
    low, high = wilson_interval(entry.successes, entry.n, confidence=confidence)
    return {"value": entry.successes / entry.n, "low": low, "high": high,
            "successes": entry.successes, "n": entry.n}


def _interval_level(decision: Decision) -> float:
    """Coverage of the decision's two-sided interval: 1 − 2α (repeated interval: nominal α)."""
    alpha = decision.details.nominal_alpha if decision.details.nominal_alpha is not None else decision.alpha
    return 1 - 2 * alpha


def _finite(value: Any) -> Any:
    """JSON-ready copy: NaN and infinities become null (JSON.parse rejects them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


#: What ``script_json`` escapes: characters that could end the script block or a line in it.
_SCRIPT_ESCAPES = str.maketrans({"&": "\\u0026", "<": "\\u003c", ">": "\\u003e", "\u2028": "\\u2028",
                                 "\u2029": "\\u2029"})
#: Pieces of embedded JSON are gathered to about this many characters before they are escaped and written.
_SCRIPT_PIECE = 1 << 13


def script_json_chunks(value: Any) -> Iterator[str]:
    """:func:`script_json` in pieces, encoded as they are written: the whole text is never one string. At
    10k samples it was ~3M characters, 4 bytes each when a text holds an emoji, and copied 3-4 times (the
    escapes, the template's join, the encoding) at the run's memory high."""
    pending: list[str] = []
    size = 0
    for piece in _json_pieces(_finite(value), depth=2):
        pending.append(piece)
        size += len(piece)
        if size >= _SCRIPT_PIECE:
            yield "".join(pending).translate(_SCRIPT_ESCAPES)
            pending, size = [], 0
    if pending:
        yield "".join(pending).translate(_SCRIPT_ESCAPES)


def _json_pieces(value: Any, depth: int) -> Iterator[str]:
    """Compact, key-sorted JSON of ``value`` in pieces: its lists and objects ``depth`` levels down are
    written item by item, what lies below in one ``json.dumps`` each (e.g. one browser sample). Not
    ``JSONEncoder.iterencode``: its C encoder returns every piece of the document at once."""
    if depth == 0 or not isinstance(value, dict | list):
        yield json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)
        return
    if isinstance(value, list):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _json_pieces(item, depth - 1)
        yield "]"
        return
    yield "{"
    for index, key in enumerate(sorted(value)):
        yield ("," if index else "") + json.dumps(key, ensure_ascii=False) + ":"
        yield from _json_pieces(value[key], depth - 1)
    yield "}"


def script_json(value: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">``: nothing in it can end the block or a line."""
    return Markup("".join(script_json_chunks(value)))  # noqa: S704 - escaped for the script-data context


def _sentence(text: Any) -> Any:
    """End a sentence from the summary with a full stop, unless it has one."""
    return text if str(text).rstrip()[-1:] in ("", ".", "!", "?") else f"{text}."


def _csp_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


# -- samples ------------------------------------------------------------------------------------------
def _cut(text: Any) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        text = json.dumps(text, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_TEXT_CHARS:
        return text[:MAX_TEXT_CHARS] + f"… [{len(text) - MAX_TEXT_CHARS:,} more characters in results.jsonl]"
    return text


def answer_text(answer: Answer) -> str:
    """What a model answered, in one line: the label, the text, or the extracted fields."""
    if not answer.ok:
        return f"{answer.outcome}: {answer.reason or ''}".rstrip(": ")
    if answer.label is not None:
        return answer.label
    if set(answer.fields) == {"text"}:
        return str(answer.fields["text"])
    return json.dumps(answer.fields, ensure_ascii=False, sort_keys=True)


def _side(call: CallRow) -> dict[str, Any]:
    answer = call.answer
    confidence = answer.confidence
    return {"answer": _cut(answer_text(answer)), "outcome": answer.outcome,
            "confidence": confidence if _is_number(confidence) else None,
            "escalate": answer.escalate, "output": _cut(call.output), "error": call.error}


def _browser_samples(rows: Iterable[SampleRow], scoring_mode: str) -> list[dict[str, Any]]:
    # Disagreements and errors first, so the cap never drops what a reader most needs. At most the cap is
    # held while reading: an unflagged entry that the flagged ones already push past the cap can never be
    # shown, so it goes at once (a 10k-sample run held 2 × the cap, ~8 MB at its memory high).
    flagged: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for row in rows:
        scores = row.scores
        flags = []
        if scores.agree is False:
            flags.append("disagree")
        if scores.candidate_correct is False:
            flags.append("candidate_wrong")
        if scores.reference_correct is False:
            flags.append("reference_wrong")
        if {row.candidate.answer.outcome, row.reference.answer.outcome} - {"ok"}:
            flags.append("invalid")
        gold = row.gold
        truth = gold if scoring_mode == "gold" and isinstance(gold, str) else row.reference.answer.label
        kept = flagged if flags else rest
        if len(kept) >= MAX_BROWSER_SAMPLES - (len(flagged) if kept is rest else 0):
            continue
        kept.append({
            "id": row.id,
            "text": _cut(row.text),
            "gold": _cut(gold),
            "truth": truth if isinstance(truth, str) else None,
            "segments": " · ".join(f"{k}: {v}" for k, v in row.segments.items()),
            "flags": flags,
            "scores": {k: v for k, v in (scores.metric_values or {}).items() if _is_number(v)},
            "candidate": _side(row.candidate),
            "reference": _side(row.reference),
        })
        if flags and len(flagged) + len(rest) > MAX_BROWSER_SAMPLES:
            rest.pop()  # the last unflagged entry is now past the cap, for good
    return flagged + rest


# -- sections -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupRow:
    name: str
    group: GroupDecision

    @property
    def decision(self) -> Decision:
        return self.group.decision


@dataclass(frozen=True)
class GroupDimension:
    dimension: str
    groups: list[GroupRow]

    @property
    def nogo(self) -> int:
        return sum(1 for g in self.groups if g.group.verdict == "NO-GO")


def _groups(record: RunRecord) -> list[GroupDimension]:
    """group_decisions per dimension, the label dimension first."""
    return [GroupDimension(dimension, [GroupRow(name, decision) for name, decision in groups.items()])
            for dimension, groups in record.group_decisions.items() if groups]


def _interval_entries(record: RunRecord, groups: list[GroupDimension]) -> list[plots.IntervalEntry]:
    def entry(name: str, decision: Decision) -> plots.IntervalEntry:
        low, high = decision.loss_interval or (None, None)
        return plots.IntervalEntry(name=name, loss=decision.loss, low=low, high=high,
                                   verdict=decision.verdict)

    entries = [entry("all samples", record.decision)]
    for dimension in groups:
        if len(dimension.groups) <= MAX_PLOTTED_GROUPS:
            entries += [entry(f"{dimension.dimension}: {g.name}", g.decision) for g in dimension.groups
                        if g.group.verdict is not None]
    return entries


def _top_confusions(confusion: ConfusionMatrix) -> list[dict[str, Any]]:
    """The largest off-diagonal cells: which true label the candidate most often answers as which."""
    cells: list[dict[str, Any]] = []
    for i, truth in enumerate(confusion.labels):
        row = confusion.matrix[i]
        total = sum(row)
        for j, count in enumerate(row):
            if count and confusion.columns[j] != truth:
                cells.append({"truth": truth, "answer": confusion.columns[j], "count": count,
                              "share": count / total if total else None, "row_total": total})
    cells.sort(key=lambda c: (-int(c["count"]), str(c["truth"]), str(c["answer"])))
    return cells[:TOP_CONFUSIONS]


def _routing(record: RunRecord) -> dict[str, Any] | None:
    routing = record.routing
    if not routing.available or not routing.sweep:
        return None
    sweep = sorted(routing.sweep, key=lambda row: row.t)
    start = routing.chosen or routing.seed_default or sweep[0]
    index = min(range(len(sweep)), key=lambda i: abs(sweep[i].t - start.t))
    quality = "accuracy" if routing.mode == "gold" else "agreement with the reference"
    return {"data": routing, "sweep": sweep, "start_index": index, "start": sweep[index], "quality": quality,
            "calibration": routing.calibration}


def _projection(record: RunRecord) -> dict[str, Any] | None:
    projection = record.projection
    if not projection.available or not projection.rows:
        return None
    order = {"all_reference": 0, "all_candidate": 1, "routed": 2, "routed_held_out": 3}
    rows = sorted(projection.rows, key=lambda r: (r.batch, r.caching, order.get(r.stack, 9)))
    return {"data": projection, "rows": rows}


def _selection(record: RunRecord) -> dict[str, Any] | None:
    """The configurations section: the table, the picture and the prompt gaps (None for one candidate)."""
    selection = record.selection
    if selection is None:
        return None
    details = record.decision.details
    reference_quality = details.reference_accuracy if record.scoring_mode == "gold" else 1.0
    profile = record.projection.caching_profile
    reference = next((m for m in profile.models if m.role == "reference"), None) if profile else None
    reference_cost = 1000 * reference.option(reference.cheapest).per_request_usd if reference else None
    points = []
    for item in selection.configurations:
        if item.quality is None:
            continue
        points.append(plots.ConfigurationPoint(
            name=item.name, cost_per_1k=item.cost_per_1k_usd, quality=item.quality,
            interval=item.quality_interval, go=item.go, verdict=item.verdict,
            recommended=item.name == selection.recommended))
        routed = item.routed
        pays = routed is not None and routed.pays and routed.escalation_rate > 0
        if routed is not None and pays and reference_quality is not None:
            points.append(plots.ConfigurationPoint(
                name=f"{item.name} → reference (t = {routed.threshold:.2f})",
                cost_per_1k=routed.cost_per_1k_usd,
                quality=reference_quality - routed.quality_loss, interval=None, go=False, verdict="routed",
                recommended=False, routed=True))
    quality_name = "accuracy" if record.scoring_mode == "gold" else "agreement"
    return {"data": selection, "reference_cost": reference_cost, "reference_quality": reference_quality,
            "plot": _figure(_plot(plots.configurations_svg, points, reference_quality=reference_quality,
                                  reference_cost=reference_cost, quality_name=quality_name))}


def _plot(draw: Any, *args: Any, **kwargs: Any) -> Any:
    """A plot, or a short note in its place: a drawing problem must never cost the run its report."""
    try:
        return draw(*args, **kwargs)
    except Exception as error:  # noqa: BLE001
        return PlotFailure(f"{type(error).__name__}: {error}")


class PlotFailure(str):
    """Why a plot could not be drawn (shown in its place)."""


def _figure(drawn: str | None) -> Markup | None:
    """A plot's SVG for the page, or the escaped reason it is missing."""
    if isinstance(drawn, PlotFailure):
        return Markup('<p class="muted small plot-failed">This plot could not be drawn: %s</p>') % drawn
    return Markup(drawn) if drawn else None  # noqa: S704 - plots.py escapes every text it writes


def build_context(record: RunRecord, rows: Sequence[SampleRow]) -> dict[str, Any]:
    """Everything the template shows, with the sections that do not apply set to None."""
    metrics = record.metrics
    decision = record.decision
    scoring = record.scoring_mode
    groups = _groups(record)
    nogo = [{"dimension": d.dimension, "name": g.name, "decision": g.decision}
            for d in groups for g in d.groups if g.group.verdict == "NO-GO"]
    routing = _routing(record)
    cost_quality: dict[str, Any] | None = None
    if routing:
        drawn = _plot(plots.cost_quality_svg, routing["data"], quality_name=routing["quality"].split(" ")[0])
        if isinstance(drawn, PlotFailure):
            cost_quality = {"svg": _figure(drawn), "map": {}}
        elif drawn:
            cost_quality = {"svg": _figure(drawn[0]), "map": drawn[1]}
    confusion = metrics.confusion_matrix
    per_label = metrics.per_label
    label_groups = next((d.groups for d in groups if d.dimension == "label"), [])
    labels = list(per_label) if per_label else (list(confusion.labels) if confusion else [])
    samples = _browser_samples(rows, scoring)
    costs = record.routing.costs
    data = {
        "sweep": [point.model_dump() for point in routing["sweep"]] if routing else [],
        "start_index": routing["start_index"] if routing else 0,
        "plot_map": cost_quality["map"] if cost_quality else {},
        "always_reference_per_1k": costs.always_reference_per_1k if routing and costs else None,
        "samples": samples,
        "total_samples": len(rows),
        "labels": labels,
        "gold": scoring == "gold",
    }
    return {
        "s": record,
        "metrics": metrics,
        "decision": decision,
        "scoring": scoring,
        "level": _interval_level(decision),
        "groups": groups,
        "nogo_groups": nogo,
        "label_verdicts": {g.name: g.group.verdict for g in label_groups},
        "validity": record.validity,
        "per_label": per_label,
        "labels": labels,
        "confusion": confusion,
        "routing": routing,
        "projection": _projection(record),
        "selection": _selection(record),
        "verbosity": record.verbosity,
        "noise": record.reference_noise,
        "sequential": record.sequential,
        "plot_confusion": (_figure(_plot(plots.confusion_matrix_svg, confusion))
                           if confusion is not None and len(confusion.labels) <= MAX_MATRIX_LABELS else None),
        "top_confusions": _top_confusions(confusion) if confusion is not None else [],
        "plot_cost_quality": cost_quality["svg"] if cost_quality else None,
        "plot_reliability": _figure(_plot(plots.reliability_svg,
                                          routing["calibration"] if routing else None)),
        "plot_intervals": _figure(_plot(plots.loss_intervals_svg, _interval_entries(record, groups),
                                        decision.margin)),
        "flagged_count": sum(1 for s in samples if {"disagree", "candidate_wrong"} & set(s["flags"])),
        "data": data,  # embedded by _render_chunks as it is written
    }


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Jinja's per-user bytecode cache (a 0700 folder it checks it owns): compiling the report template
    costs 0.15 s a run, loading its bytecode a few ms. Keyed by the template's checksum, so an edited
    template is compiled afresh; no usable folder means compiling every time, never an error."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


@functools.cache
def _environment() -> jinja2.Environment:
    """One environment a process (its compiled template is reused by every report written)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evalkit.report", "templates"),
        bytecode_cache=_bytecode_cache(),
        autoescape=True,  # model output and dataset text are untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(pct=_pct, points=_points, num=_num, usd=_usd, count=_count, wilson=_wilson,
                       stack_titles=STACK_TITLES, is_number=_is_number)
    env.filters["csp_hash"] = _csp_hash
    env.filters["sentence"] = _sentence
    env.filters["tojson_pretty"] = lambda value: json.dumps(_finite(value), indent=1, ensure_ascii=False,
                                                            sort_keys=True)
    return env


def render_html(record: RunRecord, rows: Sequence[SampleRow], *,
                history_href: str = "../history.html") -> str:
    """The self-contained report page for one run; ``history_href`` links the task's history page
    (reports/<task>/history.html) from where the page is written."""
    return "".join(_render_chunks(record, rows, history_href=history_href))


def write_html(path: Path, record: RunRecord, rows: Sequence[SampleRow], *,
               history_href: str = "../history.html") -> None:
    """:func:`render_html` written to ``path`` (atomically) piece by piece as the template yields it: the
    page is never one string in memory (at 10k samples the whole string, its join and its encoding were
    ~3 copies of a 3.5 MB page at the run's memory high)."""
    atomic_write_lines(path, _render_chunks(record, rows, history_href=history_href))


def _render_chunks(record: RunRecord, rows: Sequence[SampleRow], *, history_href: str) -> Iterator[str]:
    """The page as the template yields it, with the embedded data streamed in where the template puts it
    (its place is held by a marker no page text can contain: made afresh, with NUL characters)."""
    context = build_context(record, rows)
    data = context.pop("data")
    marker = f"\x00evalkit-data-{secrets.token_hex(8)}\x00"
    chunks = _environment().get_template("report.html.j2").generate(
        **context, data_json=Markup(marker), history_href=history_href)  # noqa: S704 - no user text
    placed = False
    for chunk in chunks:
        if marker not in chunk:
            yield chunk
            continue
        before, after = chunk.split(marker)
        yield before
        yield from script_json_chunks(data)
        yield after
        placed = True
    if not placed:
        raise AssertionError("the report template did not place the embedded data")


#: A staging folder is ``.<run-id>.<pid>.<random>`` (owner-only, as mkdtemp makes it). One left by a process
#: that died (or older than a day, e.g. from another machine) is removed by the next report written there.
_STAGING = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+$")
_STALE_S = 24 * 3600


def clean_staging(parent: Path) -> list[Path]:
    """Remove staging folders under ``parent`` whose writer is gone; returns what was removed."""
    removed = []
    now = time.time()
    for path in parent.glob(".*"):
        match = _STAGING.match(path.name)
        if not match or not path.is_dir():
            continue
        try:
            stale = not pid_alive(int(match["pid"])) or now - path.stat().st_mtime > _STALE_S
        except OSError:
            continue
        if stale and int(match["pid"]) != os.getpid():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def write_run_folder(folder: Path, record: RunRecord, rows: Sequence[SampleRow]) -> Path:
    """Write the three run files into ``folder`` all at once (temp folder + rename). A full or read-only
    disk is a :class:`StateError` naming the folder; every answer is in the response cache already."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        clean_staging(folder.parent)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{os.getpid()}.", dir=folder.parent))
    except OSError as exc:
        raise _report_error(folder, exc) from None
    try:
        atomic_write_lines(staging / "results.jsonl", (row.model_dump_json() + "\n" for row in rows))
        atomic_write_text(staging / "summary.json", record.model_dump_json(indent=2) + "\n")
        # A configuration's folder is reports/<task>/<run>/configs/<name>/: three levels below the history.
        nested = folder.parent.name == "configs"
        write_html(staging / "report.html", record, rows,
                   history_href="../../../history.html" if nested else "../history.html")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise _report_error(folder, exc) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _report_error(folder: Path, exc: OSError) -> StateError:
    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied"}.get(
        exc.errno or 0, exc.strerror or str(exc))
    return StateError(f"cannot write the report folder {folder}: {why}", path=folder,
                      hint="make room (or choose --reports-dir / reports_dir elsewhere) and run the same "
                           "command again: every answer is in the response cache, so it costs nothing")
