"""Soak test: many faulty evalkit runs against the simulator on loopback; prints what was lost.

Each run gets a fresh project copy and a simulator served over HTTP (127.0.0.1) that injects 429s with
retry-after, 529s, 500s, dropped connections and slow responses, and errored/expired batch items.
Every few runs the evalkit process is killed mid-run and started again. At the end it counts samples
without an answer (lost) and requests the simulator billed more than once (double-billed).

    python bench/soak.py --runs 8 --samples 30
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
from pathlib import Path

from _common import make_project, served_simulator

from evalkit.record.files import read_record, read_rows

FAULTS = """
[simulator.faults]
rate_limit = 0.06
overloaded = 0.04
server_error = 0.04
disconnect = 0.03
slow = 0.03
slow_ms = 300
"""


def make_faulty_project(root: Path) -> Path:
    make_project(root, settings={"batch_errored_fraction": "0.05", "batch_expired_fraction": "0.05",
                                 "max_retries": "8", "poll_initial_s": "0.2", "batch_delay_s": "0.5"})
    with (root / "evalkit.toml").open("a") as handle:
        handle.write(FAULTS)
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    totals: Counter[str] = Counter()
    started = time.monotonic()
    for index in range(args.runs):
        mode = "batch" if index % 2 else "realtime"
        kill = index % 3 == 2
        with tempfile.TemporaryDirectory() as tmp:
            root = make_faulty_project(Path(tmp) / "project")
            state = Path(tmp) / "state"
            with served_simulator(root, state) as env:
                base_url = env["ANTHROPIC_BASE_URL"]
                command = [sys.executable, "-m", "evalkit", "run", "tasks/triage.yaml", "-q", "-n",
                           str(args.samples), "--mode", mode, "--fallback", "realtime", "--run-id", "soak"]
                if kill:
                    victim = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL)
                    time.sleep(rng.uniform(0.5, 2.0))
                    os.kill(victim.pid, signal.SIGKILL)
                    victim.wait()
                    totals["kills"] += 1
                result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                                        timeout=900)
                totals["runs"] += 1
                if result.returncode != 0:
                    totals["failed_runs"] += 1
                    print(f"run {index} ({mode}) failed: {result.stderr.strip()[-300:]}")
                    continue
                with urllib.request.urlopen(f"{base_url}/_simulator/stats") as response:
                    stats = json.load(response)
                for kind, count in stats.get("faults_injected", {}).items():
                    totals[f"fault:{kind}"] += count
            folder = root / "reports" / "triage" / "soak"
            rows = read_rows(folder)
            lost = sum(1 for row in rows for side in (row.candidate, row.reference)
                       if side.answer.outcome == "error")
            ledger = [json.loads(line) for line in (state / "billing.jsonl").read_text().splitlines()]
            bodies = Counter(entry["body_sha256"] for entry in ledger)
            double = sum(count - 1 for count in bodies.values() if count > 1)
            record = read_record(folder)
            totals["samples"] += len(rows)
            totals["answers"] += 2 * len(rows)
            totals["lost"] += lost
            totals["double_billed"] += double
            totals[f"double_billed:{mode}"] += double
            totals["batch_items_failed"] += sum(record.batch.failed_items.values())
            totals["sdk_retries"] += record.execution.retries
            print(f"run {index}: {mode}{' +kill' if kill else ''}, {len(rows)} samples, lost {lost}, "
                  f"double-billed {double}, retries {record.execution.retries}")
    faults = sum(count for key, count in totals.items() if key.startswith("fault:"))
    print()
    print(f"soak summary ({time.monotonic() - started:.0f} s): runs {totals['runs']} "
          f"(kills {totals['kills']}, failed {totals['failed_runs']}), faults injected {faults} "
          f"({', '.join(f'{k[6:]} {v}' for k, v in sorted(totals.items()) if k.startswith('fault:'))}), "
          f"batch items errored/expired {totals['batch_items_failed']}, SDK retries {totals['sdk_retries']}")
    print(f"answers {totals['answers']}, samples lost = {totals['lost']}, "
          f"double-billed = {totals['double_billed']} "
          f"(realtime {totals['double_billed:realtime']}, batch {totals['double_billed:batch']})")
    return 1 if totals["lost"] or totals["failed_runs"] or totals["double_billed:batch"] else 0


if __name__ == "__main__":
    sys.exit(main())
