"""Failed-event records, one shape for every job.

The reference has two: jobs-core's ``FailedEventHelper`` adds ``jobName`` and
``failInfo.error``; the assessment job adds ``flags: {}`` and ``metadata.validation_error`` /
``metadata.src`` (and loses them at HEAD to a nested-write bug). Consumers of either shape must
keep working, so a failed event carries both, always with a reason, and the original event is
kept whole: null-valued keys stay (failed topics are written with ``keep_nulls``), and a record
that was already decorated (a failed event fed back in) keeps its own ``jobName``, ``failInfo``
and ``metadata.validation_error``/``src`` under ``failInfo.previous``. A record that never
parsed is kept as ``raw`` text, so nothing is lost.
"""

from __future__ import annotations

from typing import Any

FAILED_TAG = "failed"
"""The name of the output every job routes these records to (its failed topic or file)."""


def failed_event(
    job_name: str,
    reason: str,
    event: dict | None = None,
    raw: str | None = None,
    stage: str | None = None,
    src: str | None = None,
) -> dict[str, Any]:
    """Returns the failed-topic record for ``event`` (or the unparsable ``raw`` payload)."""
    out: dict[str, Any] = dict(event) if event is not None else {"raw": raw}
    info: dict[str, Any] = {"error": reason}
    if stage:
        info["stage"] = stage
    previous = _decoration(out)
    if previous:
        info["previous"] = previous
    out["jobName"] = job_name
    out["failInfo"] = info
    if not isinstance(out.get("flags"), dict):
        out.setdefault("flags", {})
    metadata = out.get("metadata")
    if metadata is None:
        metadata = {}
    if isinstance(metadata, dict):
        out["metadata"] = {**metadata, "validation_error": reason, "src": src or job_name}
    return out


def _decoration(event: dict[str, Any]) -> dict[str, Any]:
    """What an earlier failure wrote into ``event`` (kept, never overwritten)."""
    previous = {k: event[k] for k in ("jobName", "failInfo") if k in event}
    metadata = event.get("metadata")
    if isinstance(metadata, dict) and "validation_error" in metadata:
        previous["metadata"] = {k: metadata[k] for k in ("validation_error", "src") if k in metadata}
    if previous and "flags" in event:
        previous["flags"] = event["flags"]
    return previous


def original_event(failed: dict[str, Any]) -> dict[str, Any] | None:
    """The event a failed record was made from, for a replay; ``None`` for an unparsable payload.

    Undoes ``failed_event``: the decoration goes, an earlier one kept under ``failInfo.previous``
    comes back. An empty ``flags`` or ``metadata`` left after that is taken as added by the
    decoration (an original empty one is indistinguishable, and means nothing to any job).
    """
    if "raw" in failed and set(failed) <= {"raw", "jobName", "failInfo", "flags", "metadata"}:
        return None
    event = {k: v for k, v in failed.items() if k not in ("jobName", "failInfo")}
    if event.get("flags") == {}:
        del event["flags"]
    metadata = event.get("metadata")
    if isinstance(metadata, dict):
        rest = {k: v for k, v in metadata.items() if k not in ("validation_error", "src")}
        if rest:
            event["metadata"] = rest
        else:
            del event["metadata"]
    previous = (failed.get("failInfo") or {}).get("previous") or {}
    for key in ("jobName", "failInfo", "flags"):
        if key in previous:
            event[key] = previous[key]
    if "metadata" in previous:
        event["metadata"] = {**event.get("metadata", {}), **previous["metadata"]}
    return event


def failure_reason(failed: dict) -> str:
    """The reason of a record built by ``failed_event`` (for logs and tests)."""
    return str((failed.get("failInfo") or {}).get("error", ""))
