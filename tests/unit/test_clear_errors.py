"""Issue 16, items 5 and 6 in the fast tier: every failure a user can cause is an EvalkitError with the file
(and line or key) and the documented exit code, never a traceback; includes stay confined, YAML loading is
bounded, credentials in ANTHROPIC_BASE_URL are redacted, evalkit's state is owner-only, and staging folders
left by a killed run are cleaned."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from evalkit.config import load_settings
from evalkit.errors import (
    DatasetError,
    EvalkitError,
    ProviderError,
    SpecError,
    StateError,
    TemplateError,
    UsageError,
)
from evalkit.progress import NullProgress
from evalkit.providers.batching import BatchLedger
from evalkit.providers.execute import execute_realtime
from evalkit.providers.response_cache import ResponseCache
from evalkit.run.options import RunOptions
from evalkit.run.pipeline import run_evaluation
from evalkit.run.prepare import prepare
from evalkit.spec import load_task, parse_task
from tests.fakes import FakeProvider, Received, fake_backend, json_message
from tests.unit.helpers import requests

TASK = """\
name: tickets
dataset: {path: d.jsonl, label_column: category}
sample: {size: 20, seed: 1}
prompt:
  system: SYSTEM
  user: "{{ text }}"
output: {label_field: category, labels: [billing, technical]}
models: {candidate: claude-haiku-5-5, reference: claude-sonnet-5-5}
"""


def _project(tmp_path: Path, system: str = "Route the ticket.", extra: str = "", rows: bytes | None = None,
             settings: str = "") -> Path:
    data = rows if rows is not None else "".join(
        json.dumps({"id": f"t{i}", "text": f"ticket {i}", "category": ["billing", "technical"][i % 2]}) + "\n"
        for i in range(20)).encode()
    (tmp_path / "d.jsonl").write_bytes(data)
    (tmp_path / "evalkit.toml").write_text('[evalkit]\ncache_dir = ".evalkit/cache"\n' + settings)
    path = tmp_path / "task.yaml"
    path.write_text(TASK.replace("SYSTEM", json.dumps(system)) + extra)
    return path


def _answer(received: Received) -> dict[str, Any]:
    """Both labels, by the ticket's number (one label only would make the metrics warn)."""
    number = int(received.user_text.split()[-1])
    return json_message(received, category=["billing", "technical"][number % 2], confidence=0.9)


def _fake() -> FakeProvider:
    return FakeProvider(_answer)


def _prepare(path: Path) -> Any:
    task = load_task(path)
    return prepare(task, load_settings(task.base_dir), mode="realtime")


# -- located errors, no tracebacks --------------------------------------------------------------------------
def test_non_utf8_bytes_in_a_dataset_are_located(tmp_path: Path) -> None:
    good = "".join(json.dumps({"id": f"t{i}", "text": f"ticket {i}", "category": "billing"}) + "\n"
                   for i in range(3)).encode()
    path = _project(tmp_path, rows=good + b'{"id": "t9", "text": "caf\xe9", "category": "billing"}\n')
    with pytest.raises(DatasetError) as caught:
        _prepare(path)
    assert f"{tmp_path / 'd.jsonl'}:4:" in caught.value.message and "not UTF-8" in caught.value.message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("statement", ['{% include "other.txt" %}', '{% import "macros.j2" as m %}',
                                       '{% from "macros.j2" import box %}', '{% extends "base.j2" %}'])
def test_templates_that_would_read_other_files_are_refused_with_their_line(tmp_path: Path,
                                                                            statement: str) -> None:
    path = _project(tmp_path, system=f"Route the ticket.\nThen {statement}")
    with pytest.raises(TemplateError) as caught:
        _prepare(path)
    assert caught.value.message.startswith(f"{path}:") and "is not supported" in caught.value.message
    assert "prompt.include" in str(caught.value.hint) and caught.value.exit_code == 2


