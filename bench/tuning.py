"""Tuning-session speed: a fully cached run and tune of 500 samples, and how much of it is imports.

    python bench/tuning.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import evalkit, make_project, table


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "p", rows=500)
        evalkit(project, "run", "tasks/triage.yaml", "-q", "-n", "500", "--mode", "realtime",
                "--run-id", "warm")
        cached, _ = evalkit(project, "run", "tasks/triage.yaml", "-q", "-n", "500", "--mode", "realtime",
                            "--run-id", "cached")
        tune, _ = evalkit(project, "tune", "tasks/triage.yaml", "-n", "500", "--mode", "realtime",
                          "--target-loss", "0.05")
        helps = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "evalkit", "--help"], capture_output=True, check=True)
            helps.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import evalkit.api, evalkit.sim.app, sklearn.linear_model"],
                       capture_output=True, check=True)
        imports = time.perf_counter() - started
        # tune's own work, in process, after imports
        code = ("import time, datasets, sklearn.linear_model, sklearn.model_selection, "
                "statsmodels.stats.proportion;"
                "import evalkit.sim.app, evalkit.routing.calibration; from evalkit.api import tune_task;"
                "from evalkit.routing.analysis import RoutingOptions;"
                "t=time.perf_counter(); tune_task('tasks/triage.yaml', RoutingOptions(target_loss=0.05), "
                "mode='realtime', sample_size=500); print(time.perf_counter()-t)")
        own = float(subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True,
                                   check=True).stdout.strip().splitlines()[-1])
    print(table(["measure", "seconds"], [
        ["evalkit --help (best of 3)", f"{min(helps):.2f}"],
        ["imports of the run path (api, simulator, scikit-learn)", f"{imports:.2f}"],
        ["evalkit run, 500 samples, all cached (0 requests)", f"{cached:.2f}"],
        ["evalkit tune, 500 samples (0 requests)", f"{tune:.2f}"],
        ["tune's own work in process (after imports: load, render, 1,000 cache reads, score, route)",
         f"{own:.2f}"],
    ]))


if __name__ == "__main__":
    main()
