"""merge-user-courses as pure functions: validation, row merges, migration plans, output events.

A learner's two accounts are merged: the course history of ``fromAccountId`` (F) is copied into
``toAccountId`` (T). The rules here are the reference's (spec ``assessment-and-merge.md`` §3.3)
with its weaknesses fixed (§3.8):

- T's activity aggregates are read from T (the reference read F's rows twice), and only the keys
  the merge owns are written, as map-merge updates: other aggregate keys (assessment ``score:*``,
  ``max_score:*``, ``attempts_count:*``), ``agg_details`` and T's other ``agg`` entries survive;
- ``assessment_aggregator`` attempts are merged too (the reference left them behind);
- a merge of an account into itself is refused (the reference doubled every counter);
- nothing here depends on the wall clock or on randomness: the caller passes ``now`` and ids, so
  a re-run computes the same rows (the idempotency guard itself lives in the job's DoFn, see
  ``docs/merge.md``).

Rows are plain dicts ``{column: value}`` as the Cassandra driver returns them (timestamps as
naive UTC ``datetime``). Nothing here touches Beam or a server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from pipelines.domain.errors import InvalidRequest, Skip
from pipelines.domain.failures import failed_event
from pipelines.domain.progress import EnrolmentKey, sync_request

JOB_NAME = "merge-user-courses"
"""The job's name: metric namespace, and ``metadata.src`` of its failed records."""
MERGE_ACTION = "merge-user-courses-and-cert"
REFERENCE_JOB_NAME = "MergeUserCourses"
"""``jobName`` of the reference's failed JSON (§3.6)."""
SKIP_ERROR = "ERR_MERGE_USER_COURSES_SAMZA"
"""``failInfo.error`` the reference builds for an event it skips (§3.6)."""
DEFAULT_DATE_FORMAT = "yyyy-MM-dd HH:mm:ss:SSSZ"

# ------------------------------------------------------------------------------- the request

@dataclass(frozen=True)
class MergeRequest:
    from_user: str
    to_user: str
    action: str | None
    known_action: bool


def _account_id(edata: Mapping[str, Any], name: str) -> str:
    value = edata.get(name)
    if value is None or value == "":
        # Reference: an empty or missing id is a skip (skipped-event-count), not an exception.
        raise Skip(f"edata.{name} is missing or empty")
    if not isinstance(value, str):
        raise InvalidRequest(f"edata.{name} is not a string: {value!r}")
    if not value.strip():
        raise Skip(f"edata.{name} is blank")
    return value


def parse_merge_request(event: Mapping[str, Any], strict_action: bool = False) -> MergeRequest:
    """A ``BE_JOB_REQUEST`` account-merge event -> the two account ids (§3.2).

    ``Skip`` (reference: skipped-event-count) for an empty ``edata`` or a missing/empty id;
    ``InvalidRequest`` (reference: an exception that restarted the job) for a missing
    ``edata``, a non-string id, the same account on both sides, and, only when
    ``strict_action``, an action other than ``merge-user-courses-and-cert``. Not strict by
    default: the reference reads no ``edata.action`` at all, and its own requests carry none
    (``{"edata": {"fromAccountId": ..., "toAccountId": ...}}``), so a strict default would merge
    nothing a reference producer sends.
    """
    edata = event.get("edata")
    if not isinstance(edata, Mapping):
        raise InvalidRequest("edata is missing or not an object")
    if not edata:
        raise Skip("edata is empty")
    from_user = _account_id(edata, "fromAccountId")
    to_user = _account_id(edata, "toAccountId")
    if from_user == to_user:
        raise InvalidRequest(f"fromAccountId and toAccountId are the same account: {from_user}")
    action = edata.get("action")
    known = action == MERGE_ACTION
    if strict_action and not known:
        raise InvalidRequest(f"unknown action {action!r}: expected {MERGE_ACTION}")
    return MergeRequest(from_user, to_user, action if isinstance(action, str) else None, known)


@dataclass(frozen=True)
class MergeWork:
    """A valid request and the event it came from (kept whole for a failed record)."""

    request: MergeRequest
    event: dict


