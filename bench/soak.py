"""Soak test: evalkit runs killed at random moments mid-flight against a faulty simulator on loopback;
prints what was lost, what was billed twice, and how much of that evalkit itself reported.

Two simulators are served over HTTP (127.0.0.1), from project folders of their own:

* the *faulty* one injects, on every endpoint (messages, count_tokens, batch create / list / retrieve /
  results / cancel), 429s with retry-after, 529s, 500s, dropped connections and slow answers of 1.5 s
  against a 1 s client timeout; it creates batches and then answers 504 (``after_create``), answers and
  bills messages and then answers 504 (``after_answer``), and returns errored / expired batch items;
* the *slow-create* one takes 1.5 s to create each batch, so a kill can land between the batch's creation
  and the ledger's record of it.

Each scenario is a fresh project whose prompt carries the scenario's number (so the billing ledgers tell the
scenarios apart) and is one of: a real-time run, a batch run, a batch run killed during its create call,
two real-time runs at once on one cache, two batch runs at once. Every scenario's first process is killed
(``kill -9``) at a random moment while its requests or batches are in flight (checked at the moment of the
kill: an in-flight mark in the cache, an open record in the batch ledger); then the run is finished by
running the same command again (in the two-process scenarios, by the survivor).

Counting happens after every batch either simulator holds has ended and been billed (the simulator bills a
batch when it is looked at; an orphan nobody looks at would hide a double payment). Per scenario:

* lost: sample answers missing (an error outcome) in the finished run;
* billed twice: requests the simulators billed more than once (same request body);
* reported: what evalkit's finished runs reported as possibly billed twice
  (``execution.possibly_billed_twice`` plus ``batch.duplicate_items``), including what killed runs left
  for them to report;
* silent: billed twice beyond what was reported — the number that must be 0.

    python bench/soak.py --runs 24 --samples 8
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import make_project, served_simulator, table

from evalkit._hashing import digest
from evalkit.config import load_settings
from evalkit.record.files import read_record, read_rows
from evalkit.run.prepare import prepare
from evalkit.spec import load_task

KINDS = ["realtime", "batch", "create", "two-realtime", "two-batch"]
SIMULATED = {"batch_delay_s": "1.0", "batch_errored_fraction": "0.05", "batch_expired_fraction": "0.05",
             "latency_ms": "150"}
FAULTY = """
[simulator.faults]
endpoints = ["all"]
rate_limit = 0.03
overloaded = 0.03
server_error = 0.03
disconnect = 0.02
slow = 0.05
slow_ms = 1500
after_create = 0.2
after_answer = 0.03
"""
SLOW_CREATE = """
[simulator.faults]
endpoints = ["batch_create"]
slow = 1.0
slow_ms = 1500
"""
#: The client: a 1 s timeout that is really 1 s (not sized up by max_tokens), quick polls, and creates that
#: settle within 4 s.
CLIENT = {"concurrency": "4", "max_retries": "6", "request_timeout_s": "1", "poll_initial_s": "0.2",
          "poll_max_s": "0.5", "max_attempts": "4", "reconcile_delay_s": "0.2"}
CLIENT_EXTRA = {"evalkit": ["timeout_per_output_token_s = 0"],
                "batch": ["create_settle_s = 4", "create_retries = 8"]}


def _add_lines(toml: Path, extra: dict[str, list[str]]) -> None:
    lines = toml.read_text().splitlines()
    for section, added in extra.items():
        at = lines.index(f"[{section}]") + 1
        lines[at:at] = added
    toml.write_text("\n".join(lines) + "\n")


def simulator_project(root: Path, faults: str) -> Path:
    make_project(root, settings=SIMULATED)
    with (root / "evalkit.toml").open("a") as handle:
        handle.write(faults)
    return root


def scenario_project(root: Path, number: int) -> Path:
    make_project(root, settings=CLIENT)
    _add_lines(root / "evalkit.toml", CLIENT_EXTRA)
    task = root / "tasks" / "triage.yaml"
    text = task.read_text()
    marker = "Answer with JSON only, matching the schema."
    assert marker in text
    task.write_text(text.replace(marker, f"{marker} (Soak scenario {number}.)"))
    return root


def expected_bodies(project: Path, samples: int, mode: str) -> set[str]:
    """The request bodies a run of this project sends (as the simulator hashes them)."""
    task = load_task(project / "tasks" / "triage.yaml")
    prepared = prepare(task, load_settings(project), sample_size=samples, mode=mode)
    return {digest(r.params) for r in [*prepared.requests, *prepared.noise_requests]}


def _in_flight(project: Path, pid: int) -> tuple[bool, bool]:
    """(process ``pid`` has a request in flight, or a batch is open in the ledger; a create is between the
    API and the ledger)."""
    marks = False
    for path in (project / ".evalkit" / "cache" / "claims").glob("*.inflight"):
        try:
            marks = marks or json.loads(path.read_text()).get("pid") == pid
        except (OSError, ValueError):
            continue
    states = []
    for path in (project / ".evalkit" / "batches").glob("*.json"):
        try:
            states.append(json.loads(path.read_text())["state"])
        except (OSError, ValueError, KeyError):
            continue
    return marks or any(s in ("submitting", "submitted", "verifying") for s in states), "submitting" in states


@dataclass
class Scenario:
    number: int
    kind: str
    project: Path
    killed_mid_flight: bool = False
    killed_in_create: bool = False
    exit_codes: list[int] = field(default_factory=list)
    lost: int = 0
    reported: int = 0
    answers: int = 0
    bodies: set[str] = field(default_factory=set)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _command(samples: int, mode: str, run_id: str) -> list[str]:
    return [sys.executable, "-m", "evalkit", "run", "tasks/triage.yaml", "-q", "-n", str(samples), "--mode",
            mode, "--fallback", "realtime", "--run-id", run_id]


def _kill_mid_flight(process: subprocess.Popen[bytes], scenario: Scenario, rng: random.Random) -> None:
    """kill -9 at a random moment while the process has something in flight: once the first request or
    batch is out, after a random delay, at the next moment something is (for "create": during a create)."""
    in_create = scenario.kind == "create"

    def flying() -> bool:
        busy, creating = _in_flight(scenario.project, process.pid)
        return creating if in_create else busy

    deadline = time.monotonic() + 180
    while process.poll() is None and time.monotonic() < deadline and not flying():
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.5 if in_create else 1.0))
    while process.poll() is None and time.monotonic() < deadline and not flying():
        time.sleep(0.005)
    if process.poll() is not None:
        scenario.notes.append("the run ended before the kill")
        return
    busy, creating = _in_flight(scenario.project, process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    scenario.killed_mid_flight = busy
    scenario.killed_in_create = creating


def _finished(scenario: Scenario, run_id: str, samples: int) -> None:
    folder = scenario.project / "reports" / "triage" / run_id
    if not (folder / "summary.json").exists():
        scenario.lost += 2 * samples
        return
    record = read_record(folder)
    rows = read_rows(folder)
    scenario.answers += 2 * len(rows)
    scenario.lost += sum(1 for row in rows for side in (row.candidate, row.reference)
                         if side.answer.outcome == "error") + 2 * (samples - len(rows))
    scenario.reported += record.execution.possibly_billed_twice + record.batch.duplicate_items


def run_scenario(scenario: Scenario, env: dict[str, str], samples: int, rng: random.Random) -> None:
    started = time.monotonic()
    mode = "realtime" if "realtime" in scenario.kind else "batch"
    scenario.bodies = expected_bodies(scenario.project, samples, mode)
    cwd, quiet = scenario.project, subprocess.DEVNULL
    if scenario.kind.startswith("two-"):
        first = subprocess.Popen(_command(samples, mode, "a"), cwd=cwd, env=env, stdout=quiet, stderr=quiet)
        second = subprocess.Popen(_command(samples, mode, "b"), cwd=cwd, env=env, stdout=quiet,
                                  stderr=subprocess.PIPE)
        victim, survivor, survivor_id = (first, second, "b") if rng.random() < 0.5 else (second, first, "a")
        _kill_mid_flight(victim, scenario, rng)
        _, err = survivor.communicate(timeout=900)
        scenario.exit_codes.append(survivor.returncode)
        if survivor.returncode != 0:
            scenario.notes.append(f"survivor exit {survivor.returncode}: {(err or b'').decode()[-300:]}")
        _finished(scenario, survivor_id, samples)
    else:
        victim = subprocess.Popen(_command(samples, mode, "killed"), cwd=cwd, env=env, stdout=quiet,
                                  stderr=quiet)
        _kill_mid_flight(victim, scenario, rng)
        final = subprocess.run(_command(samples, mode, "final"), cwd=cwd, env=env, capture_output=True,
                               text=True, timeout=900)
        scenario.exit_codes.append(final.returncode)
        if final.returncode != 0:
            scenario.notes.append(f"final exit {final.returncode}: {final.stderr[-300:]}")
        _finished(scenario, "final", samples)
    scenario.seconds = time.monotonic() - started


def _get(base_url: str, path: str) -> Any:
    request = urllib.request.Request(f"{base_url}{path}", headers={"x-api-key": "soak",
                                                                     "anthropic-version": "2023-06-01"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def process_every_batch(base_url: str) -> int:
    """Look at every batch the simulator holds until each has ended (and so been billed)."""
    for _ in range(120):
        try:
            page = _get(base_url, "/v1/messages/batches?limit=1000")
        except OSError:  # an injected fault: look again
            time.sleep(0.2)
            continue
        open_batches = [b for b in page["data"] if b["processing_status"] != "ended"]
        if not open_batches:
            return len(page["data"])
        time.sleep(0.5)
    raise SystemExit("batches did not end")


def _stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/_simulator/stats", timeout=60) as response:
        return json.load(response)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=24, help="scenarios (each with one kill -9)")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the per-scenario results here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.monotonic()
    scenarios: list[Scenario] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        faulty = simulator_project(tmp / "sim-faulty", FAULTY)
        slow = simulator_project(tmp / "sim-slow-create", SLOW_CREATE)
        with served_simulator(faulty, tmp / "state-faulty") as faulty_env, \
                served_simulator(slow, tmp / "state-slow") as slow_env:
            for number in range(args.runs):
                kind = KINDS[number % len(KINDS)]
                scenario = Scenario(number, kind, scenario_project(tmp / f"s{number}", number))
                run_scenario(scenario, slow_env if kind == "create" else faulty_env, args.samples, rng)
                scenarios.append(scenario)
                landed = "mid-flight" if scenario.killed_mid_flight else "late"
                print(f"scenario {number:2d} {kind:12s} kill {landed:10s}"
                      f"{' (in create)' if scenario.killed_in_create else '':12s} exit {scenario.exit_codes} "
                      f"lost {scenario.lost} reported {scenario.reported} {scenario.seconds:.0f} s "
                      f"{'; '.join(scenario.notes)}", flush=True)
            time.sleep(2.0)  # slow answers abandoned by their clients finish (and are billed) at the server
            batches = sum(process_every_batch(env["ANTHROPIC_BASE_URL"]) for env in (faulty_env, slow_env))
            stats = [_stats(env["ANTHROPIC_BASE_URL"]) for env in (faulty_env, slow_env)]
            ledgers = [tmp / "state-faulty" / "billing.jsonl", tmp / "state-slow" / "billing.jsonl"]
            entries = [json.loads(line) for path in ledgers if path.exists()
                       for line in path.read_text().splitlines() if line.strip()]
    counts = Counter(entry["body_sha256"] for entry in entries)
    owner = {body: s.number for s in scenarios for body in s.bodies}
    unattributed = sum(count for body, count in counts.items() if body not in owner)
    rows, totals = [], Counter()
    results = []
    for kind in KINDS:
        group = [s for s in scenarios if s.kind == kind]
        if not group:
            continue
        billed = sum(counts[b] for s in group for b in s.bodies)
        twice = sum(max(counts[b] - 1, 0) for s in group for b in s.bodies)
        reported = sum(s.reported for s in group)
        silent = sum(max(sum(max(counts[b] - 1, 0) for b in s.bodies) - s.reported, 0) for s in group)
        row = {"kind": kind, "runs": len(group), "kills_mid_flight": sum(s.killed_mid_flight for s in group),
               "kills_in_create": sum(s.killed_in_create for s in group),
               "failed_runs": sum(any(code != 0 for code in s.exit_codes) for s in group),
               "answers": sum(s.answers for s in group), "lost": sum(s.lost for s in group),
               "billed": billed, "billed_twice": twice, "reported_possibly_twice": reported, "silent": silent}
        totals.update({k: v for k, v in row.items() if isinstance(v, int)})
        rows.append(row)
    for s in scenarios:
        results.append({"number": s.number, "kind": s.kind, "mid_flight": s.killed_mid_flight,
                        "in_create": s.killed_in_create, "exit_codes": s.exit_codes, "lost": s.lost,
                        "billed_twice": sum(max(counts[b] - 1, 0) for b in s.bodies), "reported": s.reported,
                        "seconds": round(s.seconds, 1), "notes": s.notes})
    headers = ["scenario", "runs", "kills mid-flight", "in create", "failed", "answers", "lost", "billed",
               "billed twice", "reported possibly twice", "silent double-billed"]
    keys = ["kind", "runs", "kills_mid_flight", "kills_in_create", "failed_runs", "answers", "lost", "billed",
            "billed_twice", "reported_possibly_twice", "silent"]
    printed = [[row[k] for k in keys] for row in rows] + [["all", *(totals[k] for k in keys[1:])]]
    faults: Counter[str] = Counter()
    for stat in stats:
        faults.update(stat.get("faults_injected", {}))
    print()
    print(table(headers, printed))
    print()
    print(f"soak ({time.monotonic() - started:.0f} s, {args.samples} samples per run): {len(scenarios)} "
          f"scenarios, {totals['kills_mid_flight']} kills mid-flight ({totals['kills_in_create']} between a "
          f"create and its ledger record); {sum(faults.values())} faults injected "
          f"({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))}); {batches} batches processed before "
          f"counting; {len(entries)} billed requests, {unattributed} unattributed")
    print(f"lost = {totals['lost']}, silent double-billed = {totals['silent']}, billed twice = "
          f"{totals['billed_twice']}, reported as possibly billed twice = "
          f"{totals['reported_possibly_twice']}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "scenarios": results, "faults": dict(faults),
                                         "batches": batches, "billed": len(entries),
                                         "unattributed": unattributed}, indent=1) + "\n")
    bad = totals["lost"] or totals["silent"] or totals["failed_runs"] or unattributed
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
