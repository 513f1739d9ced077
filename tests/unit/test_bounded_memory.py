"""What keeps a large run's memory bounded: rows built when read, results.jsonl written line by line, the
report's sample browser capped while reading, and the exact group test summed in blocks."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from evalkit._io import atomic_write_lines
from evalkit.config import load_settings
from evalkit.errors import ProviderError
from evalkit.progress import NullProgress
from evalkit.prompts.render import ModelRequest
from evalkit.providers.base import ModelResponse
from evalkit.providers.execute import CallResult
from evalkit.providers.response_cache import request_key
from evalkit.record.rows import LazyRows, SampleRow, sample_row
from evalkit.report import html
from evalkit.run.options import RunOptions
from evalkit.run.pipeline import run_evaluation
from evalkit.run.session import Session
from evalkit.spec import load_task
from evalkit.stats import exact
from tests.fakes import FakeProvider, fake_backend, json_message
from tests.unit.helpers import tickets


def _run(tmp_path: Path):  # type: ignore[no-untyped-def]
    path, _ = tickets(tmp_path, count=40)
    task = load_task(path)
    # The candidate says "billing" to everything, the reference "technical" to tickets with a 1 in them.
    provider = FakeProvider(lambda r: json_message(r, category="billing" if r.model.startswith("claude-haiku")
                                                   else "technical" if "1" in r.user_text else "billing",
                                                   confidence=0.9))
    return run_evaluation(task, load_settings(tmp_path), RunOptions(mode="realtime", run_id="r"),
                          progress=NullProgress(), backend=fake_backend(provider))


def test_rows_are_built_from_the_results_when_read_and_equal_the_eager_rows(tmp_path: Path) -> None:
    result = _run(tmp_path)
    pricing = load_settings(tmp_path).pricing
    eager = [sample_row(r, pricing) for r in result.results]
    assert isinstance(result.rows, LazyRows) and len(result.rows) == 40
    assert list(result.rows) == eager
    assert result.rows[3] == eager[3] and result.rows[-1] == eager[-1] and result.rows[2:5] == eager[2:5]
    html.write_run_folder(result.folder, result.record, result.rows)
    written = [SampleRow.model_validate_json(line)
               for line in (result.folder / "results.jsonl").read_text().splitlines()]
    assert written == eager


def test_a_file_written_line_by_line_never_holds_its_whole_text(tmp_path: Path) -> None:
    line = json.dumps({"text": "x" * 2000}) + "\n"

    def lines() -> Iterator[str]:
        for _ in range(10_000):  # 20 MB in all
            yield line

    tracemalloc.start()
    try:
        atomic_write_lines(tmp_path / "big.jsonl", lines())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "big.jsonl").stat().st_size == 10_000 * len(line)
    assert peak < 2_000_000  # the joined text would be 20 MB


def test_the_sample_browser_keeps_the_cap_while_reading_disagreements_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(tmp_path)
    monkeypatch.setattr(html, "MAX_BROWSER_SAMPLES", 5)
    seen: list[int] = []

    def reading() -> Iterator[SampleRow]:
        for index, row in enumerate(result.rows):
            seen.append(index)
            yield row

    browsed = html._browser_samples(reading(), result.record.scoring_mode)
    assert len(seen) == 40 and len(browsed) == 5  # every row read once, only the cap kept
    flagged = [row.id for row in result.rows
               if False in (row.scores.agree, row.scores.candidate_correct, row.scores.reference_correct)]
    assert 5 <= len(flagged) < 40 and [s["id"] for s in browsed] == flagged[:5]


@pytest.mark.parametrize(("b", "c", "n"), [(120, 80, 1000), (3, 1, 40), (0, 0, 300), (40, 2, 700)])
def test_the_blocked_exact_tail_equals_one_sum_over_all_outcomes(
        b: int, c: int, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = exact.exact_paired_pvalues(b, c, n, 0.05)
    monkeypatch.setattr(exact, "TAIL_BLOCK", 10**9)  # one block: the sum over every outcome at once
    whole = exact.exact_paired_pvalues(b, c, n, 0.05)
    np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=1e-15)


def test_the_exact_test_of_a_1000_sample_group_stays_small_in_memory() -> None:
    exact.exact_paired_pvalues(120, 80, 1000, 0.05)  # caches the outcome table (16 MB), loads the libraries
    tracemalloc.start()
    try:
        exact.exact_paired_pvalues(121, 80, 1000, 0.05)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20  # one outcomes × grid matrix and its temporaries was ~110 MB


def test_finishing_a_sessions_event_loop_formats_none_of_its_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio.run formats its finished task's result when it restores the SIGINT handler (CPython 3.11):
    a Session whose repr held every call cost 10 s and ~650 MB at 10,000 samples."""
    formatted: list[int] = []
    monkeypatch.setattr(CallResult, "__repr__", lambda self: formatted.append(1) or "call")
    request = ModelRequest(sample_id="s", role="candidate", params={"model": "claude-haiku-5-5"})
    calls = [CallResult(request=request, response=ModelResponse(message={"content": []}), error=None,
                        from_cache=True) for _ in range(1000)]

    async def session() -> Session:
        return Session(calls=calls, judge_calls=calls[:10])

    assert asyncio.run(session()).calls is calls
    assert formatted == [] and len(repr(Session(calls=calls))) < 500


