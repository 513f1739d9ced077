"""Realtime throughput: 500 samples × 2 models against the simulator on loopback at a fixed latency.

Prints wall time against the ideal (requests × latency / concurrency). Target: ≤ 1.15× ideal.
    python bench/throughput.py [--samples 500] [--latency-ms 200] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _common import evalkit, make_project, served_simulator, table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p", settings={"latency_ms": str(args.latency_ms)},
                               rows=max(args.samples, 468))
        with served_simulator(project, Path(tmp) / "state") as env:
            wall, _ = evalkit(project, "run", "tasks/triage.yaml", "-q", "-n", str(args.samples), "--mode",
                              "realtime", "-j", str(args.concurrency), "--run-id", "tp", env=env)
        summary = json.loads((project / "reports" / "triage" / "tp" / "summary.json").read_text())
        requests = summary["execution"]["requests_sent"]
        ideal = requests * args.latency_ms / 1000 / args.concurrency
        execute = summary["execution"]["seconds"]
        rows.append(["evalkit: request phase", requests, args.concurrency, f"{ideal:.1f}", f"{execute:.1f}",
                     f"{execute / ideal:.2f}x"])
        rows.append(["evalkit: whole command", requests, args.concurrency, f"{ideal:.1f}", f"{wall:.1f}",
                     f"{wall / ideal:.2f}x"])
    print(table(["runner", "requests", "concurrency", "ideal s", "wall s", "wall / ideal"], rows))
    print("wall includes process start, imports, dataset load, the per-model cache warm-up request and "
          "the report; target ≤ 1.15x")


if __name__ == "__main__":
    main()
