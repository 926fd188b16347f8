"""lern-beam-smoke's two rules: an event needs a ``mid``; the output event wraps it with its batch."""

from __future__ import annotations

from typing import Any

from pipelines.domain.errors import InvalidRequest


def require_mid(event: dict) -> list[dict]:
    """The event itself, or ``InvalidRequest`` when it has no usable ``mid`` (the dedup key)."""
    mid = event.get("mid")
    if not isinstance(mid, str) or not mid:
        raise InvalidRequest("missing or non-string mid")
    return [event]


def output_event(event: dict, shard: int, batch_size: int) -> dict[str, Any]:
    return {"eid": "LERN_BEAM_SMOKE", "mid": event.get("mid"), "shard": shard, "batchSize": batch_size,
            "edata": event}