_RECORDED = (Path(__file__).parents[1] / "fixtures/recorded/messages_cache_read_sonnet-4-5.response.json"
             ).read_text()


def _recorded_classification_message(index: int) -> dict[str, object]:
    """A real recorded Message (tests/fixtures/recorded) made to answer a triage ticket (its own id and
    reason), then taken through the SDK as the batch path takes a result line: decoded into the SDK's
    models and turned back into a dict (so key strings are shared and values are not, as in a run)."""
    from anthropic.types.messages import MessageBatchIndividualResponse

    message: dict[str, object] = json.loads(_RECORDED)
    message["id"] = f"msg_{index:024d}"
    answer = {"category": "billing", "confidence": 0.9, "escalate": False,
              "reason": f"ticket {index} says an invoice was charged twice this month"}
    message["content"] = [{"type": "text", "text": json.dumps(answer)}]
    line = json.dumps({"custom_id": f"c{index}", "result": {"type": "succeeded", "message": message}})
    item = MessageBatchIndividualResponse.model_validate(json.loads(line))
    return item.result.message.to_dict(mode="json")  # type: ignore[union-attr]


def _retained_bytes_each(make: object, count: int = 2_000) -> float:
    """Bytes still allocated per object while ``count`` results of ``make(i)`` are kept (after one call
    outside the count, so what a first use builds, such as the SDK's validators, is not counted)."""
    make(count)  # type: ignore[operator]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make(i) for i in range(count)]  # type: ignore[operator]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == count
    return (after - before) / count


def test_an_answer_kept_for_the_record_holds_its_json_compactly_and_returns_it_exactly() -> None:
    # Issue 20 (100k samples under 1 GB): every answer is kept until the record is built. As the dict the
    # SDK hands over, a Message is ~1.7 KB; held as compact JSON it is ~1.0 KB (a 10k-sample batch run:
    # 166 -> 144 MB traced when the record is assembled).
    as_dict = _retained_bytes_each(_recorded_classification_message)
    each = _retained_bytes_each(lambda i: ModelResponse(_recorded_classification_message(i),
                                                        request_id=f"req_{i}", mode="batch"))
    assert each < 0.7 * as_dict, f"{each:.0f} bytes per kept response, {as_dict:.0f} as a dict"
    message = _recorded_classification_message(7)
    response = ModelResponse(message, request_id="req_7", mode="batch", batch_id="msgbatch_1")
    assert response.message == message and response.message is not response.message
    assert ModelResponse.from_cache(response.to_cache()) == response
    assert response.text == message["content"][0]["text"]  # type: ignore[index]
    assert response.usage.cache_read_input_tokens == 1111 and response.usage.output_tokens == 406
    assert (response.stop_reason, response.model, response.thought) == ("end_turn",
                                                                        "claude-sonnet-4-5-20250929", False)
    with pytest.raises(AttributeError):
        response.mode = "realtime"  # type: ignore[misc]


def test_a_filtered_corpus_read_keeps_only_its_rows_and_never_holds_the_rest(tmp_path: Path) -> None:
    # Issue 20: the simulator's leak check read all rows of a 100k-row dataset to keep its training split
    # (+400 MB at the 100k run's peak). A JSON Lines file is now filtered while it is read.
    from evalkit.tabular import read_table

    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i in range(20_000):
            handle.write(json.dumps({"id": i, "split": "train" if i % 100 == 0 else "test",
                                     "text": f"ticket {i} " + "words " * 30, "label": "billing"}) + "\n")

    def traced_peak(**kwargs: object) -> tuple[int, int]:
        tracemalloc.start()
        try:
            table = read_table(path, **kwargs)  # type: ignore[arg-type]
            return len(table.rows), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    everything, full_peak = traced_peak()
    kept, filtered_peak = traced_peak(keep=lambda row: row["split"] == "train")
    assert (everything, kept) == (20_000, 200)
    assert filtered_peak < full_peak / 10, (filtered_peak, full_peak)
    kept_rows = read_table(path, keep=lambda row: row["split"] == "train")
    assert [row["id"] for row in kept_rows.rows] == list(range(0, 20_000, 100))
    assert kept_rows.places[1] == f"{path}:101"


