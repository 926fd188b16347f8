"""Java's formats, for values the reference wrote with Java and consumers compare as text.

Numbers: ``Double.toString``. JSON: Jackson and Gson (as configured by the reference) leave out
null-valued entries (``drop_nulls``). Hashes: ``String.hashCode`` (``java_string_hash``), the
reference's shard key.

Shared by the relation cache (collection-cache JSON written by Jackson) and the assessment job
(``agg_details`` written by Gson, question ``duration`` as ``BigDecimal.valueOf``).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any


def java_double_to_string(x: float) -> str:
    """Java ``Double.toString``: the shortest digits that round-trip (JDK 19+, which is also
    what JDK 11 prints for ordinary values), plain between 1e-3 and 1e7 with at least one
    fraction digit (``2.0``, ``1.33``), otherwise ``d.dddE±n`` (``1.0E7``, ``1.5E-4``)."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    a = abs(x)
    if 1e-3 <= a < 1e7:
        return sign + repr(a)  # Python's repr is plain, shortest and has ".0" in exactly this range
    d = Decimal(repr(a))
    _, digits_t, exp = d.as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    trailing = len("".join(map(str, digits_t))) - len(digits)
    exp += trailing
    sci = len(digits) - 1 + exp  # value = d.ddd * 10**sci
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{sci}"


def drop_nulls(value: Any) -> Any:
    """The value as Jackson/Gson serialise it: null-valued object entries left out, recursively."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def java_string_hash(s: str) -> int:
    """Java's ``String.hashCode`` (32-bit signed, over UTF-16 code units)."""
    data = s.encode("utf-16-le")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i:i + 2], "little")) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h