def parse_merge_work(event: dict, strict_action: bool = False) -> list[MergeWork]:
    """The parser ``ValidateEvents`` runs: one ``MergeWork``, or ``Skip`` / ``InvalidRequest``."""
    return [MergeWork(parse_merge_request(event, strict_action), event)]


def as_reference_failure(record: dict[str, Any]) -> dict[str, Any]:
    """A failed record in the reference's shape (§3.6): ``jobName: MergeUserCourses`` and
    ``failInfo.errorCode: DATA_ERROR`` before the shared ``error``/``stage``."""
    out = dict(record)
    out["jobName"] = REFERENCE_JOB_NAME
    out["failInfo"] = {"errorCode": "DATA_ERROR", **(record.get("failInfo") or {})}
    return out


def merge_failure(reason: str, event: dict | None = None, raw: str | None = None,
                  stage: str | None = None) -> dict[str, Any]:
    """The failed-topic record of this job for ``event``: the shared record, reference-shaped."""
    return as_reference_failure(failed_event(JOB_NAME, reason, event, raw=raw, stage=stage))


# ------------------------------------------------------------------- Java SimpleDateFormat parse

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_NUMERIC = set("yMdHkKhmsSDuwWF")
_ZONE = r"(?P<tz>[+-]\d{2}:?\d{2}|[+-]\d{2}|Z|(?:GMT|UTC)(?:[+-]\d{1,2}(?::?\d{2})?)?)"


