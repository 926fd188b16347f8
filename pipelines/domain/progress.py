"""Course progress as pure functions: consumption merge, course/unit aggregates, enrolment transitions.

These are the rules of the reference's activity-aggregate-updater and enrolment-reconciliation,
with their bugs fixed:

- every completed content of an enrolment in a batch counts (the reference kept only the first
  event's contents per enrolment and window);
- consumption ``status`` is merged as a maximum and written back, so progress can always be
  recomputed from the table (the reference wrote only view/completed counters, leaving status to
  the LMS API, so a recompute could not see completions this job had counted);
- optional nodes are excluded from course and unit totals in both jobs (reconciliation ignored them);
- a course whose leaf nodes are missing is a failed event with a reason (or a counted skip when the
  collection is retired), never an exception that restarts the job forever;
- completion is a transition: only an enrolment not yet completed produces the completion write,
  the audit event and the certificate request, so replays and recomputes issue nothing twice.

- counters are replay-safe without the dedup store: a completion is counted once per dedup
  checksum (the reference's dedup key) and expiry, recorded in an applied-completions table
  written atomically with the counters (``fresh_completions``); see docs/progress.md;
- the completion's certificate request and audit event have deterministic ids, so the re-emission
  after a crash (``completing`` events found applied) is recognisable downstream.

Nothing here touches Beam or a server; ``pipelines/transforms/compute_progress.py`` fetches,
calls and writes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pipelines.domain.cert_request import issue_certificate_request
from pipelines.domain.errors import InvalidRequest, Skip

BATCH_ENROLMENT_UPDATE = "batch-enrolment-update"
USER_ENROLMENT_SYNC = "user-enrolment-sync"
COMPLETED = 2
IN_PROGRESS = 1
MAX_ID_LENGTH = 1024
"""Longest user/course/batch/content id accepted. Real ids are tens of characters; a huge one
would fail every batched store call it joins, so it is refused alone at validation."""
EVENT_IDS = uuid.UUID("6f1d8a52-3c1e-4d0a-9a57-0e3f7c2b9d41")
"""Namespace of lern-beam's deterministic event ids (uuid5)."""


@dataclass(frozen=True)
class EnrolmentKey:
    user_id: str
    course_id: str
    batch_id: str

    @property
    def context_id(self) -> str:
        return f"cb:{self.batch_id}"


@dataclass(frozen=True)
class ContentStatus:
    """One content of one enrolment, as the reference models it."""

    content_id: str
    status: int = 0
    completed_count: int = 0
    view_count: int = 1
    from_input: bool = True
    events_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContentCompletion:
    """One completed content reported by a ``batch-enrolment-update`` event (after the split)."""

    key: EnrolmentKey
    content_id: str
    status: int = COMPLETED

    @property
    def checksum(self) -> str:
        return dedup_checksum(self.key, self.content_id, self.status)


@dataclass(frozen=True)
class ProgressResult:
    """What one enrolment's recompute decided; the DoFn turns it into writes and events."""

    key: EnrolmentKey
    contents: dict[str, ContentStatus]
    progress: int
    completed: bool
    aggregates: list[tuple[str, int]] = field(default_factory=list)  # (activity_id, completedCount)


@dataclass(frozen=True)
class Work:
    """One unit of progress work. ``completions`` is empty for a pure recompute.

    ``source`` is the original event (kept whole for the failed output), or ``None`` for work
    read from Cassandra by a backfill.
    """

    key: EnrolmentKey
    completions: tuple[ContentCompletion, ...] = ()
    source: dict | None = None

    @property
    def checksum(self) -> str | None:
        return self.completions[0].checksum if self.completions else None


def dedup_checksum(key: EnrolmentKey, content_id: str, status: int) -> str:
    """The reference's dedup key: MD5 of ``course|batch|user|content|status``, upper-case hex.

    Same key and Redis db as the reference, so a switch-over honours its dedup store.
    """
    raw = "|".join([key.course_id, key.batch_id, key.user_id, content_id, str(status)])
    return hashlib.md5(raw.encode()).hexdigest().upper()


def _require_str(edata: Mapping[str, Any], name: str) -> str:
    value = edata.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"edata.{name} is missing or not a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(f"edata.{name} is longer than {MAX_ID_LENGTH} characters ({len(value)})")
    return value


