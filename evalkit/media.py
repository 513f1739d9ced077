"""Documents (PDF) and images as the Messages API takes them: media types, limits and token estimates.

One module for evalkit's pre-flight checks (a bad file fails before any request is paid), its cost
estimates and the simulator, so all three apply the same rules and count the same tokens.

Sources (docs/en/build-with-claude/..., mirrored in the llms-txt-archive of platform.claude.com):

- ``vision.md``: JPEG, PNG, GIF and WebP only; at most 8000x8000 px; at most 10 MB per image
  (base64-encoded) on the Claude API (5 MB on Bedrock and Vertex); more than 20 images in a request
  lowers the per-image limit to 2000 px; at most 600 images per request (100 on 200k-context models).
  An image costs ``ceil(w/28) * ceil(h/28)`` visual tokens, after it is scaled down to the model's tier:
  long edge 1568 px and 1568 tokens (standard), 2576 px and 4784 tokens (Claude 4.7 and later). The
  older rule of thumb ``w*h/750`` agrees within 5% (28*28 = 784).
- ``vision-coordinates.md``: the resize rule implemented by :func:`resized_size`; PDF pages are
  rasterised server-side "at dimensions you don't control".
- ``pdf-support.md``: 32 MB per request; 600 pages (100 when the context window is under 1M tokens);
  no passwords/encryption; "each page is converted into an image" and billed like one, plus the page's
  extracted text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

from evalkit.tokens import count_tokens

PDF = "application/pdf"
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_REQUEST_BYTES = 32 * 1024 * 1024
MAX_IMAGE_BASE64_BYTES = 10 * 1024 * 1024
MAX_IMAGE_EDGE = 8000
MANY_IMAGES = 20
MANY_IMAGES_EDGE = 2000
#: (long edge, visual-token budget) per resolution tier.
STANDARD_TIER = (1568, 1568)
HIGH_RES_TIER = (2576, 4784)


class MediaError(ValueError):
    """A document or image the API would refuse; the message says what is wrong with it."""


def sniff(data: bytes) -> str | None:
    """The media type the bytes' signature says (PDF or one of the four image types), else None."""
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def decode_base64(data: str) -> bytes:
    """Strict standard base64 (what the API accepts), or :class:`MediaError`."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(f"invalid base64 data ({exc})") from None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the file header, for the four supported formats. Written here rather than
    with Pillow: the two numbers in the header are all evalkit reads from an image (it never decodes
    one), and they are not worth a native runtime dependency; the tests draw images with Pillow."""
    kind = sniff(data)
    try:
        if kind == "image/png":
            return struct.unpack(">II", data[16:24])
        if kind == "image/gif":
            return struct.unpack("<HH", data[6:10])
        if kind == "image/webp":
            return _webp_size(data)
        if kind == "image/jpeg":
            return _jpeg_size(data)
    except struct.error:
        pass
    raise MediaError("cannot read the image's dimensions: the file is truncated or not a "
                     "JPEG/PNG/GIF/WebP image")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    raise struct.error("unknown WebP chunk")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            index += 1
            continue
        marker = data[index + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            index += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[index + 2:index + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[index + 5:index + 9])
            return w, h
        index += 2 + length
    raise struct.error("no JPEG frame header")


def count_image_tokens(width: int, height: int) -> int:
    """Visual tokens of an image as sent: one per 28x28-pixel patch (vision.md)."""
    return math.ceil(width / 28) * math.ceil(height / 28)


def resized_size(width: int, height: int, tier: tuple[int, int] = STANDARD_TIER) -> tuple[int, int]:
    """The size the API scales an image down to (the documented reference implementation)."""
    max_edge, max_tokens = tier

    def fits(w: int, h: int) -> bool:
        return (math.ceil(w / 28) * 28 <= max_edge and math.ceil(h / 28) * 28 <= max_edge
                and count_image_tokens(w, h) <= max_tokens)

    if fits(width, height):
        return width, height
    if height > width:
        h, w = resized_size(height, width, tier)
        return w, h
    aspect = width / height
    lo, hi = 1, width
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if fits(mid, max(round(mid / aspect), 1)):
            lo = mid
        else:
            hi = mid
    return lo, max(round(lo / aspect), 1)


_VERSION = re.compile(r"^claude-(?:[a-z]+)-(\d+)(?:-(\d{1,2}))?(?:-|$)")


def vision_tier(model: str) -> tuple[int, int]:
    """The model's resolution tier: high resolution on Claude 4.7 and later (vision.md), else standard."""
    found = _VERSION.match(model)
    if found is None:
        return STANDARD_TIER
    version = (int(found.group(1)), int(found.group(2) or 0))
    return HIGH_RES_TIER if version >= (4, 7) else STANDARD_TIER


#: Models with a 200k-token context window (facts §4): 100 PDF pages and 100 images per request.
_SMALL_CONTEXT = re.compile(r"^claude-(3|haiku-4-5|sonnet-4-5|sonnet-4-2|sonnet-4-0|opus-4-[0-5]|"
                            r"sonnet-4-\d{8}|opus-4-\d{8})")


def page_limit(model: str) -> int:
    """PDF pages (and images) one request may hold: 600, or 100 under a 1M context window."""
    return 100 if _SMALL_CONTEXT.match(model) else 600


def image_tokens(width: int, height: int, model: str) -> int:
    """Input tokens of a ``width`` x ``height`` image for ``model``, after the API's downscaling."""
    return count_image_tokens(*resized_size(width, height, vision_tier(model)))


@dataclass(frozen=True)
class PdfInfo:
    pages: int
    page_texts: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.page_texts)


