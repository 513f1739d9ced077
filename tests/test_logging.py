"""Logging: -v/-q/--log-file/--log-format on every command, request and batch ids in the debug log, no
secret anywhere in it, and progress lines with an ETA."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from evalkit import logs
from evalkit._urls import redact_url
from evalkit.cli import main
from evalkit.progress import RichProgress, eta
from evalkit.providers.base import BatchInfo
from evalkit.providers.batching import _status_label
from tests.conftest import serve_simulator
from tests.test_batches import configure

KEY = "sk-ant-api03-Very-Secret-Key-0123456789abcdef"


@pytest.mark.parametrize(("text", "kept"), [
    (f"key {KEY} in a message", "key [redacted] in a message"),
    ("headers: {'x-api-key': 'abc123def456', 'accept': 'json'}",
     "headers: {'x-api-key': '[redacted]', 'accept'"),
    ('"Authorization": "Bearer abcdefghijklmnop"', '"Authorization": "Bearer [redacted]"'),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "authorization=Basic [redacted]"),
    ("base url https://user:hunter2secret@proxy.example.com/v1", "https://[redacted]@proxy.example.com/v1"),
    ("api_key=hunter2secret&x=1", "api_key=[redacted]&x=1"),
])
def test_redact_removes_keys_headers_and_url_credentials(text: str, kept: str) -> None:
    redacted = logs.redact(text, [])
    assert kept in redacted
    for secret in (KEY, "abc123def456", "abcdefghijklmnop", "dXNlcjpwYXNzd29yZA", "hunter2secret"):
        assert secret not in redacted


def test_redact_removes_the_value_of_secret_variables_whatever_its_shape(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "plain-looking-value-42")
    assert logs.redact("sent plain-looking-value-42 upstream") == "sent [redacted] upstream"
    assert "u:p" not in redact_url("http://u:p@host:1/x") and "host:1/x" in redact_url("http://u:p@host:1/x")


def test_the_json_log_has_one_object_per_line_with_extras_and_no_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    path = tmp_path / "log.jsonl"
    logs.configure(verbosity=2, log_file=path, log_format="json")
    try:
        logger = logging.getLogger("evalkit.test")
        logger.debug("called with %s", KEY, extra={"request_id": "req_1", "batch_id": "msgbatch_1"})
        logger.info("shown already", extra={"echoed": True})
        try:
            raise ValueError(f"boom {KEY}")
        except ValueError:
            logger.exception("failed")
    finally:
        logs.shutdown()
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["message"] for e in entries] == ["called with [redacted]", "shown already", "failed"]
    assert entries[0]["request_id"] == "req_1" and entries[0]["batch_id"] == "msgbatch_1"
    assert entries[0]["level"] == "debug" and entries[0]["logger"] == "evalkit.test"
    assert "ValueError: boom [redacted]" in entries[2]["exception"] and KEY not in path.read_text()
    assert "echoed" not in entries[1]


def test_levels_follow_v_and_q_and_the_file_keeps_info_whatever_q_says(tmp_path: Path) -> None:
    assert [logs.console_level(v, False) for v in (0, 1, 2, 3)] == [logging.WARNING, logging.INFO,
                                                                   logging.DEBUG, logging.DEBUG]
    assert logs.console_level(2, True) == logging.ERROR
    path = tmp_path / "log.txt"
    logs.configure(quiet=True, log_file=path)
    try:
        logging.getLogger("evalkit.test").info("kept in the file")
        logging.getLogger("evalkit.test").debug("not at this level")
        logging.getLogger("anthropic").info("the SDK's own lines only from -vvv")
    finally:
        logs.shutdown()
    text = path.read_text()
    assert "INFO    evalkit.test: kept in the file" in text and "not at this level" not in text
    assert "SDK" not in text
    assert logging.getLogger().handlers == [h for h in logging.getLogger().handlers
                                            if h not in logs._installed]  # shutdown removed ours


def test_a_log_file_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    result = CliRunner().invoke(main, ["prices", "check", "--log-file", str(tmp_path / "taken" / "x.log")])
    assert result.exit_code == 2 and "cannot write the log file" in result.output


def test_plain_progress_lines_show_the_time_left(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("evalkit.progress.time", SimpleNamespace(monotonic=lambda: now[0]))
    progress = RichProgress()
    assert not progress._interactive  # stderr is captured, not a terminal
    progress.start("requests", total=40)
    for _ in range(40):
        now[0] += 1.0  # one second per answer
        progress.advance()
    err = capsys.readouterr().err.splitlines()
    assert err == ["requests: 0/40", "requests: 10/40 · 10s elapsed · eta 30s",
                   "requests: 20/40 · 20s elapsed · eta 20s", "requests: 30/40 · 30s elapsed · eta 10s",
                   "requests: 40/40 · done in 40s"]
    assert eta(0, 10, 5.0) is None and eta(5, 10, 60.0) == 60.0


def test_the_batch_status_line_shows_the_time_left_at_the_rate_so_far() -> None:
    half = BatchInfo(id="msgbatch_1", status="in_progress", created_at=None,
                     counts={"processing": 50, "succeeded": 50, "errored": 0, "canceled": 0, "expired": 0})
    assert _status_label([half], 125) == "batch: 0/1 ended · 50 processing, 50 succeeded · 2m05s · eta 2m05s"
    waiting = BatchInfo(id="msgbatch_2", status="in_progress", created_at=None,
                        counts={"processing": 100, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
    assert _status_label([waiting], 5) == "batch: 0/1 ended · 100 processing · 0m05s"


def _run(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evalkit", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.e2e
@pytest.mark.slow
def test_a_debug_log_has_request_and_batch_ids_and_never_the_key(project: Path, tmp_path: Path) -> None:
    text = (project / "evalkit.toml").read_text()
    text = text.replace("[simulator]\n", f'[simulator]\napi_key = "{KEY}"\n', 1)
    (project / "evalkit.toml").write_text(text)
    configure(project, batch_delay_s=0.2, poll_initial_s=0.1, poll_max_s=0.3)
    server, port = serve_simulator(project, tmp_path / "state", tmp_path / "server.log")
    try:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}
        realtime = _run(project, env, "-vv", "--log-file", "realtime.log", "run", "tasks/triage.yaml",
                        "-n", "8", "--mode", "realtime", "--run-id", "rt")
        batch = _run(project, env, "run", "tasks/triage.yaml", "-n", "8", "--run-id", "b", "-vv",
                     "--log-file", "batch.log", "--log-format", "json")
        # Credentials in the URL (the SDK then sends them instead of the key: rejected, exit 8) and a
        # rejected key: the failure is logged, the secrets are not.
        wrong = {**env, "ANTHROPIC_BASE_URL": f"http://evalkit:url-password-31337@127.0.0.1:{port}"}
        rejected = _run(project, wrong, "run", "tasks/triage.yaml", "-n", "2", "--mode", "realtime", "-vvv",
                        "--log-file", "rejected.log")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert realtime.returncode == 0, realtime.stderr
    assert batch.returncode == 0, batch.stderr
    assert rejected.returncode == 8, rejected.stderr
    realtime_log = (project / "realtime.log").read_text()
    batch_log = (project / "batch.log").read_text()
    rejected_log = (project / "rejected.log").read_text()
    assert "rejected the credentials" in rejected_log and "(exit 8)" in rejected_log
    everything = "".join([realtime_log, batch_log, rejected_log, realtime.stderr, realtime.stdout,
                          batch.stderr, batch.stdout, rejected.stderr, rejected.stdout])
    assert KEY not in everything and "url-password-31337" not in everything
    # Every answer's request id is in the realtime log, on its model call's debug line.
    rows = [json.loads(line) for line in (project / "reports" / "triage" / "rt" / "results.jsonl")
            .read_text().splitlines()]
    ids = {row[role]["request_id"] for row in rows for role in ("candidate", "reference")}
    assert len(ids) == 16 and all(i and f"request_id={i}" in realtime_log for i in ids)
    assert "DEBUG   evalkit.providers.anthropic: messages.create claude-haiku-5-5" in realtime_log
    # The batch log is JSON lines; the batch ids of the answers are there with what happened to them.
    entries = [json.loads(line) for line in batch_log.splitlines()]
    record = json.loads((project / "reports" / "triage" / "b" / "summary.json").read_text())
    for batch_id in record["batch"]["answer_batch_ids"]:
        said = [e["message"] for e in entries if e.get("batch_id") == batch_id]
        assert any(m.startswith(f"submitted batch {batch_id}") for m in said), said
        assert any(m.startswith(f"collected batch {batch_id}") for m in said), said
    assert any(e.get("request_id", "").startswith("req_") for e in entries)
    # Default console output is unchanged apart from the ETA: the debug lines went to stderr only with -vv.
    assert "DEBUG" in realtime.stderr and "request_id=" in realtime.stderr