def _edata(event: Mapping[str, Any]) -> Mapping[str, Any]:
    edata = event.get("edata")
    if not isinstance(edata, Mapping):
        raise InvalidRequest("edata is missing or not an object")
    return edata


def enrolment_key(edata: Mapping[str, Any]) -> EnrolmentKey:
    return EnrolmentKey(_require_str(edata, "userId"), _require_str(edata, "courseId"), _require_str(edata, "batchId"))


def _status(value: Any) -> int | None:
    """An integer status; JSON ``2`` and ``2.0`` count (the reference compares numerically), text does not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def split_update_event(event: Mapping[str, Any]) -> tuple[list[ContentCompletion], int]:
    """A ``batch-enrolment-update`` event -> its distinct completed contents, plus ignored entries.

    Like the reference, only contents with status 2 are processed (the LMS API itself records
    in-progress status); an event without any is a skip. Entries without a content id or with a
    non-numeric status are ignored and counted (second value).
    """
    edata = _edata(event)
    action = edata.get("action")
    if action != BATCH_ENROLMENT_UPDATE:
        raise Skip(f"action {action!r} is not {BATCH_ENROLMENT_UPDATE}")
    key = enrolment_key(edata)
    contents = edata.get("contents", [])
    if not isinstance(contents, list):
        raise InvalidRequest("edata.contents is not a list")
    seen: dict[str, ContentCompletion] = {}
    ignored = 0
    for c in contents:
        cid = c.get("contentId") if isinstance(c, Mapping) else None
        status = _status(c.get("status")) if isinstance(c, Mapping) else None
        if not isinstance(cid, str) or not cid.strip() or len(cid) > MAX_ID_LENGTH or status is None:
            ignored += 1
            continue
        if status == COMPLETED:
            seen.setdefault(cid, ContentCompletion(key, cid))
    if not seen:
        raise Skip("no completed content in the event")
    return list(seen.values()), ignored


def parse_sync_event(event: Mapping[str, Any]) -> EnrolmentKey:
    """A ``user-enrolment-sync`` request -> the enrolment to recompute (reference: EnrolmentReconciliation)."""
    edata = _edata(event)
    action = edata.get("action")
    if not isinstance(action, str) or action.lower() != USER_ENROLMENT_SYNC:
        raise Skip(f"action {action!r} is not {USER_ENROLMENT_SYNC}")
    return enrolment_key(edata)


def update_work(event: dict) -> tuple[list[Work], int]:
    """activity: a ``batch-enrolment-update`` event -> one ``Work`` per completed content, plus ignored entries."""
    completions, ignored = split_update_event(event)
    return [Work(c.key, (c,), event) for c in completions], ignored


def sync_work(event: dict) -> list[Work]:
    """enrolment-reconciliation: a ``user-enrolment-sync`` request -> the enrolment to recompute."""
    return [Work(parse_sync_event(event), (), event)]


Applied = set[tuple[str, str]]
"""``(content id, dedup checksum)`` pairs already counted in the stored consumption rows."""


def fresh_completions(works: Iterable[Work], applied: Applied) -> list[tuple[ContentCompletion, str]]:
    """The completions of ``works`` not counted yet, each ``(completion, checksum)`` once.

    The key is the reference's dedup checksum, so this is its dedup store made durable and
    atomic with the counters: a replay, or another event reporting the same completion, adds
    nothing while the record lives (``dedup-redis.database.expiry``), with or without Redis.
    """
    out, seen = [], set(applied)
    for w in works:
        for c in w.completions:
            if (c.content_id, c.checksum) not in seen:
                seen.add((c.content_id, c.checksum))
                out.append((c, c.checksum))
    return out


def replayed_completing_event(works: Iterable[Work], completing: Applied) -> bool:
    """True when one of ``works`` reports a completion that once completed the enrolment and was not confirmed."""
    return any((c.content_id, c.checksum) in completing for w in works for c in w.completions)


def input_statuses(completions: Iterable[ContentCompletion]) -> dict[str, ContentStatus]:
    """Input contents of one enrolment: max status, views and completions summed per content."""
    out: dict[str, ContentStatus] = {}
    for c in completions:
        completed = 1 if c.status == COMPLETED else 0
        prev = out.get(c.content_id)
        if prev is None:
            out[c.content_id] = ContentStatus(c.content_id, c.status, completed, 1)
        else:
            out[c.content_id] = replace(prev, status=max(prev.status, c.status),
                                        completed_count=prev.completed_count + completed,
                                        view_count=prev.view_count + 1)
    return out


def db_statuses(rows: Iterable[Mapping[str, Any]]) -> dict[str, ContentStatus]:
    """``user_content_consumption`` rows -> statuses; nulls read as the reference reads them."""
    out = {}
    for r in rows:
        cid = r["contentid"]
        status = r.get("status")
        out[cid] = ContentStatus(
            cid, IN_PROGRESS if status is None else int(status), int(r.get("completedcount") or 0),
            int(r.get("viewcount") or 0), from_input=False)
    return out


def merge_consumption(inputs: Mapping[str, ContentStatus], db: Mapping[str, ContentStatus]) -> dict[str, ContentStatus]:
    """Input merged over the stored rows: status never goes down, counters add, audit actions decided.

    ``start`` is due when the stored row had no view, ``complete`` when it had no completion and
    the input completes it (reference ``getEventActions``). Stored contents not in the input stay.
    """
    merged = dict(db)
    for cid, inp in inputs.items():
        old = db.get(cid, ContentStatus(cid, 0, 0, 0, from_input=False))
        actions = []
        if old.view_count == 0:
            actions.append("start")
        if old.completed_count == 0 and inp.completed_count > 0:
            actions.append("complete")
        merged[cid] = ContentStatus(cid, max(inp.status, old.status), old.completed_count + inp.completed_count,
                                    old.view_count + inp.view_count, True, tuple(actions))
    return merged


def completed_ids(contents: Mapping[str, ContentStatus]) -> set[str]:
    return {cid for cid, c in contents.items() if c.status == COMPLETED}


def required_nodes(leaf_nodes: Iterable[str], optional_nodes: Iterable[str]) -> set[str]:
    return set(leaf_nodes) - set(optional_nodes)


@dataclass(frozen=True)
class RelationCache:
    """The relation-cache sets one enrolment needs, read from Redis db 10 by the caller."""

    leaf_nodes: Mapping[str, set[str]]  # collection/unit id -> leaf nodes
    optional_nodes: Mapping[str, set[str]]  # collection/unit id -> optional nodes
    ancestors: Mapping[str, set[str]]  # content id -> ancestor ids


def compute_progress(key: EnrolmentKey, contents: Mapping[str, ContentStatus], cache: RelationCache,
                     module_aggs: bool = True) -> ProgressResult:
    """Course progress (completed required leaf nodes) and the unit aggregates, from statuses only.

    The caller has checked that the course has leaf nodes. Units are the ancestors of the
    enrolment's contents other than the course itself; each unit's count uses its own required
    leaf nodes. The reference writes unit rows with activity type ``Course`` too; kept.
    """
    done = completed_ids(contents)
    course_required = required_nodes(cache.leaf_nodes.get(key.course_id, ()),
                                     cache.optional_nodes.get(key.course_id, ()))
    progress = len(course_required & done)
    completed = bool(course_required) and progress >= len(course_required)
    aggregates = [(key.course_id, progress)]
    if module_aggs:
        for unit in sorted(units_to_read(key, contents, cache.ancestors)):
            unit_required = required_nodes(cache.leaf_nodes.get(unit, ()), cache.optional_nodes.get(unit, ()))
            aggregates.append((unit, len(unit_required & done)))
    return ProgressResult(key, dict(contents), progress, completed, aggregates)


def units_to_read(key: EnrolmentKey, contents: Iterable[str], ancestors: Mapping[str, set[str]]) -> set[str]:
    return {a for cid in contents for a in ancestors.get(cid, ()) if a != key.course_id}


def changed_aggregates(result: ProgressResult, changed_contents: Iterable[str] | None,
                       ancestors: Mapping[str, set[str]]) -> list[tuple[str, int]]:
    """The aggregate rows a write must refresh: the course, and the units above a changed content.

    A unit's count depends only on the contents under it, so units with no new input cannot have
    changed (about half the statements of the activity job, measured). ``None`` means a recompute
    from stored rows, where every aggregate may be stale: all are written.
    """
    if changed_contents is None:
        return list(result.aggregates)
    units = units_to_read(result.key, changed_contents, ancestors)
    return [(aid, n) for aid, n in result.aggregates if aid == result.key.course_id or aid in units]




def enrolment_action(result: ProgressResult, enrolment_status: int | None, exists: bool,
                     filter_processed: bool = True) -> str | None:
    """``"complete"``, ``"update"`` or ``None`` (leave the enrolment alone).

    Reference rule (``activity.filter.processed.enrolments``, default true): only an existing
    enrolment that is not completed is written. A completed one is never downgraded and never
    completed again, so completion, its audit event and its certificate request happen once.
    """
    if filter_processed and (not exists or enrolment_status == COMPLETED):
        return None
    return "complete" if result.completed else "update"


def content_status_map(contents: Mapping[str, ContentStatus]) -> dict[str, int]:
    return {cid: c.status for cid, c in contents.items()}


# ------------------------------------------------------------------------------------- events

NewId = Callable[[], str]


def completion_ids(key: EnrolmentKey) -> NewId:
    """Deterministic ids for an enrolment's completion events (certificate request, audit event).

    The same enrolment always gets the same sequence, so a re-emission after a crash carries the
    same ``mid`` as the original and consumers can tell the copy.
    """
    seed = uuid.uuid5(EVENT_IDS, f"enrol-complete|{key.user_id}|{key.course_id}|{key.batch_id}")
    n = iter(range(1 << 30))
    return lambda: str(uuid.uuid5(seed, str(next(n))))


def _uuid() -> str:
    return str(uuid.uuid4())


def _audit(actor_id: str, actor_type: str, props: list[str], etype: str, cdata: list[dict[str, str]],
           obj_id: str, obj_type: str, rollup: dict[str, str], now_ms: int, new_id: NewId) -> dict[str, Any]:
    """The reference's ``TelemetryEvent`` (AUDIT, ver 3.0) as Gson serialises it."""
    return {
        "actor": {"id": actor_id, "type": actor_type},
        "eid": "AUDIT",
        "edata": {"props": props, "type": etype},
        "ver": "3.0",
        "syncts": now_ms,
        "ets": now_ms,
        "context": {
            "channel": "in.sunbird",
            "env": "Course",
            "sid": new_id(),
            "did": new_id(),
            "pdata": {"ver": "3.0", "id": "org.sunbird.learning.platform", "pid": "course-progress-updater"},
            "cdata": cdata,
        },
        "mid": f"LP.AUDIT.{new_id()}",
        "object": {"id": obj_id, "type": obj_type, "rollup": rollup},
        "tags": [],
    }


