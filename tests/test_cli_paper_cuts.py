"""The command line's paper cuts: every option documented, one table of exit codes (the same in
docs/ci.md), "did you mean" for model ids, per-sample export, the price table's date and its check, and
the API reference kept up to date — none of these start the simulator."""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from datetime import date, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import evalkit.docs
from evalkit.cli import main
from evalkit.config import load_settings
from evalkit.errors import (
    EXIT_AUTH,
    EXIT_CACHE,
    EXIT_CODES,
    EXIT_REGRESSION,
    EXIT_USAGE,
    AuthError,
    CacheError,
    EvalkitError,
    MetricError,
    ProviderError,
)
from evalkit.record.export import export_rows, flat_row
from evalkit.record.rows import SampleRow

REPO = Path(__file__).resolve().parents[1]


def _walk(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            found += _walk(sub, (*path, name))
    return found


def _undocumented(root: click.Command) -> tuple[list[str], dict[str, int]]:
    """What the help of ``root`` and its sub-commands leaves out, and how much it walked."""
    missing = []
    counts = {"commands": 0, "options": 0, "arguments": 0}
    for path, command in _walk(root):
        counts["commands"] += 1
        name = " ".join(("evalkit", *path))
        help_text = command.help or ""
        if not help_text.strip():
            missing.append(f"{name}: no help text")
        shown = CliRunner().invoke(root, [*path, "--help"])  # what a user sees, wrapped and all
        if shown.exit_code != 0:
            missing.append(f"{name} --help: exit {shown.exit_code}")
        page = " ".join(shown.output.split())
        context = click.Context(command, info_name=name)
        for param in command.get_params(context):
            if isinstance(param, click.Option):
                counts["options"] += 1
                if not (param.help or "").strip():
                    missing.append(f"{name} {param.opts[0]}: no help text")
                elif param.opts[-1] not in page or " ".join(param.help.split()[:4]) not in page:
                    missing.append(f"{name} {param.opts[-1]}: not shown with its help by --help")
            elif isinstance(param, click.Argument):
                counts["arguments"] += 1
                metavar = param.make_metavar(context).strip("[].")
                if metavar not in help_text:
                    missing.append(f"{name} {metavar}: the command's help never mentions it")
    return missing, counts


def test_every_command_documents_itself_and_every_option_and_argument() -> None:
    missing, counts = _undocumented(main)
    assert missing == []
    # What the walk covers (each command's --help is rendered): 18 groups and commands, 150 options (with
    # -h and the logging options), 11 arguments when this test was written.
    assert counts["commands"] >= 18 and counts["options"] >= 150 and counts["arguments"] >= 11, counts


def test_the_help_check_catches_an_undocumented_option_and_argument() -> None:
    @click.group()
    def root() -> None:
        """A group."""

    @root.command()
    @click.argument("thing", metavar="THING")
    @click.option("--speed")
    @click.option("--knob", hidden=True, help="Documented, but --help never shows it.")
    def sub(thing: str, speed: str, knob: str) -> None:
        """Does something."""

    missing, counts = _undocumented(root)
    assert sorted(missing) == ["evalkit sub --knob: not shown with its help by --help",
                               "evalkit sub --speed: no help text",
                               "evalkit sub THING: the command's help never mentions it"]
    assert counts == {"commands": 2, "options": 4, "arguments": 1}


def test_every_command_has_the_logging_options() -> None:
    for path, command in _walk(main):
        names = {opt for param in command.params for opt in getattr(param, "opts", [])}
        assert {"-v", "--verbose", "-q", "--quiet", "--log-file", "--log-format"} <= names, path


@pytest.mark.parametrize("where", ["before", "after"])
def test_logging_options_work_before_and_after_the_command(tmp_path: Path, where: str) -> None:
    log = tmp_path / "evalkit.log"
    options = ["-vv", "--log-file", str(log), "--log-format", "json"]
    args = ["prices", "check"]
    argv = [*options, *args] if where == "before" else [*args, *options]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries and {"ts", "level", "logger", "message"} <= set(entries[0])
    assert any(entry["message"].startswith("evalkit ") and entry["level"] == "debug" for entry in entries)


def test_the_exit_code_table_is_the_one_in_docs_ci_md() -> None:
    text = (REPO / "docs" / "ci.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, flags=re.M)}
    assert documented == set(EXIT_CODES)
    assert len(set(EXIT_CODES)) == len(EXIT_CODES)
    # Each failure class has its own code.
    classes = {EvalkitError: EXIT_USAGE, ProviderError: 4, AuthError: EXIT_AUTH, CacheError: EXIT_CACHE,
               MetricError: 10}
    assert {cls: cls.exit_code for cls in classes} == classes


def _task(tmp_path: Path, model: str) -> Path:
    text = (REPO / "tasks" / "triage.yaml").read_text().replace("candidate: claude-haiku-5-5",
                                                                  f"candidate: {model}")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "triage.jsonl").write_text((REPO / "datasets" / "triage.jsonl").read_text())
    path = tmp_path / "tasks" / "triage.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("typo", "meant"), [("claude-haiku-5.5", "claude-haiku-5-5"),
                                            ("claude-sonet-5-5", "claude-sonnet-5-5"),
                                            ("Claude-Haiku-5-5", "claude-haiku-5-5")])
