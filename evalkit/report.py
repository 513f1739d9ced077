"""Run outputs: ``summary.json``, ``results.jsonl`` and a self-contained ``report.html``.

The report folder is assembled in a hidden temporary folder and renamed into place, so a crash never
leaves a half-written report behind. Every value from a dataset or a model is escaped by jinja2's
autoescape: model output is untrusted input.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import jinja2

from evalkit._io import atomic_write_json, atomic_write_jsonl, atomic_write_text


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _rate(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "—"
    return f"{100 * entry['value']:.1f}% ({entry['successes']}/{entry['n']})"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _answer(side: dict[str, Any]) -> str:
    answer = side["answer"]
    if answer["outcome"] == "ok":
        confidence = answer.get("confidence")
        return answer["label"] + (f" ({confidence:.2f})" if isinstance(confidence, int | float) else "")
    return f"{answer['outcome']}: {answer.get('reason') or ''}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evalkit", "templates"),
        autoescape=True,  # model output and dataset text are untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(pct=_pct, rate=_rate, num=_num, answer=_answer)
    return env


def render_html(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    disagreements = [row for row in rows if row["scores"]["agree"] is False
                     or row["scores"].get("candidate_correct") is False]
    return _environment().get_template("report.html.j2").render(s=summary, rows=rows,
                                                                 disagreements=disagreements)


def write_run_folder(folder: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """Write the three run files into ``folder`` all at once (temp folder + rename)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        atomic_write_jsonl(staging / "results.jsonl", rows)
        atomic_write_json(staging / "summary.json", summary)
        atomic_write_text(staging / "report.html", render_html(summary, rows))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
