"""Conversations, PDFs and images as task inputs (docs/inputs.md): loading, checks, requests, estimates, and
the simulator's validation of the blocks. Fast tier: nothing here starts the simulator."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfWriter

from evalkit import media
from evalkit.cost.estimate import _input_tokens
from evalkit.datasets import load_samples
from evalkit.errors import DatasetError
from evalkit.prompts.prompt_caching import plan_caching
from evalkit.prompts.render import PromptRenderer, build_request, output_schema
from evalkit.providers.response_cache import request_key
from evalkit.sim.tokens import request_input_tokens
from evalkit.sim.validate import Context, validate_message_body
from evalkit.sim.wire import ApiError
from evalkit.spec import load_task
from evalkit.tokens import count_tokens

REPO = Path(__file__).resolve().parents[1]
INVOICE_PDF = REPO / "datasets" / "invoices_pdf" / "inv0001.pdf"

TASK = """\
name: inputs_test
dataset:
  path: data/rows.jsonl
  label_column: label
prompt:
  system: "Route the customer's message to one of: {{ labels | join(', ') }}."
  user: "{user}"
input:
{input}
output:
  labels: [billing, technical]
models:
  candidate: claude-haiku-5-5
  reference: claude-sonnet-5-5
"""


def _task(tmp_path: Path, rows: list[dict[str, Any]], input_yaml: str, user: str = "") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "task.yaml"
    path.write_text(TASK.format(input=input_yaml, user=user))
    return path


def _samples(path: Path) -> list[Any]:
    task = load_task(path)
    return load_samples(task, cache_dir=path.parent / ".cache", offline=True).samples


def _request(path: Path, sample_id: str | None = None, cache_ttl: str | None = None) -> Any:
    task = load_task(path)
    samples = load_samples(task, cache_dir=path.parent / ".cache", offline=True).samples
    sample = next(s for s in samples if sample_id is None or s.id == sample_id)
    renderer = PromptRenderer(task, "candidate")
    return build_request(task, "candidate", sample, renderer.render(sample), cache_ttl=cache_ttl)


def _png(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(out, format=fmt)
    return out.getvalue()


def _blank_pdf(pages: int) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- conversations ---------------------------------------------------------------------------------------

CONVERSATION = [
    {"role": "user", "content": "Hi, I was charged twice this month."},
    {"role": "assistant", "content": "Sorry about that. Which card was charged?"},
    {"role": "user", "content": "The Visa ending 4242, both on the 3rd."},
]


def test_a_conversation_column_becomes_the_messages_with_the_cached_system_prefix(tmp_path: Path) -> None:
    path = _task(tmp_path, [{"id": "c1", "chat": CONVERSATION, "label": "billing"}],
                 "  messages: chat", user="Which queue?")
    (sample,) = _samples(path)
    assert sample.text == "The Visa ending 4242, both on the 3rd."  # the last user turn stands for the row
    request = _request(path, cache_ttl="5m")
    messages = request.params["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [{"type": "text", "text": CONVERSATION[1]["content"]}]
    assert messages[-1]["content"] == [{"type": "text", "text": CONVERSATION[2]["content"]},
                                       {"type": "text", "text": "Which queue?"}]
    assert request.params["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in block for m in messages for block in m["content"])


def test_an_empty_user_template_sends_the_conversation_alone(tmp_path: Path) -> None:
    path = _task(tmp_path, [{"id": "c1", "chat": json.dumps(CONVERSATION), "label": "billing"}],
                 "  messages: chat")  # a JSON string (CSV cells) is read as the list
    messages = _request(path).params["messages"]
    assert messages[-1]["content"] == [{"type": "text", "text": CONVERSATION[2]["content"]}]


@pytest.mark.parametrize(("chat", "says"), [
    ([{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "hi"}],
     "message 0 is a assistant turn where a user turn is due"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
     "message 1 is a user turn where a assistant turn is due"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
     "ends with an assistant turn"),
    ([{"role": "system", "content": "be nice"}, {"role": "user", "content": "b"}],
     "role must be 'user' or 'assistant', got 'system'"),
    ([{"role": "user", "content": "  "}], "message 0 has empty content"),
    ([{"role": "user", "content": "a", "name": "x"}], "unknown key(s) name"),
    ([{"role": "user", "content": [{"type": "tool_use"}]}], "block 0: type must be one of"),
    ([], "must be a non-empty list"),
    ("not json", "not valid JSON"),
])
def test_a_malformed_conversation_is_refused_with_file_row_and_fix(tmp_path: Path, chat: Any,
                                                                   says: str) -> None:
    rows = [{"id": "ok", "chat": CONVERSATION, "label": "billing"}, {"id": "bad", "chat": chat,
                                                                      "label": "billing"}]
    path = _task(tmp_path, rows, "  messages: chat")
    with pytest.raises(DatasetError) as info:
        _samples(path)
    assert says in info.value.message
    assert "rows.jsonl:2" in info.value.message and "row id=bad" in info.value.message
    assert info.value.hint


# --- documents and images --------------------------------------------------------------------------------

def test_documents_and_images_from_paths_become_base64_blocks_before_the_text(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "inv.pdf").write_bytes(INVOICE_PDF.read_bytes())
    (tmp_path / "data" / "scan.jpg").write_bytes(_png(300, 200, "JPEG"))
    path = _task(tmp_path, [{"id": "a", "pdf": "inv.pdf", "photo": ["scan.jpg"], "label": "billing"}],
                 "  documents: [pdf]\n  images: [photo]", user="Classify it.")
    (sample,) = _samples(path)
    assert sample.text == "[document: inv.pdf]\n[image: scan.jpg]"
    content = _request(path).params["messages"][0]["content"]
    assert content[0] == {"type": "document", "source": {
        "type": "base64", "media_type": "application/pdf",
        "data": base64.b64encode(INVOICE_PDF.read_bytes()).decode()}}
    assert content[1]["type"] == "image" and content[1]["source"]["media_type"] == "image/jpeg"
    assert base64.b64decode(content[1]["source"]["data"]) == (tmp_path / "data" / "scan.jpg").read_bytes()
    assert content[2] == {"type": "text", "text": "Classify it."}


def test_images_from_bytes_and_base64_in_the_dataset(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    png, gif = _png(40, 30), _png(20, 10, "GIF")
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"id": ["p1", "p2"], "img": [png, gif], "label": ["billing", "technical"],
                             "b64": [base64.b64encode(gif).decode(), base64.b64encode(png).decode()]}),
                   tmp_path / "data" / "rows.parquet")
    path = tmp_path / "task.yaml"
    path.write_text(TASK.format(input="  images: [img, b64]", user="x").replace("rows.jsonl", "rows.parquet"))
    samples = {s.id: s for s in _samples(path)}
    first = samples["p1"].attachments
    assert [(a.media_type, a.width, a.height) for a in first] == [("image/png", 40, 30),
                                                                  ("image/gif", 20, 10)]
    assert first[0].data == png and first[1].data == gif


@pytest.mark.parametrize(("value", "column", "says"), [
    ("missing.pdf", "documents", "file not found"),
    ("pic.png", "documents", "is image/png, but this column must hold a PDF"),
    ("inv.pdf", "images", "is application/pdf, but this column must hold a JPEG, PNG, GIF or WebP image"),
    ("notes.txt", "documents", "is not a PDF or a supported image"),
    ("huge.png", "images", "exceed the maximum allowed size: 8000 pixels"),
    (None, "documents", "no document (got null)"),
])
def test_bad_files_fail_when_the_dataset_loads(tmp_path: Path, value: Any, column: str, says: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "pic.png").write_bytes(_png(10, 10))
    (data / "inv.pdf").write_bytes(INVOICE_PDF.read_bytes())
    (data / "notes.txt").write_text("hello")
    header = _png(10, 10)  # a PNG header claiming 9000 px: the size check reads headers, not pixels
    (data / "huge.png").write_bytes(header[:16] + (9000).to_bytes(4, "big") + (10).to_bytes(4, "big")
                                    + header[24:])
    path = _task(tmp_path, [{"id": "r1", "f": value, "label": "billing"}], f"  {column}: [f]", user="x")
    with pytest.raises(DatasetError) as info:
        _samples(path)
    assert says in info.value.message and "row id=r1: 'f'" in info.value.message


def test_too_many_pages_for_the_model_fail_before_any_request(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "long.pdf").write_bytes(_blank_pdf(101))
    path = _task(tmp_path, [{"id": "r1", "f": "long.pdf", "label": "billing"}], "  documents: [f]", user="x")
    path.write_text(path.read_text().replace("claude-haiku-5-5", "claude-haiku-4-5"))  # 200k context
    with pytest.raises(DatasetError, match="101 pages; a request to claude-haiku-4-5 may hold at most 100"):
        _samples(path)


def test_the_response_cache_key_and_input_hash_follow_the_pdf_bytes(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    pdf = tmp_path / "data" / "doc.pdf"
    pdf.write_bytes(_blank_pdf(1))
    path = _task(tmp_path, [{"id": "r1", "f": "doc.pdf", "label": "billing"}], "  documents: [f]", user="x")
    before, hash_before = _request(path), _samples(path)[0].input_hash
    assert request_key("messages", before) == request_key("messages", _request(path))  # stable
    pdf.write_bytes(_blank_pdf(2))  # same path, same row, other bytes
    after = _request(path)
    assert request_key("messages", after) != request_key("messages", before)
    assert _samples(path)[0].input_hash != hash_before


def test_static_documents_are_cached_prefix_and_per_sample_ones_are_not(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "playbook.pdf").write_bytes(INVOICE_PDF.read_bytes())
    (tmp_path / "data" / "doc.pdf").write_bytes(_blank_pdf(1))
    path = _task(tmp_path, [{"id": "r1", "f": "doc.pdf", "label": "billing"}],
                 "  documents: [f]\n  static_documents: [playbook.pdf]", user="x")
    request = _request(path, cache_ttl="1h")
    first = request.params["messages"][0]["content"]
    assert first[0]["type"] == "document" and first[0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert first[1]["type"] == "document" and "cache_control" not in first[1]  # the sample's own PDF
    task = load_task(path)
    systems = {role: PromptRenderer(task, role).system for role in ("candidate", "reference")}
    plans = plan_caching(task, systems, output_schema(task.output), mode="realtime")
    page = media.pdf_info(INVOICE_PDF.read_bytes())
    assert plans["candidate"].prefix_tokens >= media.pdf_tokens(page, "claude-haiku-5-5")
    assert plans["candidate"].enabled  # the playbook PDF makes the prefix long enough to cache
    prefix, rest = _input_tokens(request)
    assert prefix >= media.pdf_tokens(page, "claude-haiku-5-5")
    assert rest >= media.pdf_tokens(media.pdf_info(_blank_pdf(1)), "claude-haiku-5-5")


# --- token estimates -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "model", "tokens"), [
    # vision.md's table: standard tier (Haiku 4.5) and high-resolution tier (Claude 4.7 and later)
    ((200, 200), "claude-haiku-4-5", 64),
    ((1000, 1000), "claude-haiku-4-5", 1296),
    ((1920, 1080), "claude-haiku-4-5", 1560),
    ((1920, 1080), "claude-haiku-5-5", 2691),
    ((3840, 2160), "claude-sonnet-5-5", 4784),
    ((2000, 1500), "claude-sonnet-4-5-20250929", 1564),
])
def test_image_tokens_follow_the_documented_table(size: tuple[int, int], model: str, tokens: int) -> None:
    assert media.image_tokens(*size, model) == tokens
    assert abs(media.image_tokens(200, 200, model) - 200 * 200 / 750) < 12  # the w*h/750 rule of thumb


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_image_dimensions_are_read_from_the_header(fmt: str) -> None:
    assert media.image_size(_png(1000, 1000, fmt)) == (1000, 1000)
    assert media.image_size(_png(123, 45, fmt)) == (123, 45)


def test_an_image_request_is_estimated_as_the_simulator_bills_it(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.png").write_bytes(_png(1000, 1000))
    path = _task(tmp_path, [{"id": "r1", "f": "p.png", "label": "billing"}], "  images: [f]", user="x")
    request = _request(path)
    _, rest = _input_tokens(request)
    assert rest == count_tokens("x") + 1296 + 8
    assert request_input_tokens(request.params) >= 1296


def test_pdf_tokens_are_page_text_plus_one_page_image_per_page() -> None:
    blank = media.pdf_info(_blank_pdf(3))
    assert blank.pages == 3
    assert media.pdf_tokens(blank, "claude-haiku-4-5") == 3 * 1568  # no text: the page images only
    assert media.pdf_tokens(blank, "claude-haiku-5-5") == 3 * 4784
    invoice = media.pdf_info(INVOICE_PDF.read_bytes())
    assert invoice.pages == 1 and "Hazelcombe Catering AG" in invoice.text
    assert media.pdf_tokens(invoice, "claude-haiku-5-5") == count_tokens(invoice.text) + 4784


# --- the simulator's checks ------------------------------------------------------------------------------

def _body(block: dict[str, Any], model: str = "claude-haiku-5-5") -> dict[str, Any]:
    return {"model": model, "max_tokens": 100,
            "messages": [{"role": "user", "content": [block, {"type": "text", "text": "read it"}]}]}


def _validate(body: dict[str, Any]) -> str:
    return validate_message_body(body, Context(), lambda model: object())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_simulator_accepts_valid_documents_and_images() -> None:
    assert _validate(_body({"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                           "data": _b64(INVOICE_PDF.read_bytes())}}))
    assert _validate(_body({"type": "image", "cache_control": {"type": "ephemeral"},
                            "source": {"type": "base64", "media_type": "image/webp",
                                       "data": _b64(_png(50, 50, "WEBP"))}}))
    assert _validate(_body({"type": "document", "title": "note",
                            "source": {"type": "text", "media_type": "text/plain", "data": "hello"}}))


@pytest.mark.parametrize(("block", "says"), [
    ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not*base64!"}},
     "messages.0.content.0.image.source.base64.data: Invalid base64 data"),
    ({"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": _b64(b"BM")}},
     "media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"),
    ({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": _b64(_png(5, 5))}},
     "specified using the image/jpeg media type, but it appears to be a image/png image"),
    ({"type": "document", "source": {"type": "base64", "media_type": "image/png", "data": _b64(_png(5, 5))}},
     "document.source.base64.media_type: Input should be 'application/pdf'"),
    ({"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                     "data": _b64(b"%PDF-1.4 broken")}},
     "The PDF specified was not valid."),
    ({"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                     "data": _b64(_png(5, 5))}}, "The PDF specified was not valid."),
    ({"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                  "data": "A" * (10 * 1024 * 1024 + 4)}}, "image exceeds 10 MB maximum"),
    ({"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
     "cannot fetch url sources"),
    ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _b64(_png(5, 5)),
                                  "extra": 1}}, "extra: Extra inputs are not permitted"),
    ({"type": "image"}, "image.source: Field required"),
])
def test_the_simulator_rejects_bad_blocks_as_the_api_does(block: dict[str, Any], says: str) -> None:
    with pytest.raises(ApiError) as info:
        _validate(_body(block))
    assert info.value.status == 400 and says in info.value.message


def test_the_simulator_enforces_the_page_limit_per_model() -> None:
    block = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                            "data": _b64(_blank_pdf(101))}}
    assert _validate(_body(block, "claude-haiku-5-5"))  # 1M context: 600 pages
    with pytest.raises(ApiError, match="A maximum of 100 PDF pages may be provided."):
        _validate(_body(block, "claude-haiku-4-5"))


def test_the_simulator_counts_document_and_image_tokens() -> None:
    text_only = request_input_tokens(_body({"type": "text", "text": "hi"}))
    pdf = _body({"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                "data": _b64(_blank_pdf(2))}})
    assert request_input_tokens(pdf) - text_only == 2 * 4784 - count_tokens("hi")
    image = _body({"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                               "data": _b64(_png(1000, 1000))}}, "claude-haiku-4-5")
    assert request_input_tokens(image) - request_input_tokens(
        {**image, "messages": [{"role": "user", "content": [image["messages"][0]["content"][1]]}]}) == 1296


def test_a_file_edited_after_loading_is_refused_not_sent(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    pdf = tmp_path / "data" / "doc.pdf"
    pdf.write_bytes(_blank_pdf(1))
    path = _task(tmp_path, [{"id": "r1", "f": "doc.pdf", "label": "billing"}], "  documents: [f]", user="x")
    (sample,) = _samples(path)
    assert sample.attachments[0].inline is None  # held by path and hash, read when the request is built
    pdf.write_bytes(_blank_pdf(2))
    with pytest.raises(DatasetError, match="changed while evalkit was running"):
        sample.attachments[0].block()