def test_an_every_request_failed_run_is_an_api_failure(tmp_path: Path) -> None:
    task = load_task(_project(tmp_path, settings="max_retries = 0\n"))
    provider = _fake()
    provider.fail(ProviderError("API error 500 api_error", status=500, retryable=True), times=None)
    result = run_evaluation(task, load_settings(task.base_dir), RunOptions(mode="realtime", run_id="down"),
                            progress=NullProgress(), backend=fake_backend(provider))
    failure = result.failure
    assert failure is not None and failure.exit_code == 4
    assert "every request this run sent failed" in str(failure)
    assert result.record.execution.answered == 0

    healthy = _fake()
    again = run_evaluation(task, load_settings(task.base_dir), RunOptions(mode="realtime", run_id="up"),
                           progress=NullProgress(), backend=fake_backend(healthy))
    assert again.failure is None and again.record.execution.answered == 40


# -- full disks ---------------------------------------------------------------------------------------
def test_a_full_disk_under_the_cache_is_said_so_not_called_a_bad_dataset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets
    from evalkit.tabular import read_hub

    def full(*args: Any, **kwargs: Any) -> Any:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:  # datasets wraps what it hits
            raise RuntimeError("could not prepare the dataset") from exc

    monkeypatch.setattr(datasets, "load_dataset", full)
    with pytest.raises(StateError, match="is full") as caught:
        read_hub("someone/tickets", config=None, split="train")
    assert "hf-datasets" in caught.value.message and "cannot load hub dataset" not in str(caught.value)


def test_a_full_disk_while_caching_an_answer_stops_the_run_clearly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ResponseCache(tmp_path / "cache") as cache:
        def full(*args: Any, **kwargs: Any) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(cache._store, "set", full)
        with pytest.raises(StateError, match="is full") as caught:
            asyncio.run(execute_realtime(requests(2), FakeProvider(), cache, concurrency=1))
        assert "cache.db" in caught.value.message and caught.value.exit_code == 2
        # The attempt whose answer could not be stored keeps its in-flight mark: a re-run counts it.
        assert list(cache.claims_dir.glob("*.inflight"))


def test_a_full_disk_for_the_report_is_said_so_and_leaves_no_staging_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.report import html

    task = load_task(_project(tmp_path))
    result = run_evaluation(task, load_settings(task.base_dir), RunOptions(mode="realtime", run_id="r"),
                            progress=NullProgress(), backend=fake_backend(_fake()))

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(html, "atomic_write_text", full)
    with pytest.raises(StateError, match="the disk is full") as caught:
        html.write_run_folder(result.folder, result.record, result.rows)
    assert str(result.folder) in caught.value.message and "costs nothing" in str(caught.value.hint)
    assert [p.name for p in result.folder.parent.iterdir()] == []


# -- damaged state -----------------------------------------------------------------------------------------
def test_a_damaged_cache_db_is_an_error_with_its_fix_and_repair_rebuilds_it(tmp_path: Path) -> None:
    from evalkit import api

    path = _project(tmp_path)
    settings = load_settings(tmp_path)
    with ResponseCache(settings.cache_dir) as cache:
        asyncio.run(execute_realtime(requests(3), FakeProvider(), cache, concurrency=2))
    database = settings.cache_dir / "responses" / "cache.db"
    database.write_bytes(os.urandom(4096))
    with pytest.raises(StateError) as caught:
        ResponseCache(settings.cache_dir)
    assert str(database) in caught.value.message and "evalkit cache repair" in str(caught.value.hint)
    assert not api.verify_state(path).ok
    done = api.repair_state(path)
    assert any("rebuilt" in line for line in done) and api.verify_state(path).ok
    assert list(database.parent.glob("cache.db.damaged-*"))


def test_repair_drops_damaged_entries_and_keeps_the_rest(tmp_path: Path) -> None:
    from evalkit import api

    path = _project(tmp_path)
    settings = load_settings(tmp_path)
    with ResponseCache(settings.cache_dir) as cache:
        asyncio.run(execute_realtime(requests(3), FakeProvider(), cache, concurrency=2))
        key = next(iter(cache._store.iterkeys()))
        value = cache._store.get(key)
        value["sha256"] = "0" * 64
        cache._store.set(key, value)
    check = api.verify_state(path)
    assert check.cache.damaged == [key] and check.cache.entries == 6
    assert any("removed 1 damaged" in line for line in api.repair_state(path))
    with ResponseCache(settings.cache_dir) as cache:
        assert len(cache) == 5 and cache.verify().ok