def test_parsed_answers_and_requests_kept_per_sample_are_small() -> None:
    from evalkit.scoring.answers import Answer

    each = _retained_bytes_each(lambda i: Answer(outcome="ok", label="billing", confidence=i / 2_000,
                                                 escalate=False))
    assert each < 250, f"{each:.0f} bytes per kept answer"  # a pydantic Answer was ~1.1 KB
    params = {"model": "claude-haiku-5-5", "max_tokens": 64}
    each = _retained_bytes_each(lambda i: ModelRequest(sample_id="s", role="candidate", params=params))
    assert each < 100, f"{each:.0f} bytes per kept request object"  # 113 with a __dict__


def test_a_json_lines_row_holding_a_line_separator_character_is_one_row(tmp_path: Path) -> None:
    # JSON text may hold a raw U+2028 inside a string; the file was split with str.splitlines, which cut
    # such a row in two and reported it as invalid JSON. Lines now end at "\n" only (a BOM is still skipped).
    from evalkit.tabular import read_table

    path = tmp_path / "d.jsonl"
    rows = [{"id": 1, "text": "first\u2028second\u0085third"}, {"id": 2, "text": "plain"}]
    text = "".join(json.dumps(row, ensure_ascii=False) + "\r\n" for row in rows)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    table = read_table(path)
    assert table.rows == rows and table.places == [f"{path}:1", f"{path}:2"]


