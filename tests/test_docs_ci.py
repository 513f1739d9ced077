"""docs/ci.md promises only what exists: every evalkit command it shows parses (each option is one of that
command's, and `--help` works), every option its prose names is an option of a command it shows, its
workflow saves the cache with `if: always()` (what a failed or pending gate paid for is kept), and the
documented recipe runs as written (e2e, on the simulator)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from evalkit.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "ci.md"
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


def _run_lines(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [str(node["run"]) for key in ("run",) if isinstance(node.get(key), str)]
        return found + [line for value in node.values() for line in _run_lines(value)]
    if isinstance(node, list):
        return [line for value in node for line in _run_lines(value)]
    return []


def documented_commands() -> list[str]:
    """Every `evalkit …` command line of the doc: shell blocks, workflow `run:` steps, inline code."""
    commands: list[str] = []
    for language, body in _blocks():
        if language == "bash":
            commands += [line.split(" #")[0].strip() for line in body.splitlines()
                         if line.startswith("evalkit ")]
        elif language == "yaml" and "jobs:" in body:
            commands += [line.strip() for line in _run_lines(yaml.safe_load(body))
                         if line.strip().startswith("evalkit ")]
    prose = BLOCK.sub("", DOC.read_text(encoding="utf-8"))
    commands += [span for span in re.findall(r"`(evalkit [^`]+)`", prose)]
    return commands


def resolve(words: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """(the command, its path, the remaining words) for `evalkit WORDS…`."""
    command: click.Command = main
    path: list[str] = []
    rest = list(words)
    while rest and rest[0].startswith("-"):  # the logging options go before the command name too
        if rest.pop(0) in ("--log-file", "--log-format"):
            rest.pop(0)
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    return command, path, rest


def options_of(command: click.Command) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts)
            if name.startswith("-")}


def test_every_documented_command_and_option_exists() -> None:
    commands = documented_commands()
    assert any(c.startswith("evalkit gate ") for c in commands) and len(commands) >= 8, commands
    known: set[str] = set()
    for line in commands:
        words = shlex.split(line)[1:]
        command, path, rest = resolve(words)
        assert path, f"docs/ci.md: `{line}` names no evalkit command"
        options = options_of(command) | {"--help", "-h"}
        known |= options
        for word in rest:
            if word.startswith("-"):
                assert word.split("=")[0] in options, (
                    f"docs/ci.md: `{line}`: evalkit {' '.join(path)} has no {word}")
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, result.output
    for name, sub in main.commands.items():  # options the prose names may belong to any evalkit command
        if isinstance(sub, click.Group):
            for inner in sub.commands.values():
                known |= options_of(inner)
        elif f"evalkit {name}" in DOC.read_text(encoding="utf-8"):
            known |= options_of(sub)
    prose = BLOCK.sub("", DOC.read_text(encoding="utf-8"))
    for option in set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", prose)):
        assert option in known, f"docs/ci.md names {option}, which no evalkit command it shows has"


def test_the_workflow_keeps_what_a_failed_or_pending_gate_paid_for() -> None:
    workflows = [yaml.safe_load(body) for language, body in _blocks()
                 if language == "yaml" and "jobs:" in body]
    assert len(workflows) == 2
    plain, shared = workflows
    steps = plain["jobs"]["gate"]["steps"]
    uses = [str(step.get("uses", "")) for step in steps]
    assert not any(u.startswith("actions/cache@") for u in uses), (
        "one-step actions/cache saves only when the job succeeds")
    restore = next(i for i, u in enumerate(uses) if u.startswith("actions/cache/restore@"))
    save = next(i for i, u in enumerate(uses) if u.startswith("actions/cache/save@"))
    gate = next(i for i, step in enumerate(steps) if "evalkit gate" in str(step.get("run", "")))
    assert restore < gate < save
    assert steps[save]["if"] == "always()" and steps[save]["with"]["path"] == steps[restore]["with"]["path"]
    assert ".evalkit" in steps[save]["with"]["path"]  # the cache and the batch ledger beside it
    service = shared["jobs"]["gate"]["services"]["postgres"]
    assert service["image"].startswith("postgres:")
    env = shared["jobs"]["gate"]["env"]
    assert env["EVALKIT_STORE"].startswith("postgresql://") and "PGPASSWORD" in env
    assert "@" in env["EVALKIT_STORE"] and ":" not in env["EVALKIT_STORE"].split("//")[1].split("@")[0]


@pytest.mark.e2e
@pytest.mark.slow
def test_the_documented_recipe_runs_as_written(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline recipe, the routed recipe and the workflow's gate line, verbatim, on the simulator
    (no ANTHROPIC_API_KEY: offline). A NO-GO gate exits 1; what matters is that no option is refused (2)."""
    monkeypatch.chdir(project)
    recipe = [c for language, body in _blocks() if language == "bash" for c in body.splitlines()
              if c.startswith("evalkit ") and " runs " not in c and " compare " not in c]
    workflow_gate = next(c for c in documented_commands() if c.startswith("evalkit gate ") and "--junit" in c)
    expected = {"run": {0}, "tune": {0}, "baseline": {0}, "gate": {0, 1, 3}}
    for line in [*recipe, workflow_gate]:
        words = shlex.split(line.split(" #")[0])[1:]
        result = CliRunner().invoke(main, [*words, "-q"] if words[0] in ("run", "gate") else words)
        assert result.exit_code in expected[words[0]], f"`{line}` exited {result.exit_code}: {result.output}"
    assert (project / "junit.xml").exists()
