"""Scale: time per sample and peak memory of full runs, and evalkit's own pipeline at 100k samples.

Full runs (batch mode against `evalkit sim serve` with no delay, so the memory measured is evalkit's
own) at growing sizes, then — because the simulated models cost ~1 ms per answer — the client
pipeline alone at 100k samples:
load, stratified sample, render, request building, batch chunking at the API limits (100,000
requests / 256 MB per batch). Peak memory is the child process's max RSS.
    python bench/scale.py [--sizes 1000 5000] [--pipeline 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import make_project, served_simulator, table

#: Runs the evalkit CLI and reports its own peak RSS (the simulator runs in a separate server process).
MEASURED_CLI = r"""
import resource, runpy, sys
sys.argv = ["evalkit", *sys.argv[1:]]
try:
    runpy.run_module("evalkit", run_name="__main__")
except SystemExit as exit:
    if exit.code:
        raise
print("RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
"""

PIPELINE = r"""
import json, resource, sys, time
from evalkit.config import load_settings
from evalkit.run.prepare import prepare
from evalkit.spec import load_task
from evalkit.providers.batching import chunk_items, custom_id_for
from evalkit.providers.response_cache import request_key
from evalkit.config import BatchSettings
t = time.perf_counter()
task = load_task("tasks/triage.yaml")
prepared = prepare(task, load_settings(task.base_dir), sample_size=int(sys.argv[1]), mode="batch")
items = [(custom_id_for(r, request_key("bench", r)), r.params) for r in prepared.requests]
chunks = chunk_items(items, BatchSettings())
by_bytes = chunk_items(items, BatchSettings(max_bytes=50_000_000))
print(json.dumps({"seconds": time.perf_counter() - t, "requests": len(items),
                  "chunks": [len(c) for c in chunks], "chunks_50MB": [len(c) for c in by_bytes],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--pipeline", type=int, default=100_000)
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            project = make_project(Path(tmp) / "p", rows=size,
                                   settings={"batch_delay_s": "0", "poll_initial_s": "0.2",
                                             "concurrency": "32"})
            with served_simulator(project, Path(tmp) / "state") as env:
                started = time.perf_counter()
                result = subprocess.run([sys.executable, "-c", MEASURED_CLI, "run", "tasks/triage.yaml", "-q",
                                         "-n", str(size), "--run-id", "s"], cwd=project, env=env,
                                        capture_output=True, text=True)
                wall = time.perf_counter() - started
            if result.returncode != 0:
                raise SystemExit(result.stderr[-2000:])
            rss = float(result.stderr.rsplit("RSS_MB", 1)[1].split()[0])
            rows.append([f"full batch run, {size} samples (evalkit process)", f"{wall:.1f}",
                         f"{1000 * wall / size:.1f}", f"{rss:.0f}"])
    import json

    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p", rows=args.pipeline)
        out = subprocess.run([sys.executable, "-c", PIPELINE, str(args.pipeline)], cwd=project,
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        data = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append([f"pipeline only, {args.pipeline} samples ({data['requests']} requests)",
                     f"{data['seconds']:.1f}", f"{1000 * data['seconds'] / args.pipeline:.2f}",
                     f"{data['rss_mb']:.0f}"])
    print(table(["workload", "wall s", "ms / sample", "peak RSS MB"], rows))
    print(f"batch chunks at the API limits: {data['chunks']} (100,000 requests max); "
          f"with a 50 MB byte limit: {len(data['chunks_50MB'])} chunks")


if __name__ == "__main__":
    main()
