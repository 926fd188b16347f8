"""Event JSON in and out, matching the reference's Jackson behaviour where it matters.

The reference serialises events dropping null-valued map entries; consumers of our topics see
the same JSON. Parsing keeps integers as ``int`` and decimals as ``float``.
"""

from __future__ import annotations

import json
from typing import Any

from pipelines.domain.javafmt import drop_nulls


class InvalidEvent(ValueError):
    """An input record that cannot become an event dict; the message is the failure reason."""


def dumps(event: dict) -> str:
    return json.dumps(drop_nulls(event), separators=(",", ":"), ensure_ascii=False, default=str)


def payload_text(raw: bytes | str) -> str:
    """The record as text, lossless for UTF-8 and escaped (not dropped) for anything else."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="backslashreplace")
    return raw


MAX_DEPTH = 64


def nesting_depth(value: Any) -> int:
    """Depth of nested objects/arrays, computed without recursion (a hostile event cannot blow the stack)."""
    depth, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            depth = max(depth, d)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            depth = max(depth, d)
            stack.extend((x, d + 1) for x in v)
    return depth


def parse_event(raw: bytes | str, max_bytes: int) -> dict:
    """Parses one record into an event dict, or raises InvalidEvent with a reason."""
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise InvalidEvent(f"event of {size} bytes exceeds the limit of {max_bytes} bytes")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidEvent(f"not UTF-8: {e}") from None
    if not raw.strip():
        raise InvalidEvent("empty record")
    try:
        event = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as e:
        raise InvalidEvent(f"malformed JSON: {e}") from None
    if not isinstance(event, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(event).__name__}")
    if nesting_depth(event) > MAX_DEPTH:
        # Every later step (serialising, decorating) walks the event; no real event nests this deep.
        raise InvalidEvent(f"event nests deeper than {MAX_DEPTH} levels")
    return event