#: Memos keyed by content hash, never by the content: a run may hold many large files.
_PDF_INFO: dict[str, PdfInfo] = {}
_SOURCE_TOKENS: dict[tuple[str, str], int] = {}
_MEMO_SIZE = 4096


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value


def _read_pdf(data: bytes) -> PdfInfo:
    from pypdf import PdfReader  # noqa: PLC0415  (lazy: only runs with PDFs)
    from pypdf.errors import PdfReadError  # noqa: PLC0415

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise MediaError("the PDF is encrypted or password-protected; the API takes standard PDFs only")
        texts = tuple(page.extract_text() or "" for page in reader.pages)
    except MediaError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, struct.error, OSError) as exc:
        raise MediaError(f"the PDF cannot be read ({exc})") from None
    if not texts:
        raise MediaError("the PDF has no pages")
    return PdfInfo(pages=len(texts), page_texts=texts)


def pdf_info(data: bytes) -> PdfInfo:
    """Pages and per-page text of a PDF (read with pypdf; memoised by content hash)."""
    if sniff(data) != PDF:
        raise MediaError("the file is not a PDF (it does not start with %PDF-)")
    key = hashlib.sha256(data).hexdigest()
    if key not in _PDF_INFO:
        _remember(_PDF_INFO, key, _read_pdf(data))
    return _PDF_INFO[key]


def page_image_tokens(model: str) -> int:
    """Image tokens of one PDF page: the tier's visual-token budget. The API rasterises pages at a size
    the caller does not control (vision-coordinates.md), so evalkit assumes the largest it can cost: an
    upper bound, which is what a budget check needs."""
    return vision_tier(model)[1]


def pdf_tokens(info: PdfInfo, model: str) -> int:
    """Input tokens of a PDF: per page, its text's tokens plus one page image (pdf-support.md, "Estimate
    your costs": "Each page is converted into an image, the same image-based cost calculations are
    applied", on top of the text tokens)."""
    return sum(count_tokens(text) + page_image_tokens(model) for text in info.page_texts)


def check_image(data: bytes, media_type: str | None = None, *, many: bool = False) -> tuple[int, int]:
    """An image the API takes, or :class:`MediaError`; returns its (width, height)."""
    kind = sniff(data)
    if kind not in IMAGE_TYPES:
        raise MediaError(f"not a JPEG, PNG, GIF or WebP image (media types {', '.join(IMAGE_TYPES)})")
    if media_type is not None and media_type != kind:
        raise MediaError(f"the image was specified using the {media_type} media type, but it appears to "
                         f"be a {kind} image")
    encoded = 4 * math.ceil(len(data) / 3)
    if encoded > MAX_IMAGE_BASE64_BYTES:
        raise MediaError(f"image exceeds {MAX_IMAGE_BASE64_BYTES // (1024 * 1024)} MB maximum: "
                         f"{encoded} bytes > {MAX_IMAGE_BASE64_BYTES} bytes (base64-encoded)")
    width, height = image_size(data)
    edge = MANY_IMAGES_EDGE if many else MAX_IMAGE_EDGE
    if max(width, height) > edge:
        where = " in many-image requests (more than 20 images)" if many else ""
        raise MediaError(f"image dimensions {width}x{height} exceed the maximum allowed size{where}: "
                         f"{edge} pixels")
    return width, height


def check_pdf(data: bytes, model: str | None = None) -> PdfInfo:
    """A PDF the API takes, or :class:`MediaError`."""
    info = pdf_info(data)
    limit = page_limit(model) if model else 600
    if info.pages > limit:
        raise MediaError(f"the PDF has {info.pages} pages; a request may hold at most {limit}"
                         + (f" on {model}" if model else ""))
    return info


def base64_size(data: bytes) -> int:
    return 4 * math.ceil(len(data) / 3)


def _source_tokens(kind: str, data: str, model: str) -> int:
    key = (hashlib.sha256(data.encode("ascii", "replace")).hexdigest(), f"{kind}:{model}")
    if key not in _SOURCE_TOKENS:
        raw = decode_base64(data)
        tokens = (image_tokens(*image_size(raw), model) if kind == "image"
                  else pdf_tokens(pdf_info(raw), model))
        _remember(_SOURCE_TOKENS, key, tokens)
    return _SOURCE_TOKENS[key]


def block_tokens(block: dict[str, object], model: str) -> int:
    """Input tokens of an ``image`` or ``document`` content block (0 for other blocks). Base64 sources are
    measured (dimensions, pages, page text); a plain-text document source is counted as its text."""
    kind = block.get("type")
    source = block.get("source")
    if kind not in ("image", "document") or not isinstance(source, dict):
        return 0
    if source.get("type") == "text":
        return count_tokens(str(source.get("data", "")))
    if source.get("type") != "base64":
        return 0
    return _source_tokens(str(kind), str(source.get("data", "")), model)


def block_text(block: dict[str, object]) -> str:
    """What a reader of the block sees as text: a PDF's extracted text, a text document's text; "" for an
    image (evalkit reads no pixels)."""
    source = block.get("source")
    if block.get("type") != "document" or not isinstance(source, dict):
        return ""
    if source.get("type") == "text":
        return str(source.get("data", ""))
    if source.get("type") == "base64" and source.get("media_type") == PDF:
        return pdf_info(decode_base64(str(source.get("data", "")))).text
    return ""
