"""Realtime throughput: 500 samples × 2 models against the simulator on loopback at a fixed latency.

Prints wall time against the ideal (requests × latency / concurrency). Target: ≤ 1.15× ideal.
    python bench/throughput.py [--samples 500] [--latency-ms 200] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from _common import evalkit, make_project, served_simulator, table

from evalkit.record.files import read_record

INSPECT_TASK = """
import json
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import match
from inspect_ai.solver import generate, system_message


@task
def triage():
    rows = [json.loads(line) for line in open({path!r})][-{n}:]
    return Task(dataset=[Sample(input=r["text"], target=r["category"]) for r in rows],
                solver=[system_message("Route the message to one queue: billing, technical, account, "
                                       "feature_request or general."), generate()],
                scorer=match())
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--inspect", metavar="PATH_TO_INSPECT", default=None,
                        help="an `inspect` executable (inspect_ai in its own venv) to run side by side")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p", settings={"latency_ms": str(args.latency_ms)},
                               rows=max(args.samples, 468))
        with served_simulator(project, Path(tmp) / "state") as env:
            wall, _ = evalkit(project, "run", "tasks/triage.yaml", "-q", "-n", str(args.samples), "--mode",
                              "realtime", "-j", str(args.concurrency), "--run-id", "tp", env=env)
            inspect_wall = None
            if args.inspect:
                task_file = Path(tmp) / "inspect_task.py"
                task_file.write_text(INSPECT_TASK.format(path=str(project / "datasets" / "triage.jsonl"),
                                                         n=args.samples))
                started = time.perf_counter()
                for model in ("claude-haiku-5-5", "claude-sonnet-5-5"):  # the same 2 × samples requests
                    result = subprocess.run([args.inspect, "eval", task_file.name, "--model",
                                             f"anthropic/{model}", "--max-connections", str(args.concurrency),
                                             "--log-dir", str(Path(tmp) / "logs"), "--no-fail-on-error"],
                                            env=env, capture_output=True, text=True, cwd=tmp)
                    if result.returncode != 0:
                        raise SystemExit(f"inspect failed: {result.stderr[-1500:]}")
                inspect_wall = time.perf_counter() - started
        execution = read_record(project / "reports" / "triage" / "tp").execution
        requests = execution.requests_sent
        ideal = requests * args.latency_ms / 1000 / args.concurrency
        execute = execution.seconds
        rows.append(["evalkit: request phase", requests, args.concurrency, f"{ideal:.1f}", f"{execute:.1f}",
                     f"{execute / ideal:.2f}x"])
        rows.append(["evalkit: whole command", requests, args.concurrency, f"{ideal:.1f}", f"{wall:.1f}",
                     f"{wall / ideal:.2f}x"])
        if inspect_wall is not None:
            rows.append(["inspect_ai: two evals (one per model)", requests, args.concurrency, f"{ideal:.1f}",
                         f"{inspect_wall:.1f}", f"{inspect_wall / ideal:.2f}x"])
    print(table(["runner", "requests", "concurrency", "ideal s", "wall s", "wall / ideal"], rows))
    print("wall includes process start, imports, dataset load, the per-model cache warm-up request and "
          "the report; target ≤ 1.15x")


if __name__ == "__main__":
    main()
