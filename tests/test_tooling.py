"""The house rules are part of the suite: lint, types and the layer contracts fail the README's test
command like any other regression, so a contributor cannot land a backward import or an untyped public
function without seeing it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", "evalkit", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_finds_nothing() -> None:
    result = _run(sys.executable, "-m", "mypy", "evalkit")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layer_contracts_hold() -> None:
    """pyproject.toml's import-linter contracts: stages import only downstream, only the provider
    imports the SDK, and sibling packages form no cycle."""
    program = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert program is not None, "import-linter is a test dependency: pip install -e '.[test]'"
    result = _run(program, "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contracts_catch_a_backward_import(tmp_path: Path) -> None:
    """The layer check is not vacuous: a scoring module importing the report layer breaks it."""
    program = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert program is not None
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "evalkit", copy / "evalkit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / "evalkit" / "scoring" / "__init__.py"
    target.write_text(target.read_text() + "\nimport evalkit.report  # noqa: E402,F401\n")
    result = subprocess.run([program, "--no-cache"], cwd=copy, capture_output=True, text=True, timeout=600,
                            env={"PYTHONPATH": str(copy), "PATH": str(Path(sys.executable).parent)})
    assert result.returncode != 0 and "broken" in result.stdout, result.stdout + result.stderr
