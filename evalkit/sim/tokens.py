"""Token accounting of the simulated API, on evalkit's stand-in tokenizer (:mod:`evalkit.tokens`)."""

from __future__ import annotations

import json
from typing import Any

from evalkit import media
from evalkit.tokens import count_tokens

#: Fixed costs the real API adds around content (role markers, structured-output grammar prompt).
MESSAGE_OVERHEAD = 3
REQUEST_OVERHEAD = 4
SCHEMA_OVERHEAD = 40

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


def output_format(body: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON output format: ``output_config.format``, or the deprecated top-level
    ``output_format`` (accepted with its beta header); ``{}`` when there is none."""
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format") or {}
    return fmt if isinstance(fmt, dict) else {}


def schema_tokens(body: dict[str, Any]) -> int:
    fmt = output_format(body)
    if not fmt:
        return 0
    return SCHEMA_OVERHEAD + count_tokens(json.dumps(fmt.get("schema", {}), sort_keys=True))


def prefix_blocks(body: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    """The request's blocks in prompt-cache order (tools, system, messages), each with its tokens."""
    out: list[tuple[dict[str, Any], int]] = []
    for tool in body.get("tools") or []:
        clean = {k: v for k, v in tool.items() if k != "cache_control"}
        out.append((tool, count_tokens(json.dumps(clean, sort_keys=True))))
    system = body.get("system")
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    for block in system or []:
        if isinstance(block, dict):
            out.append((block, count_tokens(str(block.get("text", "")))))
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        blocks = [block for block in content or [] if isinstance(block, dict)]
        if not blocks:
            out.append(({"type": "text", "text": "", "_role": message.get("role")}, MESSAGE_OVERHEAD))
        for index, block in enumerate(blocks):
            text = ("".join(content_text([block])) if block.get("type") != "text"
                    else str(block.get("text", "")))
            tokens = count_tokens(text) + (MESSAGE_OVERHEAD if index == 0 else 0)
            if block.get("type") in ("image", "document"):  # pixels and pages: evalkit.media's rules
                tokens += media.block_tokens(block, str(body.get("model") or ""))
            out.append(({**block, "_role": message.get("role")}, tokens))
    return out


def request_input_tokens(body: dict[str, Any]) -> int:
    """Total input tokens of a Messages request (what count_tokens reports)."""
    return REQUEST_OVERHEAD + schema_tokens(body) + sum(tokens for _, tokens in prefix_blocks(body))
