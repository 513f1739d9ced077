"""Secrets never leak: not in caches, ledgers, reports, logs or error messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import serve_simulator
from tests.test_batches import configure

pytestmark = pytest.mark.e2e


def _serve(project: Path, state: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    text = (project / "evalkit.toml").read_text().replace(
        "[simulator]\n", '[simulator]\napi_key = "sk-ant-right-key-0001"\n', 1)
    (project / "evalkit.toml").write_text(text)
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.5)  # no waiting on the batches
    return serve_simulator(project, state, log)


def _scan(paths: list[Path], secret: str) -> list[Path]:
    leaks = []
    for root in paths:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and secret.encode() in path.read_bytes():
                leaks.append(path)
    return leaks


@pytest.mark.slow
def test_keys_never_reach_artifacts_or_error_messages(project: Path, tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "server.log"
    server, port = _serve(project, state, log)
    try:
        base = {**os.environ, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}
        wrong = "sk-ant-wrong-secret-9876543210"
        bad = subprocess.run([sys.executable, "-m", "evalkit", "run", "tasks/triage.yaml", "-n", "5",
                              "--mode", "realtime"], cwd=project, env={**base, "ANTHROPIC_API_KEY": wrong},
                             capture_output=True, text=True, timeout=300)
        assert bad.returncode == 8  # EXIT_AUTH: the credentials, not the API, failed
        assert "rejected the credentials" in bad.stderr and wrong not in bad.stderr + bad.stdout
        right = "sk-ant-right-key-0001"
        good = subprocess.run([sys.executable, "-m", "evalkit", "run", "tasks/triage.yaml", "-n", "10",
                               "--run-id", "ok"], cwd=project, env={**base, "ANTHROPIC_API_KEY": right},
                              capture_output=True, text=True, timeout=300)
        assert good.returncode == 0, good.stderr
        assert right not in good.stderr + good.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
    artifacts = [project / ".evalkit", project / "reports", state, log]
    assert _scan(artifacts, wrong) == []
    # The right key is in evalkit.toml (the simulator's own setting) but nowhere evalkit writes.
    assert _scan(artifacts, right) == []
