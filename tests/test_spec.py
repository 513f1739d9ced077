"""Task files: valid ones load into typed models; bad ones fail with file, line, key path and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.errors import SpecError
from evalkit.spec import load_task

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
name: demo
dataset:
  path: data.jsonl
  label_column: category
prompt:
  system: Pick one of {{ labels | join(', ') }}.
  user: "{{ text }}"
output:
  labels: [billing, technical]
models:
  candidate: claude-haiku-5-5
  reference: claude-sonnet-5-5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_triage_task_loads_with_defaults() -> None:
    task = load_task(REPO / "tasks" / "triage.yaml")
    assert task.name == "triage"
    assert task.models.candidate.model == "claude-haiku-5-5"
    assert task.decision.margin == 0.05
    assert "billing" in task.output.label_names


def test_defaults(tmp_path: Path) -> None:
    task = load_task(_write(tmp_path, GOOD))
    assert task.sample.size == 300 and task.sample.seed == 0 and task.sample.stratify
    assert task.decision.margin == 0.05
    assert task.output.confidence_field == "confidence" and task.output.escalate_field == "escalate"


def test_unknown_key_is_located_with_a_did_you_mean(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("  label_column: category", "  lable_column: category"))
    with pytest.raises(SpecError) as caught:
        load_task(path)
    text = str(caught.value)
    assert f"{path}:4: dataset.lable_column: unknown key" in text
    assert "did you mean 'label_column'" in text


def test_type_error_is_located(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "  max_tokens: lots\n")
    with pytest.raises(SpecError) as caught:
        load_task(path)
    assert f"{path}:13: models.max_tokens:" in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("name: demo", "name: Demo Task!").replace("  reference: claude-sonnet-5-5\n", "")
    with pytest.raises(SpecError) as caught:
        load_task(_write(tmp_path, text))
    paths = {issue.path for issue in caught.value.issues}
    assert {"name", "models.reference"} <= paths


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: demo\ndataset: [\n")
    with pytest.raises(SpecError) as caught:
        load_task(path)
    assert "not valid YAML" in str(caught.value) and f"{path}:" in str(caught.value)


def test_margin_given_in_points_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_task(_write(tmp_path, GOOD + "decision:\n  margin: 5\n"))
    assert "write 0.05 for 5 points" in str(caught.value)


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_task(_write(tmp_path, GOOD + "name: other\n"))
    assert "name" in str(caught.value) and "duplicate" in str(caught.value).lower()


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        load_task(_write(tmp_path,
                         GOOD.replace("name: demo", "name: !!python/object/apply:os.system ['true']")))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_task(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(caught.value)


def test_the_spec_hash_of_a_claude_api_task_is_what_it_was_before_platforms_existed(tmp_path: Path) -> None:
    """Saying the default (provider: anthropic) changes nothing; another platform is another task. The
    hash is the digest of the task without the provider keys, as evalkit computed it before them."""
    from evalkit._hashing import digest

    plain = load_task(_write(tmp_path, GOOD))
    said = load_task(_write(tmp_path, GOOD + "  provider: anthropic\n"))
    bedrock = load_task(_write(tmp_path, GOOD + "  provider: bedrock\n"))
    before = plain.model_dump(mode="json", exclude={"input"})
    before["models"].pop("provider")
    for role in ("candidate", "reference"):
        before["models"][role].pop("provider")
    assert plain.spec_hash == said.spec_hash == digest(before)
    assert bedrock.spec_hash != plain.spec_hash
