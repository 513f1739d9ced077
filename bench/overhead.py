"""Fixed overhead (issue 22): a cached 500-sample re-run, tune on cached answers, the report's render time.

    python bench/overhead.py [--runs 3]

Fills a throwaway project's response cache with one real-time run on the in-process simulator, then
times whole processes (wall, and CPU = user + system of the child from ``getrusage``) and prints
medians; the render time is measured in one process after loading the run's files (first render, which
pays for first imports, and the median of three more). Prints a digest of the cached re-run's
summary.json (without times, run id and paths) and results.jsonl: run it from two checkouts on one
``--project`` folder (the simulator's answers depend on the project) and compare.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import evalkit, make_project, table

RUN = ("run", "tasks/triage.yaml", "-q", "-n", "500", "--mode", "realtime", "--offline")
TUNE = ("tune", "tasks/triage.yaml", "-n", "500", "--mode", "realtime", "--offline")
RENDER = """
import json, statistics, sys, time
from pathlib import Path
from evalkit.record.model import RunRecord
from evalkit.record.rows import SampleRow
from evalkit.report.html import render_html
folder = Path(sys.argv[1])
record = RunRecord.model_validate_json((folder / "summary.json").read_text())
rows = [SampleRow.model_validate_json(line) for line in (folder / "results.jsonl").read_text().splitlines()]
times = []
for _ in range(4):
    started = time.perf_counter()
    render_html(record, rows)
    times.append(time.perf_counter() - started)
print(json.dumps({"first": times[0], "warm": statistics.median(times[1:]), "samples": len(rows)}))
"""
VOLATILE = {"created_at", "finished_at", "seconds", "run_id", "source", "endpoint"}  # times, ids, paths


def _timed(project: Path, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``evalkit`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, _ = evalkit(project, *args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _stable(value: Any) -> Any:
    """summary.json without what differs between two runs of the same answers (times, run id)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _digest(folder: Path) -> str:
    summary = json.dumps(_stable(json.loads((folder / "summary.json").read_text())), sort_keys=True)
    return hashlib.sha256(summary.encode() + (folder / "results.jsonl").read_bytes()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each command (median quoted)")
    parser.add_argument("--project", type=Path, default=None,
                        help="keep the project (and its cache) in this folder, made if missing: the "
                             "simulator's answers depend on the project, so compare two checkouts on one")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = options.project or Path(tmp) / "p"
        if not (project / "evalkit.toml").exists():
            make_project(project)
        evalkit(project, *RUN, "--run-id", "fill")
        runs = [_timed(project, *RUN, "--run-id", f"cached-{i}") for i in range(options.runs)]
        tunes = [_timed(project, *TUNE) for _ in range(options.runs)]
        folder = project / "reports" / "triage"
        digests = {_digest(folder / f"cached-{i}") for i in range(options.runs)}
        started = time.perf_counter()
        rendered = json.loads(subprocess.run([sys.executable, "-c", RENDER, str(folder / "cached-0")],
                                             cwd=project, capture_output=True, text=True, check=True).stdout)
        render_process = time.perf_counter() - started

    def median(values: list[tuple[float, float]], index: int) -> str:
        return f"{statistics.median(v[index] for v in values):.2f}"

    print(table(["measure (median)", "wall s", "CPU s"], [
        ["evalkit run, 500 samples, all cached", median(runs, 0), median(runs, 1)],
        ["evalkit tune, 500 samples, cached answers", median(tunes, 0), median(tunes, 1)],
        [f"report render, {rendered['samples']} samples, first in a process", f"{rendered['first']:.2f}", ""],
        [f"report render, {rendered['samples']} samples, again", f"{rendered['warm']:.3f}", ""],
        ["render process (imports + load + 4 renders)", f"{render_process:.2f}", ""],
    ]))
    # Equal digests from two checkouts = the same decision, metrics and rows, bit for bit.
    print(f"cached re-run outputs (summary.json without times, run id and paths; results.jsonl): sha256 "
          f"{', '.join(sorted(digests))}")


if __name__ == "__main__":
    main()
