"""Fixed overhead (issue 22): a cached 500-sample re-run, tune on cached answers, the report's render time.

    python bench/overhead.py [--runs 5] [--project DIR] [--against CHECKOUT] [--bytecode]

Fills a throwaway project's response cache with one real-time run on the in-process simulator, then
times whole processes (wall, and CPU = user + system of the child from ``getrusage``) and prints
medians; the render time is measured in one process after loading the run's files (first render, which
pays for first imports, and the median of three more). Prints a digest of the cached re-run's
summary.json (without times, run id and paths) and results.jsonl, and of tune's routing.json (without
its time): run it from two checkouts on one ``--project`` folder (the simulator's answers depend on the
project) and compare.

``--against CHECKOUT`` times a second checkout of evalkit (its source folder put first on PYTHONPATH,
same interpreter and packages) in alternating runs with this one on the same project, and prints both,
the ratio of the medians and both digests: on a shared machine alternating is what makes the two
comparable. ``--bytecode`` first compiles the checkouts' ``evalkit`` sources (``compileall``, what
``pip install`` does): with ``PYTHONDONTWRITEBYTECODE`` set, an editable checkout otherwise recompiles
every module in every process (about 0.2 CPU s here).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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


def _timed(project: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of one ``evalkit`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, _ = evalkit(project, *args, env=env)
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


def _routing_digest(path: Path) -> str:
    """tune's routing.json without its time (``evidence.created_at``)."""
    content = json.loads(path.read_text())
    content.get("evidence", {}).pop("created_at", None)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _env(checkout: Path | None) -> dict[str, str] | None:
    """The environment that runs ``checkout``'s evalkit (None: the one this interpreter imports)."""
    if checkout is None:
        return None
    return {**os.environ, "PYTHONPATH": str(checkout.resolve())}


def _compile(checkout: Path) -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(checkout / "evalkit")], check=True,
                   stdout=subprocess.DEVNULL)


def _median(values: list[tuple[float, float]], index: int) -> float:
    return statistics.median(v[index] for v in values)


def _compare(project: Path, against: Path, runs: int) -> None:
    """This checkout and ``against``, alternating run by run; medians, ratios, digests."""
    sides = {"this": None, "against": against}
    timed: dict[str, dict[str, list[tuple[float, float]]]] = {s: {"run": [], "tune": []} for s in sides}
    digests: dict[str, set[str]] = {s: set() for s in sides}
    routing: dict[str, set[str]] = {s: set() for s in sides}
    loads = [os.getloadavg()[0]]
    for side, checkout in sides.items():  # one warm-up each (file system, page cache)
        evalkit(project, *RUN, "--run-id", f"warm-{side}", env=_env(checkout))
    for i in range(runs):
        for side, checkout in sides.items():
            run_id = f"{side}-{i}"
            timed[side]["run"].append(_timed(project, *RUN, "--run-id", run_id, env=_env(checkout)))
            digests[side].add(_digest(project / "reports" / "triage" / run_id))
            timed[side]["tune"].append(_timed(project, *TUNE, env=_env(checkout)))
            routing[side].add(_routing_digest(project / "reports" / "triage" / "routing.json"))
        loads.append(os.getloadavg()[0])
    rows = []
    for command in ("run", "tune"):
        for index, unit in ((1, "CPU s"), (0, "wall s")):
            this, other = _median(timed["this"][command], index), _median(timed["against"][command], index)
            rows.append([f"evalkit {command}, 500 samples, cached, {unit}", f"{other:.2f}", f"{this:.2f}",
                         f"{this / other:.2f}"])
    print(table(["measure (median)", f"against ({against})", "this checkout", "this / against"], rows))
    print(f"{runs} alternating runs of each; load average (1 min) during: {min(loads):.1f}-{max(loads):.1f}")
    for side in sides:
        print(f"{side}: cached re-run digest {', '.join(sorted(digests[side]))}; "
              f"routing.json digest {', '.join(sorted(routing[side]))}")
    same = digests["this"] == digests["against"] and routing["this"] == routing["against"]
    print("outputs identical" if same and len(digests["this"]) == 1 else "OUTPUTS DIFFER")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command (median quoted)")
    parser.add_argument("--project", type=Path, default=None,
                        help="keep the project (and its cache) in this folder, made if missing: the "
                             "simulator's answers depend on the project, so compare two checkouts on one")
    parser.add_argument("--against", type=Path, default=None,
                        help="another evalkit checkout to time in alternating runs with this one")
    parser.add_argument("--bytecode", action="store_true",
                        help="compile the checkouts' evalkit sources first, as pip install does")
    options = parser.parse_args()
    if options.bytecode:
        _compile(Path(__file__).resolve().parents[1])
        if options.against is not None:
            _compile(options.against)
    with tempfile.TemporaryDirectory() as tmp:
        project = options.project or Path(tmp) / "p"
        if not (project / "evalkit.toml").exists():
            make_project(project)
        evalkit(project, *RUN, "--run-id", "fill")
        if options.against is not None:
            _compare(project, options.against, options.runs)
            return
        runs = [_timed(project, *RUN, "--run-id", f"cached-{i}") for i in range(options.runs)]
        tunes = [_timed(project, *TUNE) for _ in range(options.runs)]
        folder = project / "reports" / "triage"
        digests = {_digest(folder / f"cached-{i}") for i in range(options.runs)}
        routing = _routing_digest(folder / "routing.json")
        started = time.perf_counter()
        rendered = json.loads(subprocess.run([sys.executable, "-c", RENDER, str(folder / "cached-0")],
                                             cwd=project, capture_output=True, text=True, check=True).stdout)
        render_process = time.perf_counter() - started

    def median(values: list[tuple[float, float]], index: int) -> str:
        return f"{_median(values, index):.2f}"

    print(table(["measure (median)", "wall s", "CPU s"], [
        ["evalkit run, 500 samples, all cached", median(runs, 0), median(runs, 1)],
        ["evalkit tune, 500 samples, cached answers", median(tunes, 0), median(tunes, 1)],
        [f"report render, {rendered['samples']} samples, first in a process", f"{rendered['first']:.2f}", ""],
        [f"report render, {rendered['samples']} samples, again", f"{rendered['warm']:.3f}", ""],
        ["render process (imports + load + 4 renders)", f"{render_process:.2f}", ""],
    ]))
    # Equal digests from two checkouts = the same decision, metrics and rows, bit for bit.
    print(f"cached re-run outputs (summary.json without times, run id and paths; results.jsonl): sha256 "
          f"{', '.join(sorted(digests))}; tune's routing.json (without its time): sha256 {routing}")


if __name__ == "__main__":
    main()
