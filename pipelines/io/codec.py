"""Event JSON in and out, matching the reference's Jackson behaviour where it matters.

The reference serialises events dropping null-valued map entries; consumers of our topics see
the same JSON. Parsing keeps integers as ``int`` and decimals as ``float``.

Parsing is strict about what could not be written out again: invalid UTF-8, lone surrogates
(``"\\ud800"`` escapes), integers longer than Python's 4,300-digit conversion limit, numbers
that overflow a double (``1e999999``) and ``NaN``/``Infinity`` are refused here with a reason, so
no such record reaches a later step and fails there (which, in streaming, failed the whole job).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pipelines.domain.javafmt import drop_nulls


class InvalidEvent(ValueError):
    """An input record that cannot become an event dict; the message is the failure reason."""


def dumps(event: dict, keep_nulls: bool = False) -> str:
    """Compact JSON; null-valued entries dropped like the reference, unless ``keep_nulls``
    (failed records keep the original event exactly)."""
    return json.dumps(event if keep_nulls else drop_nulls(event), separators=(",", ":"), ensure_ascii=False,
                      default=str)


def payload_text(raw: bytes | str) -> str:
    """The record as text, lossless for UTF-8 and escaped (not dropped) for anything else."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="backslashreplace")
    return raw.encode("utf-8", errors="backslashreplace").decode("utf-8")


MAX_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999999 overflows to inf, which would be written out as Infinity
        raise ValueError(f"number out of range: {text[:40]}")
    return value


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
        event = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except (json.JSONDecodeError, RecursionError) as e:
        raise InvalidEvent(f"malformed JSON: {e}") from None
    except ValueError as e:  # an integer over the digit limit, NaN/Infinity
        raise InvalidEvent(f"malformed JSON: {e}") from None
    if not isinstance(event, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(event).__name__}")
    if nesting_depth(event) > MAX_DEPTH:
        # Every later step (serialising, decorating) walks the event; no real event nests this deep.
        raise InvalidEvent(f"event nests deeper than {MAX_DEPTH} levels")
    if _SURROGATE_ESCAPE.search(raw):
        # Escaped surrogates are fine in pairs; a lone one decodes to a string no encoder accepts.
        try:
            json.dumps(event, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidEvent("malformed JSON: a \\u escape encodes a lone UTF-16 surrogate") from None
    return event
