"""Shared fixtures: an isolated copy of the project (task, dataset, settings) per test."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Real API responses the simulator is checked against (see fixtures/recorded/PROVENANCE.md).
RECORDED = REPO / "tests" / "fixtures" / "recorded"


@pytest.fixture(autouse=True)
def _no_real_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a real API: no key, no base URL, unless a test sets them."""
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "EVALKIT_CACHE_DIR",
                "EVALKIT_REPORTS_DIR", "EVALKIT_CONCURRENCY", "EVALKIT_MAX_RETRIES", "EVALKIT_STORE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _fast_tier_stays_off_the_simulator(request: pytest.FixtureRequest,
                                       monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test not marked ``e2e`` may not start evalkit's simulator: that keeps ``-m "not e2e"`` fast, and
    a new end-to-end test that forgets its mark fails here instead of quietly slowing the fast tier."""
    if request.node.get_closest_marker("e2e") is not None:
        yield
        return
    from evalkit.sim.app import SimulatorState

    started: list[str] = []

    def refuse(self: SimulatorState, *args: Any, **kwargs: Any) -> None:
        started.append("SimulatorState")
        raise RuntimeError("this test is not marked e2e, so it may not start the simulator")

    monkeypatch.setattr(SimulatorState, "__init__", refuse)
    yield
    if started:
        pytest.fail(f"{request.node.nodeid} starts the simulator: mark it `@pytest.mark.e2e` (or use "
                    "tests/fakes.py's FakeProvider to stay in the fast tier)", pytrace=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throwaway copy of the project's task, dataset and settings (own cache and reports)."""
    root = tmp_path / "project"
    (root / "tasks").mkdir(parents=True)
    (root / "datasets").mkdir()
    shutil.copy(REPO / "evalkit.toml", root / "evalkit.toml")
    shutil.copy(REPO / "tasks" / "triage.yaml", root / "tasks" / "triage.yaml")
    for path in (REPO / "datasets").iterdir():  # the simulator's corpora and the task's data
        if path.is_file():
            shutil.copy(path, root / "datasets" / path.name)
    return root


@pytest.fixture
def demo_project(tmp_path: Path) -> Path:
    """A throwaway copy of every shipped task, dataset and the settings (own cache and reports)."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "tasks", root / "tasks")
    shutil.copytree(REPO / "datasets", root / "datasets")
    shutil.copy(REPO / "evalkit.toml", root / "evalkit.toml")
    return root


def prepared_task(path: Path, *, sample_size: int, mode: str = "batch", settings: Any = None) -> Any:
    """A task loaded and prepared as a run would (no request sent)."""
    from evalkit.config import load_settings
    from evalkit.run.prepare import prepare
    from evalkit.spec import load_task

    task = load_task(path)
    return prepare(task, settings or load_settings(task.base_dir), sample_size=sample_size, mode=mode)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_simulator(project: Path, state: Path, log: Path, *, attempts: int = 3,
                    args: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], int]:
    """``evalkit sim serve`` for ``project`` on a free port, returned once it accepts connections.

    A port is only known to be free when it is chosen: until the server binds it (first thing it does), a
    parallel test worker (or any outgoing connection) can take it, and the server exits with code 8
    instead of listening. It is then started again on another port. ``args``: more `sim serve` flags.
    """
    for _ in range(attempts):
        port = free_port()
        with log.open("a") as handle:  # the child keeps its own descriptor
            server = subprocess.Popen([sys.executable, "-m", "evalkit", "sim", "serve", "--port", str(port),
                                       "--state-dir", str(state), *args], cwd=project, stdout=handle,
                                      stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while server.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return server, port
            except OSError:
                if time.monotonic() > deadline:
                    server.kill()
                    server.wait()
                    pytest.fail(f"simulator server did not start within 60 s; see {log}")
                time.sleep(0.2)
    pytest.fail(f"simulator server exited without listening, {attempts} times; see {log}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL server for this test session (tests/postgres_server.py), stopped at the end."""
    from tests.postgres_server import start_server

    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store_url(postgres_server: Any) -> str:
    """A fresh database on the session's PostgreSQL server: its URL (password included)."""
    return str(postgres_server.new_database())