def test_a_cached_re_run_reads_each_answer_from_the_cache_once(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 22 (cached re-run <= 1.5 s): the cost estimate read every cached answer (decompress, checksum,
    # decode) and the run read it again. The estimate's read is now handed to the run.
    import diskcache

    first = _run(tmp_path)
    reads: list[str] = []
    real_get = diskcache.Cache.get

    def counted(self: diskcache.Cache, key: str, *args: object, **kwargs: object) -> object:
        reads.append(key)
        return real_get(self, key, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(diskcache.Cache, "get", counted)
    second = _run(tmp_path)
    assert second.record.execution.cache_hits == 80 and second.record.execution.requests_sent == 0
    assert len(reads) == len(set(reads)) == 80
    assert [row.candidate.output for row in second.rows] == [row.candidate.output for row in first.rows]


def test_both_models_requests_share_one_messages_list_when_their_prompt_is_the_same(tmp_path: Path) -> None:
    # Issue 20: every request is kept until the record is built; the candidate and the reference render the
    # same prompt unless the candidate has its own, so their messages are built once (~0.3 KB a sample).
    from evalkit.run.prepare import prepare
    from evalkit.spec import PromptVariant

    path, _ = tickets(tmp_path, count=6)
    task = load_task(path)
    prepared = prepare(task, load_settings(tmp_path), mode="realtime")
    by_sample: dict[str, dict[str, ModelRequest]] = {}
    for request in prepared.requests:
        by_sample.setdefault(request.sample_id, {})[request.role] = request
    for pair in by_sample.values():
        candidate, reference = pair["candidate"], pair["reference"]
        assert candidate.params["messages"] is reference.params["messages"]
        assert candidate.params["model"] != reference.params["model"]
    variant = PromptVariant(user="Ticket: {{ text }}")
    own = task.model_copy(update={"models": task.models.model_copy(update={
        "candidate": task.models.candidate.model_copy(update={"prompt": variant})})})
    apart = prepare(own, load_settings(tmp_path), mode="realtime")
    first = {r.role: r for r in apart.requests if r.sample_id == apart.requests[0].sample_id}
    assert first["candidate"].params["messages"] is not first["reference"].params["messages"]
    assert first["candidate"].params["messages"][0]["content"][0]["text"].startswith("Ticket: ")


def test_the_sample_browser_never_holds_more_than_its_cap_while_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 22: unflagged samples read first filled their own cap, and the flagged ones read later filled
    # theirs: 2 × the cap held at the report's memory high (~8 MB at 10k samples).
    result = _run(tmp_path)
    rows = list(result.rows)
    flagged = [row for row in rows
               if False in (row.scores.agree, row.scores.candidate_correct, row.scores.reference_correct)]
    unflagged = [row for row in rows if row not in flagged]
    assert len(flagged) >= 5 and len(unflagged) >= 5
    monkeypatch.setattr(html, "MAX_BROWSER_SAMPLES", 5)

    class Side:  # what _side builds for each entry, traced while it lives
        pass

    live: weakref.WeakSet[Side] = weakref.WeakSet()
    most = 0

    def side(call: object) -> Side:
        made = Side()
        live.add(made)
        return made

    def reading() -> Iterator[SampleRow]:
        nonlocal most
        for row in unflagged + flagged:  # every unflagged entry before any flagged one
            yield row
            most = max(most, len(live))

    monkeypatch.setattr(html, "_side", side)
    browsed = html._browser_samples(reading(), result.record.scoring_mode)
    assert [s["id"] for s in browsed] == [row.id for row in flagged[:5]]
    assert most <= 2 * (5 + 1), f"{most // 2} entries held at once with a cap of 5"  # two sides an entry


def test_the_report_page_is_written_without_ever_holding_its_embedded_data_whole(tmp_path: Path) -> None:
    # Issue 22: the page's embedded JSON (~3M characters at 10k samples, 4 bytes each once a text holds an
    # emoji) was one string, copied by its escapes, the template's join and the encoding: +24 MB at the end
    # of a 10k-sample run, its memory high.
    result = _run(tmp_path)
    text = ("Caf\u00e9 <b>bill</b> & \U0001f600 refund " * 300)[:html.MAX_TEXT_CHARS]
    rows = [row.model_copy(update={"text": f"{i:03d} {text}"[:html.MAX_TEXT_CHARS]})
            for i, row in enumerate(result.rows)]
    page = html.render_html(result.record, rows)
    embedded = sum(len(row.text) for row in rows) * 4  # bytes of one copy of the texts as one string
    assert embedded > 900_000
    html.write_html(tmp_path / "warm.html", result.record, rows)  # the template compiled, plots imported
    tracemalloc.start()
    try:
        html.write_html(tmp_path / "report.html", result.record, rows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == page  # the same page, byte for byte
    assert peak < 0.6 * embedded, f"{peak:,} bytes traced at the peak, {embedded:,} in one copy of the data"


def test_answered_calls_keep_their_key_but_not_their_prompt_and_failed_calls_keep_it_all(
        tmp_path: Path) -> None:
    # Issue 22: every request's rendered messages stayed in memory to the end of a run through its calls
    # (~1.3 KB a sample), though after the calls only the model, max_tokens and the key are read.
    path, _ = tickets(tmp_path, count=20)
    task = load_task(path)

    provider = FakeProvider(lambda r: json_message(r, category="billing", confidence=0.9))
    provider.fail(ProviderError("overloaded", status=529), times=None,
                  when=lambda r: "ticket 7:" in r.user_text and r.model.startswith("claude-haiku"))
    result = run_evaluation(task, load_settings(tmp_path), RunOptions(mode="realtime", run_id="r"),
                            progress=NullProgress(), backend=fake_backend(provider))
    calls = [call for r in result.results for call in r.calls.values()]
    answered = [call for call in calls if call.response is not None]
    failed = [call for call in calls if call.response is None]
    assert len(answered) == 39 and len(failed) == 1
    sent = {request_key(provider.endpoint, r.request): r.request for r in provider.sent() if r.request}
    for call in answered:
        assert call.request.is_released and set(call.request.params) == {"model", "max_tokens"}
        assert sent[request_key(provider.endpoint, call.request)].sample_id == call.request.sample_id
    assert "messages" in failed[0].request.params and not failed[0].request.is_released
    with pytest.raises(ValueError, match="released request"):
        request_key("https://elsewhere.example", answered[0].request)
    html.write_run_folder(result.folder, result.record, result.rows)  # the record still reads them all
    assert result.record.execution.errors == 1


def test_a_simulated_run_whose_every_request_failed_is_still_simulated_after_its_requests_are_released(
        tmp_path: Path) -> None:
    # The run lets its rendered requests go before scoring (issue 22); that it called a model is kept.
    path, _ = tickets(tmp_path, count=10)
    provider = FakeProvider(lambda r: json_message(r, category="billing", confidence=0.9), simulated=True)
    provider.fail(ProviderError("overloaded", status=529), times=None, when=lambda r: True)
    result = run_evaluation(load_task(path), load_settings(tmp_path), RunOptions(mode="realtime", run_id="r"),
                            progress=NullProgress(), backend=fake_backend(provider, kind="simulator"))
    assert result.record.execution.errors == 20 and result.record.simulated
    assert result.failure is not None
