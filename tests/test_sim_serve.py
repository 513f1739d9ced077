"""`evalkit sim serve`: flags mirroring [simulator] in evalkit.toml, and its own exit code for a busy port."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from evalkit.cli import main, sim_serve
from evalkit.config import load_settings
from evalkit.errors import EvalkitError, PortInUseError
from tests.conftest import REPO, serve_simulator

PORT_IN_USE_EXIT = 11


def test_a_busy_port_is_a_clear_error_with_its_own_exit_code(project: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["sim", "serve", "--port", str(port), "--state-dir", "st"])
    assert result.exit_code == PORT_IN_USE_EXIT == PortInUseError.exit_code
    assert f"port {port} on 127.0.0.1 is already in use" in result.output and "--port" in result.output
    codes = {cls.exit_code for cls in EvalkitError.__subclasses__() if cls is not PortInUseError}
    assert PORT_IN_USE_EXIT not in codes | {0, 1, 3, 7}  # not INCONCLUSIVE's 3 any more, nor anyone else's
    ci = (REPO / "docs" / "ci.md").read_text()
    assert "| 11 | `evalkit sim serve`" in ci


def test_every_option_has_help_and_every_setting_flag_maps_to_a_simulator_setting() -> None:
    params = [p for p in sim_serve.params if isinstance(p, click.Option) and p.name != "help"]
    assert all(p.help for p in params), [p.name for p in params if not p.help]
    names = {p.name for p in params}
    assert {"seed", "latency_ms", "rate_limit_rate", "overloaded_rate", "server_error_rate",
            "disconnect_rate", "slow_rate", "refusal_rate", "batch_cache_hit_rate", "batch_errored",
            "batch_expired"} <= names


def test_flags_override_evalkit_toml_like_the_settings_they_mirror(project: Path) -> None:
    base = load_settings(project).simulator
    changed = base.with_overrides({"latency_ms": 250, "faults.rate_limit": 0.2, "seed": 9})
    assert (changed.latency_ms, changed.faults.rate_limit, changed.seed) == (250, 0.2, 9)
    assert changed.faults.overloaded == base.faults.overloaded and base.latency_ms == 0


def _post(port: int, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/messages", data=json.dumps(body).encode(),
                                     headers={"x-api-key": "k", "anthropic-version": "2026-10-21",
                                              "content-type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - our own local server
            return response.status, json.loads(response.read()), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), time.monotonic() - started


@pytest.mark.e2e
def test_served_with_latency_refusal_and_fault_flags(project: Path, tmp_path: Path) -> None:
    body = {"model": "claude-haiku-5-5", "max_tokens": 200, "thinking": {"type": "disabled"},
            "messages": [{"role": "user", "content": "Is this billing or technical? My card was charged."}]}
    server, port = serve_simulator(project, tmp_path / "state", tmp_path / "log.txt",
                                   args=("--latency-ms", "300", "--refusal-rate", "1", "--seed", "4"))
    try:
        status, message, seconds = _post(port, body)
        assert status == 200 and message["stop_reason"] == "refusal"
        assert seconds >= 0.3
    finally:
        server.terminate()
        server.wait(timeout=30)
    server, port = serve_simulator(project, tmp_path / "state2", tmp_path / "log2.txt",
                                   args=("--server-error-rate", "1"))
    try:
        status, error, _ = _post(port, body)
        assert status == 500 and error["error"]["type"] == "api_error"
    finally:
        server.terminate()
        server.wait(timeout=30)