def content_audit_events(key: EnrolmentKey, contents: Mapping[str, ContentStatus], now_ms: int,
                         new_id: NewId = _uuid) -> list[dict[str, Any]]:
    """``start``/``complete`` AUDIT events for contents whose first view/completion this was."""
    out = []
    for cid in sorted(contents):
        for action in contents[cid].events_for:
            props = ["viewcount", "completedcount"] if action == "complete" else ["viewcount"]
            out.append(_audit(key.user_id, "User", props, action, [{"type": "CourseBatch", "id": key.batch_id}],
                              cid, "Content", {"l1": key.course_id}, now_ms, new_id))
    return out


def enrol_complete_audit_event(key: EnrolmentKey, now_ms: int, new_id: NewId = _uuid) -> dict[str, Any]:
    return _audit(key.user_id, "User", ["status", "completedon"], "enrol-complete",
                  [{"type": "CourseBatch", "id": key.batch_id}, {"type": "Course", "id": key.course_id}],
                  key.user_id, "User", {"l1": key.course_id}, now_ms, new_id)


def sync_request(key: EnrolmentKey) -> dict[str, Any]:
    """A ``user-enrolment-sync`` request for one enrolment (what enrolment-reconciliation consumes)."""
    return {"eid": "BE_JOB_REQUEST", "edata": {"action": USER_ENROLMENT_SYNC, "userId": key.user_id,
                                               "courseId": key.course_id, "batchId": key.batch_id}}


def cert_issue_event(key: EnrolmentKey, now_ms: int, new_id: NewId = _uuid) -> dict[str, Any]:
    """The issue-certificate request for a completed enrolment."""
    return issue_certificate_request(key.user_id, key.course_id, key.batch_id, now_ms, new_id())
