"""Assessment scores as pure functions: attempt validation, unique questions, totals, best scores.

The rules of the reference's assessment-aggregator (spec ``assessment-and-merge.md`` §2), with its
weaknesses fixed (§2.11, §4):

- an event that cannot be processed raises :class:`InvalidAssessment` with a reason; nothing here
  throws anything else on bad input (the reference sent NPEs and cast errors to the failed topic
  without a reason, and crashed on a recompute event without ``userId``/``batchId``);
- timestamps accept any integral number or integral numeric string (the reference cast to Long, so
  a small JSON integer failed);
- unique questions keep the learner's last answer per question id and come out in a deterministic
  order (ascending answer time, then input position), and totals are summed in that order;
- ``grand_total`` is Java ``DecimalFormat("0.0#")`` and ``agg_details`` uses Java
  ``Double.toString`` and the Gson/``Locale.US`` medium date in an explicit zone, so nothing
  depends on the machine's locale, JDK or time zone;
- ``latestAttemptId`` is computed from the stored timestamps (millisecond precision), not by
  parsing the formatted date strings back;
- the certificate request is built as data, so ids with quotes cannot break its JSON.

Nothing here touches Beam or a server; ``pipelines.transforms.scores`` fetches, calls
and writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

from pipelines.domain.cert_request import issue_certificate_request
from pipelines.domain.errors import InvalidRequest
from pipelines.domain.javafmt import drop_nulls, gson_string, java_double_to_string

JOB_NAME = "AssessmentAggregatorJob"
"""The reference's job name: metric namespace of the aggregator steps and failed records' ``jobName``."""
SCORE_NAMESPACE = f"{JOB_NAME}.score"
"""Metric namespace of the score aggregation step (the reference's UserScoreAggregateFunction)."""
SRC = "AssessmentAggregator"
"""``metadata.src`` of the reference's failed events."""
DEFAULT_AGG_TYPE = "attempt_metrics"
INT64 = (-(1 << 63), (1 << 63) - 1)


class InvalidAssessment(InvalidRequest):
    """The event cannot be processed; the message is the reason put on the failed topic."""


# ------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class Question:
    """One answered question of an attempt: an ASSESS event's ``ets`` and ``edata``, validated."""

    id: str | None
    ets: int
    max_score: float = 0.0
    score: float = 0.0
    type: str | None = None
    title: str | None = None
    description: str | None = None
    duration: float = 0.0
    resvalues: tuple[dict[str, str], ...] = ()
    params: tuple[dict[str, str], ...] = ()
    position: int = 0  # index in the event's ``events`` list


@dataclass(frozen=True)
class Attempt:
    """A validated batch-assess event. No questions means the *recompute* path (§2.5 B)."""

    user_id: str
    course_id: str
    batch_id: str
    content_id: str
    attempt_id: str | None = None
    assessment_ts: int | None = None
    questions: tuple[Question, ...] = ()
    source: dict | None = field(default=None, compare=False)

    @property
    def recompute(self) -> bool:
        return not self.questions

    @property
    def key(self) -> tuple[str, str, str]:
        """The (user, course, batch) key the two Cassandra steps are sequential on."""
        return self.user_id, self.course_id, self.batch_id

    @property
    def pk(self) -> tuple[str, str, str, str, str | None]:
        """The primary key of the attempt's ``assessment_aggregator`` row."""
        return self.user_id, self.course_id, self.batch_id, self.content_id, self.attempt_id


@dataclass(frozen=True)
class StoredAttempt:
    """The stale-guard columns of an existing ``assessment_aggregator`` row (epoch ms)."""

    last_attempted_on: int | None
    created_on: int | None


@dataclass(frozen=True)
class ScoreMetrics:
    total_score: float
    total_max_score: float
    grand_total: str


@dataclass(frozen=True)
class ScoreUpdate:
    """What §2.6 writes to ``user_activity_agg`` and puts in the certificate request."""

    aggregates: dict[str, float]
    agg_details: list[str]
    latest_attempt_id: str


# ----------------------------------------------------------------------------- value rules


def integral(value: Any) -> int | None:
    """An integral JSON number or integral numeric string as ``int`` (``5``, ``5.0``, ``"5"``,
    ``" 5.0 "``); ``None`` for anything else (booleans, fractions, text, non-finite numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            return None
        if d.is_finite() and d == d.to_integral_value():
            return int(d)
    return None


def _timestamp(value: Any, what: str) -> int:
    ts = integral(value)
    if ts is None:
        raise InvalidAssessment(f"{what} must be an integral epoch time in ms, got {value!r}")
    if not INT64[0] <= ts <= INT64[1]:
        raise InvalidAssessment(f"{what} is out of range: {value!r}")
    return ts


def _number(value: Any, what: str) -> float:
    """Gson's rules for a ``double`` field: missing/null is 0.0, numbers and numeric strings are
    read, anything else fails the event (non-finite values too: Cassandra and JSON consumers
    would choke on them)."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidAssessment(f"{what} must be a number, got {value!r}")
    try:
        out = float(value.strip()) if isinstance(value, str) else float(value)
    except (ValueError, OverflowError):
        raise InvalidAssessment(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InvalidAssessment(f"{what} must be a finite number, got {value!r}")
    return out


def _text(value: Any, what: str) -> str | None:
    """Gson's rules for a ``String`` field: scalars become their JSON text, objects fail."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double_to_string(value)
    raise InvalidAssessment(f"{what} must be a string, got {type(value).__name__}")


def _required_str(event: Mapping[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidAssessment(f"{name} is missing or not a non-empty string")
    return value


def compact_json(value: Any) -> str:
    """A non-string answer value as compact JSON (null members of nested objects dropped, as Gson
    does). Gson's number-as-double (``1`` -> ``1.0``) and HTML escaping are not reproduced: the
    value keeps the number text it arrived with."""
    return json.dumps(drop_nulls(value), separators=(",", ":"), ensure_ascii=False)


def answer_maps(value: Any, what: str) -> tuple[dict[str, str], ...]:
    """``resvalues``/``params``: a list of objects -> ``list<frozen<map<text,text>>>`` values.

    Strings are kept byte-exact, other values become compact JSON; null values are dropped
    (a Cassandra collection cannot hold null; the reference failed on them).
    """
    if not isinstance(value, list):
        raise InvalidAssessment(f"{what} must be a list, got {type(value).__name__ if value is not None else 'null'}")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, Mapping):
            raise InvalidAssessment(f"{what}[{i}] must be an object")
        out.append({str(k): (v if isinstance(v, str) else compact_json(v)) for k, v in m.items() if v is not None})
    return tuple(out)


# ------------------------------------------------------------------------------ validation


def parse_question(event: Any, position: int) -> Question:
    """One ASSESS event -> :class:`Question` (§2.3, §2.4); ``eid`` is not checked (reference)."""
    where = f"events[{position}]"
    if not isinstance(event, Mapping):
        raise InvalidAssessment(f"{where} must be an object")
    ets = _timestamp(event.get("ets"), f"{where}.ets")
    edata = event.get("edata")
    if not isinstance(edata, Mapping):
        raise InvalidAssessment(f"{where}.edata is missing or not an object")
    item = edata.get("item")
    if not isinstance(item, Mapping):
        raise InvalidAssessment(f"{where}.edata.item is missing or not an object")
    return Question(
        id=_text(item.get("id"), f"{where}.edata.item.id"),
        ets=ets,
        max_score=_number(item.get("maxscore"), f"{where}.edata.item.maxscore"),
        score=_number(edata.get("score"), f"{where}.edata.score"),
        type=_text(item.get("type"), f"{where}.edata.item.type"),
        title=_text(item.get("title"), f"{where}.edata.item.title"),
        description=_text(item.get("desc"), f"{where}.edata.item.desc"),
        duration=_number(edata.get("duration"), f"{where}.edata.duration"),
        resvalues=answer_maps(edata.get("resvalues"), f"{where}.edata.resvalues"),
        params=answer_maps(item.get("params"), f"{where}.edata.item.params"),
        position=position,
    )


def unique_questions(events: Iterable[Any]) -> list[Question]:
    """§2.5 C: the learner's last answer per question id, in a deterministic order.

    Per ``edata.item.id`` the entry with the greatest ``ets`` wins; on a tie the one that comes
    first in the input (the reference's stable newest-first sort). Question-less ids (null) form
    one group, as in the reference. The result is ordered by the chosen ``ets``, ties by input
    position (the reference's order was hash-map iteration order).
    Accepts raw ASSESS events or already parsed :class:`Question` values.
    """
    best: dict[str | None, Question] = {}
    for i, e in enumerate(events):
        q = e if isinstance(e, Question) else parse_question(e, i)
        cur = best.get(q.id)
        if cur is None or q.ets > cur.ets:
            best[q.id] = q
    return sorted(best.values(), key=lambda q: (q.ets, q.position))


def parse_attempt(event: Mapping[str, Any]) -> Attempt:
    """A batch-assess event -> :class:`Attempt`, or :class:`InvalidAssessment` with the reason.

    ``courseId``/``contentId``/``userId``/``batchId`` are required on both paths (the reference
    crashed the job on a recompute event without ``userId``/``batchId``); ``attemptId`` and
    ``assessmentTs`` only when there are ``events``. Missing, null or empty ``events`` is the
    recompute path.
    """
    if not isinstance(event, Mapping):
        raise InvalidAssessment("event must be a JSON object")
    course_id = _required_str(event, "courseId")
    content_id = _required_str(event, "contentId")
    user_id = _required_str(event, "userId")
    batch_id = _required_str(event, "batchId")
    events = event.get("events")
    if events is None or events == []:
        return Attempt(user_id, course_id, batch_id, content_id, source=dict(event))
    if not isinstance(events, list):
        raise InvalidAssessment(f"events must be a list, got {type(events).__name__}")
    attempt_id = _required_str(event, "attemptId")
    ts = _timestamp(event.get("assessmentTs"), "assessmentTs")
    questions = tuple(unique_questions(events))
    return Attempt(user_id, course_id, batch_id, content_id, attempt_id, ts, questions, dict(event))


# ----------------------------------------------------------------------------- Java formats

_DECIMAL_CTX = Context(prec=1100, rounding=ROUND_HALF_EVEN)
_HUNDREDTHS = Decimal("0.01")


def format_decimal(x: float) -> str:
    """Java ``new DecimalFormat("0.0#").format(x)``: 1 or 2 fraction digits, HALF_EVEN rounding of
    the exact binary value, no grouping, no exponent, ``-`` for negatives (``-0.0`` included)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "-\u221e" if x < 0 else "\u221e"
    s = format(Decimal(x).quantize(_HUNDREDTHS, context=_DECIMAL_CTX), "f")
    return s[:-1] if s.endswith("0") else s


def format_grand_total(total_score: float, total_max_score: float) -> str:
    """§2.5 D: ``"<score>/<max>"`` in ``DecimalFormat("0.0#")``, e.g. ``"2.0/3.0"``, ``"1.33/2.0"``."""
    return f"{format_decimal(total_score)}/{format_decimal(total_max_score)}"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def java_medium_datetime(epoch_ms: int, tz: tzinfo = UTC) -> str:
    """Gson's default ``Date`` text: Java 11 ``Locale.US`` medium ``MMM d, y, h:mm:ss a``
    (``Apr 27, 2020, 11:57:22 AM``), second precision, in ``tz``, from fixed English rules
    (an ASCII space before AM/PM whatever the JDK or locale)."""
    dt = datetime.fromtimestamp(epoch_ms // 1000, tz)
    hour = dt.hour % 12 or 12
    return (f"{_MONTHS[dt.month - 1]} {dt.day}, {dt.year}, {hour}:{dt.minute:02d}:{dt.second:02d} "
            f"{'AM' if dt.hour < 12 else 'PM'}")


# ---------------------------------------------------------------------------- attempt rules


def score_metrics(questions: Sequence[Question]) -> ScoreMetrics:
    """§2.5 D: totals summed in the questions' (deterministic) order, and the grand total."""
    total = 0.0
    total_max = 0.0
    for q in questions:
        total += q.score
        total_max += q.max_score
    return ScoreMetrics(total, total_max, format_grand_total(total, total_max))


def question_udt(q: Question) -> dict[str, Any]:
    """§2.5 F.4: the ``question`` UDT value of one unique question (field -> value)."""
    return {
        "id": q.id,
        "assess_ts": q.ets,  # epoch ms; the driver writes ints as timestamps exactly
        "max_score": q.max_score,
        "score": q.score,
        "type": q.type,
        "title": q.title,
        "resvalues": [dict(m) for m in q.resvalues],
        "params": [dict(m) for m in q.params],
        "description": q.description,
        "duration": Decimal(java_double_to_string(q.duration)),  # BigDecimal.valueOf(double): 2 -> 2.0
    }


def attempt_row(a: Attempt, created_on: int, now_ms: int) -> dict[str, Any]:
    """The full ``assessment_aggregator`` row §2.5 F.4 inserts for an accepted attempt."""
    m = score_metrics(a.questions)
    return {
        "course_id": a.course_id, "batch_id": a.batch_id, "user_id": a.user_id, "content_id": a.content_id,
        "attempt_id": a.attempt_id, "updated_on": now_ms, "created_on": created_on,
        "last_attempted_on": a.assessment_ts, "total_score": m.total_score, "total_max_score": m.total_max_score,
        "grand_total": m.grand_total, "question": [question_udt(q) for q in a.questions],
    }


def decide_attempts(attempts: Sequence[Attempt], stored: Mapping[tuple, StoredAttempt | None],
                    now_ms: int) -> tuple[list[tuple[Attempt, int]], list[Attempt]]:
    """§2.5 F.1-3, applied in arrival order: (accepted with their ``created_on``, skipped).

    An attempt is written only when it is newer (``assessmentTs`` strictly greater) than what is
    stored or was accepted earlier in the same batch; older or equal is skipped, so a replay is a
    no-op. ``created_on`` is kept from the stored row (now for a new row). ``stored`` maps an
    attempt's ``pk`` to its row, or ``None``/absent when there is none.
    """
    state: dict[tuple, StoredAttempt | None] = dict(stored)
    accepted: list[tuple[Attempt, int]] = []
    skipped: list[Attempt] = []
    for a in attempts:
        cur = state.get(a.pk)
        if cur is not None and cur.last_attempted_on is not None and a.assessment_ts <= cur.last_attempted_on:
            skipped.append(a)
            continue
        created = cur.created_on if cur is not None and cur.created_on is not None else now_ms
        accepted.append((a, created))
        state[a.pk] = StoredAttempt(a.assessment_ts, created)
    return accepted, skipped


def rows_found(accepted: Sequence[tuple[Attempt, int]], stored: Mapping[tuple, StoredAttempt | None]) -> list[bool]:
    """For each accepted attempt, in order: did its row exist when it was decided?

    The reference reads the stored attempt event by event and counts ``db-read-count`` when a
    row is found, so an attempt written earlier in the same batch counts for the later versions
    of it. A skipped attempt always found one (it is skipped because of it).
    """
    seen = {pk for pk, row in stored.items() if row is not None}
    out = []
    for a, _ in accepted:
        out.append(a.pk in seen)
        seen.add(a.pk)
    return out


def total_questions_from_cache(raw: Any) -> int:
    """§2.5 E.1: ``totalQuestions`` from a content-cache value (a JSON object), 0 when unusable.

    Keys are matched as the reference's HEAD does (lower-cased, ``_`` removed, ``""`` values
    dropped), so ``totalQuestions``, ``totalquestions`` and ``total_questions`` all work; any
    integral number or integral numeric string counts (5.3.0 failed on ``"5"``). A missing,
    malformed, fractional or negative value is 0, which sends the lookup to the content read API.
    """
    if raw is None:
        return 0
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        meta = json.loads(raw) if isinstance(raw, str) else raw
    except (ValueError, RecursionError):
        return 0
    if not isinstance(meta, Mapping):
        return 0
    norm = {str(k).lower().replace("_", ""): v for k, v in meta.items() if v != ""}
    n = integral(norm.get("totalquestions"))
    return n if n is not None and n > 0 else 0


def total_questions_from_api(content_id: str, body: Any) -> tuple[bool, int | None]:
    """§2.5 E.2: a content read API answer -> (ok, totalQuestions or ``None``).

    ``ok`` is False when ``responseCode`` is not ``OK`` (any case) or the body is not the API's
    JSON. An OK answer whose ``totalQuestions`` is present but not a non-negative integral value
    raises :class:`InvalidAssessment`.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("responseCode"), str):
        return False, None
    if body["responseCode"].upper() != "OK":
        return False, None
    result = body.get("result")
    content = result.get("content") if isinstance(result, Mapping) else None
    value = content.get("totalQuestions") if isinstance(content, Mapping) else None
    if value is None:
        return True, None
    n = integral(value)
    if n is None or n < 0:
        raise InvalidAssessment(f"content read API gave a non-integral totalQuestions {value!r} for {content_id}")
    return True, n


def question_count_problem(unique: int, total: int | None, allow_partial: bool = False) -> str | None:
    """§2.5 E.3: why an attempt with ``unique`` questions does not match the content, or ``None``.

    ``total`` None (the content has no count) passes. More questions than the content has is
    always rejected; fewer (a partial attempt) is rejected too unless ``allow_partial`` (the
    reference accepted partial attempts, contradicting its own docs).
    """
    if total is None:
        return None
    if unique > total:
        return f"attempt has {unique} unique questions but the content has totalQuestions={total}"
    if unique < total and not allow_partial:
        return f"attempt has {unique} unique questions but the content has totalQuestions={total} (partial attempt)"
    return None


# ------------------------------------------------------------------------------ score rules


def _f(value: Any) -> float:
    """Java ``Row.getDouble``: null reads as 0.0."""
    return 0.0 if value is None else float(value)


def best_score_aggregates(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """§2.6.2: per content, the best attempt's ``score:``/``max_score:`` and the attempt count.

    ``rows`` are the user's attempts in this course batch in clustering order, each with
    ``content_id``, ``score`` (the row's ``total_score``) and ``total_max_score``. The best row has
    the highest score, the first in clustering order on a tie; ``max_score`` is the best row's own.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["content_id"], []).append(r)
    out: dict[str, float] = {}
    for cid, rs in groups.items():
        best = max(rs, key=lambda r: _f(r.get("score")))  # max() keeps the first of equals
        out[f"score:{cid}"] = _f(best.get("score"))
        out[f"max_score:{cid}"] = _f(best.get("total_max_score"))
        out[f"attempts_count:{cid}"] = float(len(rs))
    return out


def agg_details(rows: Sequence[Mapping[str, Any]], agg_type: str = DEFAULT_AGG_TYPE,
                tz: tzinfo = UTC) -> list[str]:
    """§2.6.3: one Gson JSON string per row, in clustering order, fields in the reference order.

    ``last_attempted_on`` is epoch ms (``None`` is left out, as Gson leaves out nulls).
    """
    out = []
    for r in rows:
        parts = [f'"attempt_id":{gson_string(str(r["attempt_id"]))}']
        if r.get("last_attempted_on") is not None:
            parts.append(f'"last_attempted_on":{gson_string(java_medium_datetime(r["last_attempted_on"], tz))}')
        parts.append(f'"score":{java_double_to_string(_f(r.get("score")))}')
        parts.append(f'"content_id":{gson_string(str(r["content_id"]))}')
        parts.append(f'"max_score":{java_double_to_string(_f(r.get("total_max_score")))}')
        if agg_type is not None:
            parts.append(f'"type":{gson_string(agg_type)}')
        out.append("{" + ",".join(parts) + "}")
    return out


def latest_attempt_id(rows: Sequence[Mapping[str, Any]]) -> str:
    """§2.6.5: the most recent attempt's id when the user attempted exactly one assessment
    content in this batch, else ``""``. Compared on the stored millisecond timestamps (the
    reference parsed its second-precision date strings back); ties go to the first row."""
    if not rows or len({r["content_id"] for r in rows}) != 1:
        return ""
    best = None
    for r in rows:
        ts = r.get("last_attempted_on")
        if ts is not None and (best is None or ts > best[0]):
            best = (ts, r)
    chosen = best[1] if best is not None else rows[0]
    return str(chosen.get("attempt_id") or "")


def score_update(rows: Sequence[Mapping[str, Any]], agg_type: str = DEFAULT_AGG_TYPE,
                 tz: tzinfo = UTC) -> ScoreUpdate:
    """§2.6.2-5 in one call."""
    return ScoreUpdate(best_score_aggregates(rows), agg_details(rows, agg_type, tz), latest_attempt_id(rows))


def cert_issue_event(batch_id: str, course_id: str, user_id: str, attempt_id: str, now_ms: int,
                     uuid: str) -> dict[str, Any]:
    """§2.7: the issue-certificate request after a new score, carrying the attempt."""
    return issue_certificate_request(user_id, course_id, batch_id, now_ms, uuid, attempt_id=attempt_id)
