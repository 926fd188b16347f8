"""Java's formats, for values the reference wrote with Java and consumers compare as text.

Numbers: ``Double.toString``. JSON: Jackson and Gson (as configured by the reference) leave out
null-valued entries (``drop_nulls``); Gson's HTML-safe string literals (``gson_string``) and the
iteration order of a ``java.util.HashMap`` (``java_hashmap_order``) it serialises. Hashes:
``String.hashCode`` (``java_string_hash``), the reference's shard key.

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


_GSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\b": "\\b", "\n": "\\n", "\r": "\\r", "\f": "\\f",
                 "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "=": "\\u003d", "'": "\\u0027",
                 "\u2028": "\\u2028", "\u2029": "\\u2029"}


def gson_string(s: str) -> str:
    """A JSON string literal the way Gson writes it (HTML-safe escaping, non-ASCII kept)."""
    out = []
    for ch in s:
        esc = _GSON_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def java_hashmap_order(keys: list[str]) -> list[str]:
    """The iteration order of a ``java.util.HashMap`` the keys were put into, in that order.

    A default HashMap has 16 buckets, doubled whenever it is more than 3/4 full; a key's bucket
    is ``(h ^ h >>> 16) & (buckets - 1)`` of its ``hashCode``; iteration walks the buckets in
    order and each bucket in insertion order (resizes keep that relative order).
    """
    capacity = 16
    while len(keys) > capacity * 3 // 4:
        capacity *= 2

    def bucket(k: str) -> int:
        h = java_string_hash(k) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & (capacity - 1)

    return sorted(dict.fromkeys(keys), key=bucket)  # sorted() is stable: insertion order within a bucket