# -- confinement and bounds -----------------------------------------------------------------------------
def _include_task(tmp_path: Path, relative: str, settings: str = "") -> Path:
    path = _project(tmp_path, system="{{ doc }}", settings=settings)
    text = path.read_text().replace('  user: "{{ text }}"\n',
                                    f'  user: "{{{{ text }}}}"\n  include: {{doc: {json.dumps(relative)}}}\n')
    path.write_text(text)
    return path


@pytest.mark.parametrize("where", ["sibling", "absolute", "passwd", "symlink"])
def test_an_include_may_not_leave_the_task_folder(tmp_path: Path, where: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("the secret")
    relative = {"sibling": "../secret.txt", "absolute": str(outside),
                "passwd": "../../../../../../../../etc/passwd", "symlink": "link.txt"}[where]
    if where == "symlink":
        (project / "link.txt").symlink_to(outside)
    path = _include_task(project, relative)
    with pytest.raises(TemplateError) as caught:
        _prepare(path)
    assert f"{path}:" in caught.value.message and "outside the task's folder" in caught.value.message
    assert "include_dirs" in str(caught.value.hint)


def test_an_include_inside_the_task_folder_or_an_allowed_folder_is_read(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "docs" / "playbook.md").write_text("the playbook")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "glossary.md").write_text("the glossary")
    assert "the playbook" in _prepare(_include_task(project, "docs/playbook.md")).renderer.system
    allowed = _include_task(project, "../shared/glossary.md", settings='include_dirs = ["../shared"]\n')
    assert "the glossary" in _prepare(allowed).renderer.system


def test_the_nine_line_alias_bomb_fails_fast_with_a_clear_error() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]")
    started = time.perf_counter()
    with pytest.raises(SpecError) as caught:
        parse_task("\n".join(lines) + "\n", Path("bomb.yaml"))
    assert time.perf_counter() - started < 1.0
    assert "expands to more than" in str(caught.value) and "bomb.yaml:" in str(caught.value)


def test_an_oversized_task_file_is_refused() -> None:
    with pytest.raises(SpecError, match="over the"):
        parse_task("name: x\n" + "# padding\n" * 300_000, Path("big.yaml"))


def test_credentials_in_the_base_url_are_never_printed_or_stored(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    from evalkit.backends import connect

    settings = load_settings(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://alice:hunter2@proxy.example/v1?api_key=sk-query-42&x=1")
    backend = connect(settings, offline=False)
    for text in (backend.provider.endpoint, backend.description):
        assert "hunter2" not in text and "sk-query-42" not in text and "alice" not in text
    assert backend.provider.endpoint == "https://REDACTED@proxy.example/v1?api_key=REDACTED&x=1"
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "ftp://bob:pw-secret@host")
    with pytest.raises(UsageError) as caught:
        connect(settings, offline=False)
    assert "pw-secret" not in str(caught.value)


# -- one permission policy: owner-only -----------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_cache_ledger_and_reports_are_owner_only(tmp_path: Path) -> None:
    from evalkit.report.html import write_run_folder

    task = load_task(_project(tmp_path))
    settings = load_settings(task.base_dir)
    result = run_evaluation(task, settings, RunOptions(mode="realtime", run_id="r"), progress=NullProgress(),
                            backend=fake_backend(_fake()))
    write_run_folder(result.folder, result.record, result.rows)
    ledger = BatchLedger(settings.cache_dir.parent / "batches")
    for folder in (settings.cache_dir, settings.cache_dir / "responses", settings.cache_dir / "claims",
                   ledger.directory, result.folder):
        assert _mode(folder) == 0o700, folder
    for file in [*(settings.cache_dir / "responses").glob("cache.db*"), *result.folder.iterdir()]:
        assert _mode(file) == 0o600, file


def test_staging_folders_of_dead_writers_are_removed(tmp_path: Path) -> None:
    from evalkit.report.html import clean_staging

    reports = tmp_path / "reports"
    reports.mkdir()
    dead = reports / ".run1.99999999.abc123"  # no such process
    dead.mkdir()
    alive = reports / f".run2.{os.getppid()}.def456"
    alive.mkdir()
    other = reports / ".gitkeep"
    other.write_text("")
    assert clean_staging(reports) == [dead]
    assert alive.exists() and other.exists() and not dead.exists()


def test_every_error_above_is_an_evalkit_error() -> None:
    for kind in (DatasetError, TemplateError, SpecError, StateError, UsageError, ProviderError):
        assert issubclass(kind, EvalkitError)
