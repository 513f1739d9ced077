"""The project's own shape: the public API, the thin CLI, declared dependencies, the documented record
schema, and the README's Python example — each checked so that it cannot quietly drift."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import evalkit
from evalkit.record.__main__ import schemas

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "evalkit"

PUBLIC = {
    "__version__",
    "run_task", "validate_task", "lint_task", "estimate_task", "plan_task", "tune_task", "gate_task",
    "check_gate", "save_baseline", "render_report", "load_task", "load_settings", "read_record", "read_rows",
    "RunOptions", "RoutingOptions", "GateOptions", "RunResult", "TuneResult", "GateResult", "PlanResult",
    "RunRecord", "SampleRow", "Decision", "TaskSpec", "Settings", "Router", "RoutedAnswer",
    "EvalkitError", "UsageError", "ConfigError", "SpecError", "DatasetError", "TemplateError",
    "ProviderError", "AuthError", "CacheError", "BudgetError", "BatchPendingError", "MetricError",
    "MetricSample",
}


def test_the_public_api_is_exactly_the_documented_set_and_resolves() -> None:
    assert set(evalkit.__all__) == PUBLIC
    for name in evalkit.__all__:
        assert getattr(evalkit, name) is not None, name
    assert issubclass(evalkit.BudgetError, evalkit.EvalkitError)
    with pytest.raises(AttributeError):
        evalkit.not_a_name  # noqa: B018


def test_importing_evalkit_loads_no_heavy_dependency() -> None:
    code = ("import sys, evalkit; heavy = [m for m in ('anthropic', 'scipy', 'sklearn', 'datasets', "
            "'matplotlib', 'pydantic') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


#: What a command pays for only when it uses it (seconds each): the scientific stack, Hugging Face
#: datasets, plotting, ROUGE (NLTK), the SDK (a run answered from the cache sends nothing) and the
#: simulator's app (starlette). See docs/benchmarks.md.
LAZY = ("scipy", "sklearn", "statsmodels", "datasets", "matplotlib", "pandas", "pyarrow", "rouge_score",
        "nltk", "anthropic", "httpx2", "starlette", "evalkit.sim.app")


@pytest.mark.parametrize("module", ["evalkit.cli", "evalkit.api"])
def test_importing_the_cli_or_api_loads_no_heavy_dependency(module: str) -> None:
    code = (f"import sys, {module}; print(','.join(m for m in {LAZY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _evalkit_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "evalkit":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "evalkit")
    return found


def test_the_cli_is_thin_over_the_api() -> None:
    # Besides the API: the version, the error tree (exit codes), and the two front-end modules that
    # own the terminal: progress bars and logging setup (-v/-q/--log-file/--log-format).
    assert _evalkit_imports(PACKAGE / "cli.py") <= {"evalkit", "evalkit._version", "evalkit.api",
                                                    "evalkit.errors", "evalkit.progress", "evalkit.logs"}


def test_api_is_wiring_only() -> None:
    assert len((PACKAGE / "api.py").read_text(encoding="utf-8").splitlines()) <= 250


def _declared() -> set[str]:
    """Dependencies, and the optional extras a user installs for a feature (``postgres``), not ``test``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [spec for name, specs in project.get("optional-dependencies", {}).items() if name != "test"
              for spec in specs]
    return {re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower().replace("_", "-")
            for spec in [*project["dependencies"], *extras]}


def test_every_directly_imported_package_is_declared() -> None:
    distributions = metadata.packages_distributions()
    stdlib = sys.stdlib_module_names
    missing = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top in ("evalkit", "__future__"):
                    continue
                dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if not dists & _declared():
                    missing[top] = str(path.relative_to(REPO))
    assert missing == {}, f"imported but not in [project].dependencies: {missing}"


def test_the_documented_record_schemas_match_the_code() -> None:
    for name, schema in schemas().items():
        committed = json.loads((REPO / "docs" / name).read_text(encoding="utf-8"))
        assert committed == json.loads(json.dumps(schema)), (
            f"docs/{name} is out of date: run `python -m evalkit.record docs` and commit it")