def test_a_mistyped_model_id_gets_did_you_mean_with_the_task_line(tmp_path: Path, typo: str, meant: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = _task(tmp_path, typo)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-never-used-0000")  # nothing is sent: it fails first
    for command in (["validate", str(path)], ["estimate", str(path)], ["run", str(path), "--online"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == EXIT_USAGE, result.output
        line = path.read_text().splitlines().index(f"  candidate: {typo}") + 1
        assert f"{path}:{line}: models.candidate.model: unknown model id '{typo}'" in result.output
        assert f"did you mean '{meant}'" in result.output and "Known models:" not in result.output


def test_a_model_nobody_knows_still_asks_for_a_price(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(_task(tmp_path, "acme-large-2")), "--online"])
    assert result.exit_code == EXIT_USAGE and "no price for model 'acme-large-2'" in result.output


def _row(sample_id: str, label: str, gold: str, *, ok: bool = True) -> SampleRow:
    call = {"model": "m", "output": "{}", "stop_reason": "end_turn", "usage": {"input_tokens": 10,
            "output_tokens": 5}, "cost_usd": 0.001, "mode": "batch", "batch_id": "msgbatch_1",
            "request_id": None, "from_cache": False, "error": None,
            "answer": {"outcome": "ok", "label": label, "confidence": 0.8, "escalate": False,
                       "fields": {"reason": "because, \"quoted\"\nand a new line"}} if ok else
            {"outcome": "invalid", "code": "not_json", "reason": "reply is not valid JSON"}}
    return SampleRow.model_validate({
        "id": sample_id, "input_hash": "h", "text": "line one\nline two, with a comma", "gold": gold,
        "segments": {"channel": "email"}, "candidate": call, "reference": {**call, "model": "r"},
        "scores": {"agree": ok, "candidate_correct": ok and label == gold, "reference_correct": True}})


def test_export_flattens_rows_into_csv_and_jsonl_with_the_same_columns() -> None:
    rows = [_row("a", "billing", "billing"), _row("b", "billing", "technical", ok=False)]
    table = list(csv.DictReader(io.StringIO(export_rows(rows, "csv"))))
    lines = [json.loads(line) for line in export_rows(rows, "jsonl").splitlines()]
    assert [row["id"] for row in table] == ["a", "b"] == [line["id"] for line in lines]
    assert list(table[0]) == list(lines[0]) == list(flat_row(rows[0]))
    first, second = table
    assert first["candidate_answer"] == "billing" and first["candidate_confidence"] == "0.8"
    assert first["candidate_field_reason"] == 'because, "quoted"\nand a new line'
    assert first["text"] == "line one\nline two, with a comma" and first["segment_channel"] == "email"
    assert first["candidate_correct"] == "true" and first["candidate_batch_id"] == "msgbatch_1"
    assert second["candidate_outcome"] == "invalid" and second["candidate_invalid_code"] == "not_json"
    assert second["candidate_answer"] == "" and lines[1]["candidate_answer"] is None
    assert lines[1]["candidate_field_reason"] is None  # every column on every line


def test_export_refuses_to_overwrite_the_run_folder_files(tmp_path: Path) -> None:
    (tmp_path / "results.jsonl").write_text("")
    result = CliRunner().invoke(main, ["export", str(tmp_path), "--format", "jsonl", "-o",
                                       str(tmp_path / "results.jsonl")])
    assert result.exit_code == EXIT_USAGE and "does not overwrite" in result.output


def _project(tmp_path: Path, pricing: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "evalkit.toml").write_text("[evalkit]\n" + pricing)
    return tmp_path


def test_prices_lists_the_dated_table_and_marks_overrides(tmp_path: Path) -> None:
    project = _project(tmp_path, '[pricing.models."claude-haiku-5-5"]\ninput = 0.2\noutput = 1\n'
                                 "cache_write_5m = 0.25\ncache_write_1h = 0.4\ncache_read = 0.02\n")
    result = CliRunner().invoke(main, ["prices", "--project", str(project)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("prices as of 2026-11-24 (") and "source: " in result.output
    haiku = next(line for line in result.output.splitlines() if line.startswith("claude-haiku-5-5 "))
    assert haiku.split()[1:3] == ["0.2", "1"] and "evalkit.toml" in haiku
    sonnet = next(line for line in result.output.splitlines() if line.startswith("claude-sonnet-5-5 "))
    assert "evalkit.toml" not in sonnet


def test_prices_toml_is_a_pricing_section_evalkit_reads_back(tmp_path: Path) -> None:
    printed = CliRunner().invoke(main, ["prices", "--toml", "--project", str(_project(tmp_path, ""))])
    assert printed.exit_code == 0, printed.output
    section = tomllib.loads(printed.output)["pricing"]
    assert section["as_of"] == date.today().isoformat()
    assert section["models"]["claude-haiku-5-5"]["long_context"]["threshold_tokens"] == 100000
    refreshed = _project(tmp_path / "again", printed.output.replace("input = 2\n", "input = 2.5\n", 1))
    listing = CliRunner().invoke(main, ["prices", "--project", str(refreshed)])
    assert listing.exit_code == 0
    assert f"prices as of {date.today().isoformat()} (0 days ago)" in listing.output


@pytest.mark.parametrize(("age", "code"), [(10, 0), (200, EXIT_REGRESSION)])
def test_prices_check_fails_when_the_table_is_older_than_max_age(tmp_path: Path, age: int, code: int) -> None:
    as_of = (date.today() - timedelta(days=age)).isoformat()
    project = _project(tmp_path, f'[pricing]\nas_of = "{as_of}"\n')
    result = CliRunner().invoke(main, ["prices", "check", "--max-age", "90", "--project", str(project)])
    assert result.exit_code == code, result.output
    if code:
        assert f"{age} days old, over the 90-day limit" in result.output
        assert "docs/pricing.md" in result.output
    else:
        assert f"{age} days old (limit 90): OK" in result.output


def test_the_api_reference_is_generated_from_the_docstrings_and_current() -> None:
    committed = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    assert committed == evalkit.docs.render(), (
        "docs/api.md is out of date: run `python -m evalkit.docs` and commit it")
    for name in evalkit.__all__:
        if name != "__version__":
            assert f"### `{name}`" in committed, name
    assert "Exit code of the `evalkit` command: **8**." in committed  # AuthError's


def test_the_pricing_docs_override_example_is_what_evalkit_reads(tmp_path: Path) -> None:
    block = re.search(r"```toml\n(\[pricing\].*?)```", (REPO / "docs" / "pricing.md").read_text(), flags=re.S)
    assert block is not None
    (tmp_path / "evalkit.toml").write_text(block.group(1))
    pricing = load_settings(tmp_path).pricing
    assert pricing.as_of == "2027-01-15" and pricing.overridden == ["claude-haiku-5-5"]
    assert pricing.price_for("haiku").input == 0.08 and pricing.price_for("claude-sonnet-5-5").input == 2.0
    assert pricing.price_for("claude-haiku-5-5").for_prompt(200_000).input == 0.40
