"""A deterministic stand-in tokenizer.

Real Claude tokenizers are not public; this one gives stable, plausible counts (about 4 characters per
token for words, one token per digit and punctuation mark), which is all the simulator's usage fields
and the cost model need.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_PIECES = re.compile(r"[^\W\d_]+|\d|[^\w\s]|_", re.UNICODE)

#: Fixed costs the real API adds around content (role markers, structured-output grammar prompt).
MESSAGE_OVERHEAD = 3
REQUEST_OVERHEAD = 4
SCHEMA_OVERHEAD = 40


def count_tokens(text: str) -> int:
    total = 0
    for piece in _PIECES.findall(text):
        total += math.ceil(len(piece) / 4) if piece[0].isalpha() else 1
    return total


def content_text(content: Any) -> list[str]:
    """Texts of a message's content (a string or a list of blocks)."""
    if isinstance(content, str):
        return [content]
    texts = []
    for block in content or []:
        if isinstance(block, dict):
            if block.get("type") == "text":
                texts.append(str(block.get("text", "")))
            elif block.get("type") in ("tool_use", "tool_result"):
                texts.append(json.dumps(block.get("input", block.get("content", "")), sort_keys=True))
    return texts


def system_texts(system: Any) -> list[str]:
    if system is None:
        return []
    return content_text(system)


def schema_tokens(body: dict[str, Any]) -> int:
    fmt = ((body.get("output_config") or {}).get("format")) or {}
    if not fmt:
        return 0
    return SCHEMA_OVERHEAD + count_tokens(json.dumps(fmt.get("schema", {}), sort_keys=True))


def request_input_tokens(body: dict[str, Any]) -> int:
    """Total input tokens of a Messages request (what count_tokens reports)."""
    total = REQUEST_OVERHEAD + schema_tokens(body)
    total += sum(count_tokens(text) for text in system_texts(body.get("system")))
    for message in body.get("messages") or []:
        total += MESSAGE_OVERHEAD + sum(count_tokens(text) for text in content_text(message.get("content")))
    for tool in body.get("tools") or []:
        total += count_tokens(json.dumps(tool, sort_keys=True))
    return total