@pytest.mark.e2e
def test_the_readme_python_example_runs(project: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- tested: README python example -->\s*```python\n(.*?)```", readme, flags=re.S)
    assert block, "README lost its tested Python example"
    cwd = Path.cwd()
    os.chdir(project)
    try:
        exec(compile(block.group(1), "README.md", "exec"), {})  # noqa: S102 - our own README
    finally:
        os.chdir(cwd)
    record = json.loads((project / "reports" / "triage" / "from-python" / "summary.json").read_text())
    assert record["schema_version"] == 2 and record["decision"]["verdict"] in {"GO", "NO-GO", "INCONCLUSIVE"}


#: A run answered from the cache and ``tune`` on it, in one fresh process: what each imports.
CACHED_RERUN = """
import json, sys
from evalkit import api
options = api.RunOptions(offline=True, mode="realtime", sample_size=int(sys.argv[1]), run_id=sys.argv[2])
result = api.run_task("tasks/triage.yaml", options)
tuned = api.tune_task("tasks/triage.yaml", api.RoutingOptions(target_loss=0.2), offline=True, mode="realtime",
                      sample_size=int(sys.argv[1]))
print(json.dumps({"modules": [m for m in sys.argv[3].split(",") if m in sys.modules],
                  "sent": result.record.execution.requests_sent, "simulated": result.record.simulated,
                  "backend": result.record.provenance.backend.kind,
                  "calibration": tuned.analysis.calibration is not None}))
"""
#: What a cached re-run and tune must not pay for (issue 22): the fits are remembered, the statistics
#: come from scipy.special, the simulator's app is built only to send.
NOT_ON_A_CACHED_RERUN = ("sklearn", "scipy.stats", "scipy.optimize", "pandas", "statsmodels", "anthropic",
                         "starlette", "evalkit.sim.app")


def test_a_cached_rerun_and_tune_import_no_scikit_learn_scipy_stats_nor_the_simulators_app(
        demo_project: Path) -> None:
    def run(run_id: str) -> dict[str, object]:
        argv = [sys.executable, "-c", CACHED_RERUN, "60", run_id, ",".join(NOT_ON_A_CACHED_RERUN)]
        out = subprocess.run(argv, cwd=demo_project, capture_output=True, text=True, check=True).stdout
        return json.loads(out.splitlines()[-1])  # type: ignore[no-any-return]

    first = run("first")
    assert first["sent"]
    assert {"sklearn", "starlette", "evalkit.sim.app"} <= set(first["modules"])  # type: ignore[arg-type]
    again = run("again")
    assert again["sent"] == 0 and again["modules"] == []
    # Still SIMULATED: the label follows the backend, not whether anything was sent to it.
    assert again["simulated"] is True and again["backend"] == "simulator" and again["calibration"] is True
    first_summary = json.loads((demo_project / "reports" / "triage" / "first" / "summary.json").read_text())
    again_summary = json.loads((demo_project / "reports" / "triage" / "again" / "summary.json").read_text())
    assert first_summary["routing"] == again_summary["routing"]
    assert first_summary["decision"] == again_summary["decision"]


def test_typed_models_are_built_on_first_use_not_on_import() -> None:
    """pydantic builds a model's validator when it is first used (``defer_build``): importing the API
    builds none, so a command pays only for the models it touches; strictness is unchanged."""
    code = ("import sys, evalkit.api; from evalkit.routing.router import RoutingFile; "
            "from evalkit.record.model import RunRecord; from evalkit.config import Settings; "
            "from evalkit.spec import TaskSpec; "
            "models = (RoutingFile, RunRecord, Settings, TaskSpec); "
            "print([m.__name__ for m in models if m.__pydantic_complete__])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from pydantic import ValidationError  # noqa: PLC0415

    from evalkit.routing.analysis import SweepPoint  # noqa: PLC0415

    point = SweepPoint(t=0.5, escalation_rate=0.1, routed_accuracy=0.9, quality_loss=0.0, cost_per_1k=1.0)
    assert SweepPoint.__pydantic_complete__ and point.t == 0.5
    with pytest.raises(ValidationError):
        SweepPoint.model_validate({**point.model_dump(), "unknown": 1})