def _tokens(pattern: str) -> list[tuple[str, str]]:
    """A SimpleDateFormat pattern -> [("field", "yyyy") | ("literal", text)]."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            end = pattern.find("'", i + 1)
            if end == i + 1:  # '' is a quote
                out.append(("literal", "'"))
                i += 2
                continue
            if end < 0:
                raise ValueError(f"unterminated quote in date format {pattern!r}")
            out.append(("literal", pattern[i + 1:end]))
            i = end + 1
        elif ch.isascii() and ch.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == ch:
                j += 1
            out.append(("field", pattern[i:j]))
            i = j
        else:
            out.append(("literal", ch))
            i += 1
    return out


def _is_numeric(token: tuple[str, str]) -> bool:
    kind, text = token
    return kind == "field" and text[0] in _NUMERIC and not (text[0] == "M" and len(text) >= 3)


@lru_cache(maxsize=32)
def _compile(pattern: str) -> re.Pattern[str]:
    tokens = _tokens(pattern)
    parts, seen = [], set()
    for i, (kind, text) in enumerate(tokens):
        if kind == "literal":
            parts.append(re.escape(text))
            continue
        letter = text[0]
        if letter in seen:
            raise ValueError(f"date format {pattern!r} repeats the field {letter!r}")
        seen.add(letter)
        abutting = i + 1 < len(tokens) and _is_numeric(tokens[i + 1])
        if letter == "M" and len(text) >= 3:
            parts.append(r"(?P<Mname>[A-Za-z]+)")
        elif letter in "yMdHkKhmsS":
            # Java's abutting-fields rule: a number followed directly by another number has
            # the pattern's width; otherwise it takes every digit (lenient).
            parts.append(rf"(?P<{letter}>\d{{{len(text)}}})" if abutting else rf"(?P<{letter}>\d+)")
        elif letter == "a":
            parts.append(r"(?P<a>[AaPp][Mm])")
        elif letter == "E":
            parts.append(r"[A-Za-z]+")
        elif letter in "ZXz":
            parts.append(_ZONE)
        else:
            raise ValueError(f"date format {pattern!r}: pattern letter {letter!r} is not supported")
    return re.compile("".join(parts), re.IGNORECASE)


def _zone(text: str | None) -> timezone:
    if not text or text.upper() in ("Z", "GMT", "UTC"):
        return UTC
    body = text[3:] if text[:3].upper() in ("GMT", "UTC") else text
    sign = -1 if body[0] == "-" else 1
    digits = body[1:].replace(":", "")
    hours, minutes = (int(digits[:-2]), int(digits[-2:])) if len(digits) > 2 else (int(digits), 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_java_date(text: str, pattern: str = DEFAULT_DATE_FORMAT) -> datetime | None:
    """``new SimpleDateFormat(pattern).parse(text)`` (lenient), or ``None`` where Java throws.

    As in Java: parsing starts at the beginning and ignores trailing text; numbers take every
    digit unless another number follows directly; out-of-range fields roll over (month 13 is
    January of the next year); ``SSS`` is a count of milliseconds; a missing zone is the JVM's
    (UTC in the reference's containers). Raises ``ValueError`` for a pattern this does not
    support (checked when the job starts).
    """
    m = _compile(pattern).match(text)
    if m is None:
        return None
    g = m.groupdict()
    try:
        if g.get("Mname"):
            name = g["Mname"].lower()
            months = [i for i, full in enumerate(_MONTHS, 1) if full == name or (len(name) >= 3 and full[:3] == name)]
            if not months:
                return None
            month = months[0]
        else:
            month = int(g["M"]) if g.get("M") else 1
        year = int(g["y"]) if g.get("y") else 1970
        day = int(g["d"]) if g.get("d") else 1
        if g.get("H"):
            hour = int(g["H"])
        elif g.get("k"):
            hour = int(g["k"]) % 24
        elif g.get("h") or g.get("K"):
            hour = int(g.get("h") or g["K"]) % 12
            if (g.get("a") or "").lower() == "pm":
                hour += 12
        else:
            hour = 0
        y, mo = divmod(year * 12 + month - 1, 12)
        base = datetime(y, mo + 1, 1, tzinfo=_zone(g.get("tz")))
        return base + timedelta(days=day - 1, hours=hour, minutes=int(g.get("m") or 0),
                                seconds=int(g.get("s") or 0), milliseconds=int(g.get("S") or 0))
    except (ValueError, OverflowError):
        return None


def check_date_format(pattern: str) -> None:
    """Raises ``ValueError`` when ``pattern`` is not a supported SimpleDateFormat pattern."""
    _compile(pattern)


# ---------------------------------------------------------------- step 1: content consumption

CONSUMPTION_KEY = ("userid", "courseid", "batchid", "contentid")
MAX_INT_COLUMNS = ("status", "progress")
SUM_INT_COLUMNS = ("viewcount", "completedcount")
LATER_TIMESTAMP_COLUMNS = ("datetime", "last_access_time", "last_completed_time", "last_updated_time")
LATER_TEXT_DATE_COLUMNS = ("lastaccesstime", "lastcompletedtime", "lastupdatedtime")
MERGED_COLUMNS = MAX_INT_COLUMNS + SUM_INT_COLUMNS + LATER_TIMESTAMP_COLUMNS + LATER_TEXT_DATE_COLUMNS


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _utc(d: datetime) -> datetime:
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d


def _merge_value(column: str, f: Any, t: Any, date_format: str) -> Any:
    """One column of the §3.3 table. Null side -> the other; wrong type -> T; ties -> T."""
    if f is None:
        return t
    if t is None:
        return f
    if column in MAX_INT_COLUMNS or column in SUM_INT_COLUMNS:
        if not (_is_int(f) and _is_int(t)):
            return t
        return f + t if column in SUM_INT_COLUMNS else (f if f > t else t)
    if column in LATER_TIMESTAMP_COLUMNS:
        if not (isinstance(f, datetime) and isinstance(t, datetime)):
            return t
        return f if _utc(f) > _utc(t) else t
    if column in LATER_TEXT_DATE_COLUMNS:
        if not (isinstance(f, str) and isinstance(t, str)):
            return t
        fd = parse_java_date(f, date_format)
        if fd is None:
            return t
        td = parse_java_date(t, date_format)
        if td is None:
            return f
        return f if fd > td else t
    return t


def merge_consumption_row(from_row: Mapping[str, Any], to_row: Mapping[str, Any],
                          date_format: str = DEFAULT_DATE_FORMAT) -> dict[str, Any]:
    """T's row with F's row merged in (the §3.3 step 1 table): status and progress max,
    viewcount and completedcount summed, the dates later of the two; every other column T's."""
    out = dict(to_row)
    for column in MERGED_COLUMNS:
        out[column] = _merge_value(column, from_row.get(column), to_row.get(column), date_format)
    return out


def _match_key(row: Mapping[str, Any]) -> tuple[str, str, str]:
    return tuple(str(row.get(c) or "").lower() for c in ("contentid", "batchid", "courseid"))  # type: ignore[return-value]


def _exact_key(row: Mapping[str, Any]) -> tuple:
    return tuple(row.get(c) for c in CONSUMPTION_KEY)


@dataclass
class ConsumptionPlan:
    """The consumption writes of one merge: each a dict of exactly the columns to write."""

    writes: list[dict[str, Any]] = field(default_factory=list)
    merged: int = 0
    copied: int = 0
    case_mismatches: list[tuple[tuple, tuple]] = field(default_factory=list)  # (F key, T key) differing in case


def plan_consumption_merge(from_rows: Iterable[Mapping[str, Any]], to_rows: Iterable[Mapping[str, Any]],
                           to_user: str, date_format: str = DEFAULT_DATE_FORMAT) -> ConsumptionPlan:
    """Step 1: every F row either merged into T's matching row or copied to T (§3.3).

    ``to_rows`` must be T's rows *before* the merge (the job keeps them in its journal): then a
    re-run plans exactly the same writes, so the summed counters are not added twice.

    As in the reference: rows match on (contentid, batchid, courseid) case-insensitively (the
    last matching T row wins; pairs that differ in case are reported so the job can log them);
    several F rows matching one T row all merge into it; a copy keeps every column of F's row.
    A matched row writes only its key and the merged columns, never T's other columns.
    """
    plan = ConsumptionPlan()
    targets = [dict(r) for r in to_rows]
    by_key: dict[tuple, dict[str, Any]] = {}
    for t in targets:
        by_key[_match_key(t)] = t  # the last match wins, like the reference's scan
    out: dict[tuple, dict[str, Any]] = {}
    for f in from_rows:
        target = by_key.get(_match_key(f))
        if target is None:
            copy = {**f, "userid": to_user}
            out[_exact_key(copy)] = copy
            plan.copied += 1
            continue
        merged = merge_consumption_row(f, target, date_format)
        target.update(merged)
        fk, tk = _exact_key(f)[1:], _exact_key(target)[1:]
        if fk != tk:
            plan.case_mismatches.append((fk, tk))
        out[_exact_key(target)] = {c: target.get(c) for c in (*CONSUMPTION_KEY, *MERGED_COLUMNS)}
        plan.merged += 1
    plan.writes = list(out.values())
    return plan


# ---------------------------------------------------------------- step 2: activity aggregates

COMPLETED_COUNT = "completedCount"


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def merge_completed_count(from_agg: Mapping[str, Any] | None, to_agg: Mapping[str, Any] | None) -> float:
    """``max(F.completedCount, T.completedCount)``, a missing value counting as 0 (§3.3 step 2),
    where T's value is really T's (the reference read F's row twice)."""
    return max(_num((from_agg or {}).get(COMPLETED_COUNT)), _num((to_agg or {}).get(COMPLETED_COUNT)))


def merge_agg_counts(from_agg: Mapping[str, Any] | None, to_agg: Mapping[str, Any] | None) -> dict[str, int]:
    """The legacy ``agg`` (map<text,int>) entries to write for T: for each of F's keys the larger
    value, only where it is not already T's. The reference replaced T's map with F's."""
    to_agg = to_agg or {}
    out = {}
    for k, v in (from_agg or {}).items():
        if not _is_int(v):
            continue
        t = to_agg.get(k)
        if not _is_int(t) or v > t:
            out[k] = v
    return out


@dataclass(frozen=True)
class AggregateUpdate:
    """One map-merge update of T's ``user_activity_agg`` row (activity type ``Course``)."""

    activity_id: str
    context_id: str
    completed_count: float
    agg: dict[str, int]


def plan_aggregate_merge(from_rows: Iterable[Mapping[str, Any]],
                         to_rows: Iterable[Mapping[str, Any]]) -> list[AggregateUpdate]:
    """Step 2: one update per F row (F's rows for the courses F is enrolled in), for T's row at
    the same activity and context. ``aggregates`` gets only ``completedCount``, ``agg`` only F's
    keys; nothing else of T's row is touched."""
    to_by_key = {(r.get("activity_id"), r.get("context_id")): r for r in to_rows}
    out = []
    for f in from_rows:
        t = to_by_key.get((f.get("activity_id"), f.get("context_id")), {})
        out.append(AggregateUpdate(f["activity_id"], f["context_id"],
                                   merge_completed_count(f.get("aggregates"), t.get("aggregates")),
                                   merge_agg_counts(f.get("agg"), t.get("agg"))))
    return out


# ------------------------------------------------------------------------ step 3: enrolments

def plan_enrolment_migration(from_enrols: Iterable[Mapping[str, Any]], to_enrols: Iterable[Mapping[str, Any]],
                             to_user: str) -> list[dict[str, Any]]:
    """Step 3: F's enrolments in batches T is not enrolled in, copied whole to T (§3.3).

    Batches are compared by batch id only, as in the reference; batches both accounts are in are
    left alone. Every column is copied, ``issued_certificates`` and ``certificates`` included
    (kept for compatibility, flagged for product review in docs/merge.md).
    """
    to_batches = {e.get("batchid") for e in to_enrols}
    by_batch: dict[Any, Mapping[str, Any]] = {}
    for e in from_enrols:
        by_batch[e.get("batchid")] = e  # the reference's batchId -> enrolment map: the last wins
    return [{**e, "userid": to_user} for b, e in by_batch.items() if b not in to_batches]


# --------------------------------------------------------------- assessment_aggregator attempts

ASSESSMENT_KEY = ("user_id", "course_id", "batch_id", "content_id", "attempt_id")


def _attempt_key(row: Mapping[str, Any]) -> tuple:
    return tuple(row.get(c) for c in ASSESSMENT_KEY[1:])


def _attempted(row: Mapping[str, Any]) -> datetime | None:
    v = row.get("last_attempted_on")
    return _utc(v) if isinstance(v, datetime) else None


@dataclass
class AssessmentPlan:
    """F's attempts to write into T's partition: ``copies`` T lacks (written without their null
    columns), ``replacements`` of older attempts T has (written whole, nulls included, so the
    stored attempt is exactly F's newer one, as the assessment job's full-row insert does)."""

    copies: list[dict[str, Any]] = field(default_factory=list)
    replacements: list[dict[str, Any]] = field(default_factory=list)


def plan_assessment_merge(from_rows: Iterable[Mapping[str, Any]], to_rows: Iterable[Mapping[str, Any]],
                          to_user: str) -> AssessmentPlan:
    """F's attempts for T (the reference did not merge them at all).

    An attempt T lacks is copied whole. An attempt both have (same batch, content and attempt
    id) follows the assessment job's stale-attempt rule: F's copy replaces T's only when its
    ``last_attempted_on`` is strictly later, keeping T's ``created_on``. So the latest attempt
    wins, and a re-run writes nothing new.
    """
    existing = {_attempt_key(r): r for r in to_rows}
    plan = AssessmentPlan()
    for f in from_rows:
        t = existing.get(_attempt_key(f))
        if t is None:
            plan.copies.append({**f, "user_id": to_user})
            continue
        ft, tt = _attempted(f), _attempted(t)
        if ft is not None and (tt is None or ft > tt):
            created = t.get("created_on") or f.get("created_on")
            plan.replacements.append({**f, "user_id": to_user, "created_on": created})
    return plan


def assessment_contexts(from_rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(course, batch, a content id) for every course batch F has attempts in, sorted: the
    batches whose score aggregates T needs recomputed after the merge."""
    first: dict[tuple[str, str], str] = {}
    for r in from_rows:
        key = (r.get("course_id"), r.get("batch_id"))
        cid = r.get("content_id")
        if all(isinstance(x, str) for x in (*key, cid)) and (key not in first or cid < first[key]):
            first[key] = cid
    return sorted((c, b, cid) for (c, b), cid in first.items())


# ------------------------------------------------------------------------------------ outputs

def batch_enrolment_sync_event(batch_id: str, user_id: str, course_id: str, now_ms: int, uid: str) -> dict[str, Any]:
    """The reference's ``batch-enrolment-sync`` request (§3.5), field by field."""
    return {
        "actor": {"id": "Course Batch Updater", "type": "System"},
        "eid": "BE_JOB_REQUEST",
        "edata": {"action": "batch-enrolment-sync", "iteration": 1, "batchId": batch_id, "userId": user_id,
                  "courseId": course_id, "reset": ["completionPercentage", "status", "progress"]},
        "ets": now_ms,
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
        "mid": f"LP.{now_ms}.{uid}",
        "object": {"id": f"{batch_id}_{user_id}", "type": "CourseBatchEnrolment"},
    }


def enrolment_sync_request(batch_id: str, user_id: str, course_id: str) -> dict[str, Any]:
    """The ``user-enrolment-sync`` request enrolment-reconciliation consumes (shared builder)."""
    return sync_request(EnrolmentKey(user_id, course_id, batch_id))


def assessment_recompute_event(course_id: str, batch_id: str, user_id: str, content_id: str,
                               now_ms: int) -> dict[str, Any]:
    """A batch-assess event without ``events``: assessment-aggregator's recompute path (spec
    §2.5 B), which rebuilds T's score aggregates from all T's attempts in the batch and asks for
    the certificate criteria to be re-evaluated. ``contentId`` passes its content check."""
    return {"assessmentTs": now_ms, "batchId": batch_id, "courseId": course_id, "userId": user_id,
            "contentId": content_id, "events": []}


# ----------------------------------------------------------------- idempotency journal records

def writable(row: Mapping[str, Any]) -> dict[str, Any]:
    """The columns worth binding: no nulls and no empty collections (both would write tombstones)."""
    return {k: v for k, v in row.items()
            if v is not None and not (isinstance(v, list | set | tuple | dict | Mapping) and len(v) == 0)}


def _encode(v: Any) -> Any:
    if isinstance(v, datetime):
        return {"$ts": int(_utc(v).timestamp() * 1000)}
    if isinstance(v, Mapping):
        return {"$map": [[_encode(k), _encode(x)] for k, x in v.items()]}
    if isinstance(v, list | tuple | set):
        return [_encode(x) for x in v]
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, dict) and "$ts" in v:
        return datetime.fromtimestamp(v["$ts"] / 1000, tz=UTC).replace(tzinfo=None)
    if isinstance(v, dict) and "$map" in v:
        return {_decode(k): _decode(x) for k, x in v["$map"]}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


@dataclass(frozen=True)
class Journal:
    """What the first attempt of a merge saw: T's consumption rows before any write, and the
    time every timestamp the merge writes is taken from."""

    started_ms: int
    to_consumption: list[dict[str, Any]]

    def dumps(self) -> str:
        return json.dumps({"started_ms": self.started_ms,
                           "to_consumption": [{k: _encode(v) for k, v in r.items()} for r in self.to_consumption]},
                          separators=(",", ":"))

    @staticmethod
    def loads(text: str | bytes) -> Journal:
        d = json.loads(text)
        return Journal(int(d["started_ms"]), [{k: _decode(v) for k, v in r.items()} for r in d["to_consumption"]])


def marker_keys(from_user: str, to_user: str, prefix: str = "merge-user-courses") -> tuple[str, str]:
    """(journal key, done-marker key) of the merge F -> T in the Redis marker store."""
    return f"{prefix}:journal:{from_user}:{to_user}", f"{prefix}:done:{from_user}:{to_user}"


def done_record(mid: str | None, completed_ms: int, contexts: Iterable[tuple[str, str, str]]) -> str:
    return json.dumps({"mid": mid, "completed_ms": completed_ms, "assessment_contexts": [list(c) for c in contexts]},
                      separators=(",", ":"))


def done_contexts(text: str | bytes) -> list[tuple[str, str, str]]:
    return [tuple(c) for c in json.loads(text).get("assessment_contexts", [])]  # type: ignore[misc]

