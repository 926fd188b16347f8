"""AggregateScores: validated assessment attempts -> stored attempts, best scores, certificate requests.

    events --ValidateAttempts--> Attempt --AggregateScores--> certissue
                   \\--> failed                   \\--> failed

    AggregateScores = BatchByUser -> CheckContent -> [QuestionCount] -> StoreAttempts

Each step takes ``(shard, [Attempt])`` batches from ``ShardedBatches`` (keyed on the user, so one
user's attempts are always on one worker, in order), talks to its store once per batch
(Redis pipelines, concurrent prepared Cassandra statements), calls the pure rules of
``pipelines.domain.assessment`` and passes the surviving batch on:

- ``CheckContent``: the content-in-course check on the relation cache (§2.5 A);
- ``QuestionCount`` (only with ``assessment.skip.missingRecords``): the ``totalQuestions`` check,
  content cache then the content read API with a timeout, retries and a TTL cache (§2.5 E);
- ``StoreAttempts``: the attempt upsert with the stale-attempt guard (§2.5 F), then the score
  aggregation into ``user_activity_agg`` and the certificate request (§2.6), in that order for
  every (user, course, batch) key of the batch, so a score never reads a key's attempts while
  they are being written (the reference's race).

Every failure (store faults after retries included) becomes a failed record with a reason, the
original event and the reference's ``metadata.src``; nothing raises out of a DoFn.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import apache_beam as beam
from apache_beam import pvalue

from pipelines.domain import assessment as A
from pipelines.domain.cache_keys import leaf_nodes_key
from pipelines.io.cassandra import TRANSIENT as CASSANDRA_TRANSIENT
from pipelines.io.cassandra import CassandraClient
from pipelines.io.http import HttpClient
from pipelines.io.redis_store import RedisClient
from pipelines.io.retry import RetryPolicy
from pipelines.io.search import TTLCache
from pipelines.metrics import counter
from pipelines.options.assessment import AssessmentSettings
from pipelines.transforms.batching import ShardedBatches
from pipelines.transforms.failures import FAILED_TAG, fail, raise_outage

CERT_TAG = "certissue"
log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1)


def zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def to_ms(value: Any) -> int | None:
    """A Cassandra timestamp as the driver returns it (naive UTC datetime) -> epoch ms."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return round((value - _EPOCH) / timedelta(milliseconds=1))


def _fail(job_name: str, reason: str, a: A.Attempt, stage: str) -> pvalue.TaggedOutput:
    """The failed record of an attempt: its original event, with the reference's ``metadata.src``."""
    return fail(job_name, reason, a.source, stage=stage, src=A.SRC)


# ------------------------------------------------------------------------------- validation


def _text(event: dict) -> str:
    try:
        return json.dumps(event, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        return repr(event)


class ValidateAttemptFn(beam.DoFn):
    """Batch-assess event -> :class:`Attempt`; an invalid one goes to the failed output with the reason.

    Not the shared ``ValidateEvents``: every failed record carries the reference's
    ``metadata.src``, any exception odd input raises in the parser is a failure (never a crash),
    and an event too deep to re-encode is kept as text (``raw``) so its record can be written.
    """

    def __init__(self, job_name: str = A.JOB_NAME, failed_metric: str = "failed-event-count"):
        self.job_name = job_name
        self.total = counter(job_name, "total-events-count")
        self.failed = counter(job_name, failed_metric)

    def process(self, event: dict):
        self.total.inc()
        try:
            attempt = A.parse_attempt(event)
        except Exception as e:  # noqa: BLE001 - InvalidAssessment, or anything odd input can raise: never crash
            self.failed.inc()
            reason = str(e) if isinstance(e, A.InvalidAssessment) else f"invalid event: {type(e).__name__}: {e}"
            if isinstance(e, RecursionError):  # too deep for the JSON writer too: keep it as text
                yield fail(self.job_name, reason, raw=_text(event), stage="validate", src=A.SRC)
                return
            yield fail(self.job_name, reason, event, stage="validate", src=A.SRC)
            return
        yield attempt


class ValidateAttempts(beam.PTransform):
    """``attempts, failed = events | ValidateAttempts(job_name, failed_metric)``."""

    def __init__(self, job_name: str = A.JOB_NAME, failed_metric: str = "failed-event-count"):
        super().__init__()
        self.job_name, self.failed_metric = job_name, failed_metric

    def expand(self, events):
        out = events | "Validate" >> beam.ParDo(ValidateAttemptFn(self.job_name, self.failed_metric)).with_outputs(
            FAILED_TAG, main="attempts")
        return out.attempts, out[FAILED_TAG]


# ------------------------------------------------------------------------------ content check


class _CheckContentFn(beam.DoFn):
    """§2.5 A: ``SMEMBERS <course>:<course>:leafnodes`` (relation cache), once per course per batch.

    A known course must list the content; an unknown course (empty or missing set) is accepted
    and counted, as the reference does, unless ``strict_course_check``.
    """

    def __init__(self, s: AssessmentSettings):
        self.s = s
        n = s.job_name
        self.c = {k: counter(n, k) for k in ("cache-hit-count", "cache-hit-miss-count", "failed-event-count",
                                            "unknown-course-event-count")}

    def setup(self):
        self.redis = RedisClient(self.s.relation_cache)

    def teardown(self):
        self.redis.close()

    def process(self, shard_batch):
        shard, attempts = shard_batch
        courses = sorted({a.course_id for a in attempts})
        keys = [leaf_nodes_key(c, c) for c in courses]

        def run(client):
            pipe = client.pipeline(transaction=False)
            for k in keys:
                pipe.smembers(k)
            return pipe.execute(raise_on_error=False)

        try:
            values = self.redis.call(run, "relation cache smembers")
        except Exception as e:  # noqa: BLE001 - after retries: dead-letter the batch (batch) or restart (streaming)
            raise_outage(e, self.s.dead_letter_outages)
            for a in attempts:
                self.c["failed-event-count"].inc()
                yield _fail(self.s.job_name, f"relation cache unavailable: {e}", a, "content-check")
            return
        leaves: dict[str, set[str] | Exception] = {}
        for course, v in zip(courses, values, strict=True):
            leaves[course] = v if isinstance(v, Exception) else {
                m.decode() if isinstance(m, bytes) else m for m in v}
        passed = []
        for a in attempts:
            members = leaves[a.course_id]
            if isinstance(members, Exception):
                self.c["failed-event-count"].inc()
                yield _fail(self.s.job_name, f"relation cache read failed for {a.course_id}: {members}", a,
                            "content-check")
            elif members:
                self.c["cache-hit-count"].inc()
                if a.content_id in members:
                    passed.append(a)
                else:
                    self.c["failed-event-count"].inc()
                    yield _fail(self.s.job_name, f"content {a.content_id} is not a leaf node of course "
                                                 f"{a.course_id}", a, "content-check")
            else:
                self.c["cache-hit-miss-count"].inc()
                self.c["unknown-course-event-count"].inc()
                if self.s.strict_course_check:
                    self.c["failed-event-count"].inc()
                    yield _fail(self.s.job_name, f"course {a.course_id} has no leaf nodes in the relation cache "
                                                 "(unknown course; strict course check is on)", a, "content-check")
                else:
                    passed.append(a)
        if passed:
            yield shard, passed


# ---------------------------------------------------------------------------- question count


class ContentReadError(Exception):
    """The content read API gave no usable answer; the message is the failure reason."""


class ContentQuestions:
    """totalQuestions from the content read API (``<content.read.api><id>``), TTL-cached per worker."""

    def __init__(self, base_url: str, http: HttpClient, cache: TTLCache, on_call: Callable[[bool], None]):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.http, self.cache, self.on_call = http, cache, on_call

    def total(self, content_id: str) -> int | None:
        cached = self.cache.get(content_id)
        if cached is not None:
            return json.loads(cached)
        url = self.base_url + quote(content_id, safe="")
        try:
            resp = self.http.request("GET", url)
        except Exception as e:  # noqa: BLE001 - after retries
            self.on_call(False)
            raise ContentReadError(f"content read API unavailable for {content_id}: {e}") from e
        try:
            ok, total = A.total_questions_from_api(content_id, resp.body)
        except A.InvalidAssessment:
            self.on_call(True)  # the API answered OK; its value is unusable
            raise
        self.on_call(ok)
        if not ok:
            code = resp.body.get("responseCode") if isinstance(resp.body, dict) else None
            raise ContentReadError(f"Failed to fetch the content meta for the content ID: {content_id} "
                                   f"(HTTP {resp.status}, responseCode {code!r})")
        if self.cache.ttl_secs > 0:
            self.cache.put(content_id, json.dumps(total))
        return total


class _QuestionCountFn(beam.DoFn):
    """§2.5 E (only when ``assessment.skip.missingRecords``): content cache ``GET <contentId>``
    (db ``redis.database.contentCache.id``), else the content read API; then the count check."""

    def __init__(self, s: AssessmentSettings):
        self.s = s
        n = s.job_name
        self.c = {k: counter(n, k) for k in ("cache-hit-count", "cache-hit-miss-count", "failed-event-count",
                                            "ignored-event-count", "api-hit-success-count",
                                            "api-hit-failed-count")}

    def setup(self):
        self.redis = RedisClient(self.s.content_cache)
        self.http = HttpClient(self.s.http_timeout_secs, RetryPolicy(attempts=1 + max(0, self.s.http_retries)))
        self.api = ContentQuestions(self.s.content_read_api, self.http, TTLCache(self.s.content_read_cache_secs),
                                    self._count_call)

    def teardown(self):
        self.redis.close()
        self.http.close()

    def _count_call(self, ok: bool) -> None:
        self.c["api-hit-success-count" if ok else "api-hit-failed-count"].inc()

    def process(self, shard_batch):
        shard, attempts = shard_batch
        checked = [a for a in attempts if not a.recompute]
        contents = sorted({a.content_id for a in checked})
        passed = [a for a in attempts if a.recompute]
        if not contents:
            yield shard, passed
            return

        def run(client):
            pipe = client.pipeline(transaction=False)
            for cid in contents:
                pipe.get(cid)
            return pipe.execute(raise_on_error=False)

        try:
            raw = self.redis.call(run, "content cache get")
        except Exception as e:  # noqa: BLE001 - after retries
            raise_outage(e, self.s.dead_letter_outages)
            for a in checked:
                self.c["failed-event-count"].inc()
                yield _fail(self.s.job_name, f"content cache unavailable: {e}", a, "question-count")
            if passed:
                yield shard, passed
            return
        from_cache = {cid: (0 if isinstance(v, Exception) else A.total_questions_from_cache(v))
                      for cid, v in zip(contents, raw, strict=True)}
        totals: dict[str, int | None | Exception] = {}
        for cid in contents:
            if from_cache[cid]:
                totals[cid] = from_cache[cid]
                continue
            try:
                totals[cid] = self.api.total(cid)
            except (ContentReadError, A.InvalidAssessment) as e:
                raise_outage(e, self.s.dead_letter_outages)
                totals[cid] = e
        for a in checked:
            self.c["cache-hit-count"].inc()  # the reference counts every content-cache read as a hit
            if not from_cache[a.content_id]:
                self.c["cache-hit-miss-count"].inc()
            total = totals[a.content_id]
            if isinstance(total, Exception):
                self.c["failed-event-count"].inc()
                yield _fail(self.s.job_name, str(total), a, "question-count")
                continue
            problem = A.question_count_problem(len(a.questions), total, self.s.allow_partial_attempts)
            if problem:
                self.c["ignored-event-count"].inc()
                yield _fail(self.s.job_name, problem, a, "question-count")
            else:
                passed.append(a)
        if passed:
            yield shard, passed


# ----------------------------------------------------------------------- attempts and scores


def _cql(s: AssessmentSettings) -> dict[str, str]:
    ks, t, agg = s.cassandra.keyspace, s.table, s.activity_table
    return {
        "stored": f"SELECT last_attempted_on, created_on FROM {ks}.{t} WHERE user_id = ? AND course_id = ? "
                  "AND batch_id = ? AND content_id = ? AND attempt_id = ?",
        "insert": f"INSERT INTO {ks}.{t} (course_id, batch_id, user_id, content_id, attempt_id, updated_on, "
                  "created_on, last_attempted_on, total_score, total_max_score, grand_total, question) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "scores": f"SELECT content_id, attempt_id, last_attempted_on, total_max_score, total_score AS score "
                  f"FROM {ks}.{t} WHERE user_id = ? AND course_id = ? AND batch_id = ?",
        # Map merges: activity-aggregate-updater's completedCount and other keys survive.
        "update_agg": f"UPDATE {ks}.{agg} SET aggregates = aggregates + ?, agg_details = ?, "
                      "agg_last_updated = agg_last_updated + ? "
                      "WHERE activity_type = 'Course' AND activity_id = ? AND user_id = ? AND context_id = ?",
    }


_INSERT_COLUMNS = ("course_id", "batch_id", "user_id", "content_id", "attempt_id", "updated_on", "created_on",
                   "last_attempted_on", "total_score", "total_max_score", "grand_total", "question")


def insert_params(row: dict[str, Any]) -> tuple:
    # The driver binds a UDT from an object's attributes (by field name, whatever the type's order).
    return tuple([SimpleNamespace(**q) for q in row[c]] if c == "question" else row[c] for c in _INSERT_COLUMNS)


class _StoreAttemptsFn(beam.DoFn):
    """§2.5 F then §2.6 for one batch: stale-guarded attempt upserts, then per (user, course,
    batch) key one read of all attempts, one ``user_activity_agg`` update and the certificate
    requests. The two steps run one after the other for every key, so a score never reads a
    key's attempts while they are being written."""

    def __init__(self, s: AssessmentSettings):
        self.s = s
        n, sn = s.job_name, s.score_namespace
        self.c = {k: counter(n, k) for k in ("db-read-count", "skipped-event-count", "db-update-count",
                                            "batch-success-event-count", "recompute-agg-event-count",
                                            "failed-event-count")}
        self.sc = {k: counter(sn, k) for k in ("db-score-read-count", "db-score-update-count",
                                              "cert-issue-events-count", "failed-event-count")}

    def setup(self):
        self.db = CassandraClient(self.s.cassandra)
        self.cql = _cql(self.s)
        self.tz = zone(self.s.agg_timezone)
        self._udt_checked = False

    def teardown(self):
        self.db.close()

    def _check_udt(self) -> None:
        """The reference reads the UDT from cluster metadata at start; say clearly when it is absent."""
        if self._udt_checked:
            return
        ks = self.db.session.cluster.metadata.keyspaces.get(self.s.cassandra.keyspace)
        if ks is None or self.s.question_udt not in ks.user_types:
            raise RuntimeError(f"UDT {self.s.cassandra.keyspace}.{self.s.question_udt} does not exist "
                               "(lms-cassandra.questionudttype); apply the schema first")
        self._udt_checked = True

    def _many(self, cql: str, params: Sequence[Sequence[Any]]) -> list[list | Exception]:
        """Runs a statement per parameter row; a non-transient error is isolated to its row.

        Transient faults have been retried by the client; when they persist, every row fails
        (the cluster is unavailable, so trying rows one by one would only wait longer).
        """
        if not params:
            return []
        try:
            return list(self.db.execute_many(cql, params))
        except (RuntimeError, *CASSANDRA_TRANSIENT) as e:
            raise_outage(e, self.s.dead_letter_outages)
            return [e] * len(params)
        except Exception:  # noqa: BLE001 - a bad row: find which one
            out: list[list | Exception] = []
            for p in params:
                try:
                    out.append(self.db.execute(cql, p))
                except Exception as e:  # noqa: BLE001
                    out.append(e)
            return out

    def process(self, shard_batch):
        _, attempts = shard_batch
        try:
            self._check_udt()
        except Exception as e:  # noqa: BLE001 - schema or connection problem: dead-letter, do not crash
            raise_outage(e, self.s.dead_letter_outages)
            for a in attempts:
                self.c["failed-event-count"].inc()
                yield _fail(self.s.job_name, f"assessment store unavailable: {e}", a, "attempt-upsert")
            return
        now_ms = int(time.time() * 1000)
        scored: list[A.Attempt] = []  # events that reach score aggregation, in order
        refresh: list[A.Attempt] = []  # skipped events whose aggregates are refreshed (option)
        normal = [a for a in attempts if not a.recompute]
        yield from self._upsert(normal, now_ms, scored, refresh)
        for a in attempts:
            if a.recompute:
                self.c["recompute-agg-event-count"].inc()
                scored.append(a)
        yield from self._score(scored, refresh, now_ms)

    # -------------------------------------------------------------------------- upsert

    def _upsert(self, attempts: list[A.Attempt], now_ms: int, scored: list, refresh: list):
        if not attempts:
            return
        pks = list(dict.fromkeys(a.pk for a in attempts))
        results = self._many(self.cql["stored"], pks)
        stored: dict[tuple, A.StoredAttempt | None] = {}
        unreadable: dict[tuple, Exception] = {}
        for pk, res in zip(pks, results, strict=True):
            if isinstance(res, Exception):
                unreadable[pk] = res
            elif res:
                stored[pk] = A.StoredAttempt(to_ms(res[0].last_attempted_on), to_ms(res[0].created_on))
        readable = []
        for a in attempts:
            if a.pk in unreadable:
                self.c["failed-event-count"].inc()
                yield _fail(self.s.job_name, f"assessment_aggregator read failed: {unreadable[a.pk]}", a,
                            "attempt-upsert")
            else:
                readable.append(a)
        accepted, skipped = A.decide_attempts(readable, stored, now_ms)
        found = A.rows_found(accepted, stored)
        for a in skipped:
            self.c["skipped-event-count"].inc()
            self.c["db-read-count"].inc()  # skipped because its row (stored or written in this batch) is newer
            if self.s.refresh_on_skip:
                refresh.append(a)
        # Only the last accepted version of each attempt is written: each accepted one is newer
        # than the one before, so the final row is the same as writing them all in order.
        final: dict[tuple, tuple[A.Attempt, int]] = {}
        for a, created in accepted:
            final[a.pk] = (a, created)
        rows, params = [], []
        failed: dict[tuple, Exception] = {}
        for a, created in final.values():
            try:
                params.append(insert_params(A.attempt_row(a, created, now_ms)))
                rows.append(a)
            except Exception as e:  # noqa: BLE001 - a row that cannot be built fails alone
                failed[a.pk] = e
        results = self._many(self.cql["insert"], params)
        failed.update({a.pk: res for a, res in zip(rows, results, strict=True) if isinstance(res, Exception)})
        for (a, _), row_found in zip(accepted, found, strict=True):
            if a.pk in failed:
                self.c["failed-event-count"].inc()
                yield _fail(self.s.job_name, f"assessment_aggregator write failed: {failed[a.pk]}", a,
                            "attempt-upsert")
                continue
            if row_found:
                self.c["db-read-count"].inc()
            self.c["db-update-count"].inc()
            self.c["batch-success-event-count"].inc()
            scored.append(a)

    # --------------------------------------------------------------------------- score

    def _score(self, scored: list[A.Attempt], refresh: list[A.Attempt], now_ms: int):
        keys = list(dict.fromkeys(a.key for a in [*scored, *refresh]))
        if not keys:
            return
        reads = self._many(self.cql["scores"], keys)
        updates: dict[tuple, A.ScoreUpdate] = {}
        errors: dict[tuple, str] = {}
        for key, res in zip(keys, reads, strict=True):
            if isinstance(res, Exception):
                errors[key] = f"assessment_aggregator score read failed: {res}"
                continue
            rows = [{"content_id": r.content_id, "attempt_id": r.attempt_id,
                     "last_attempted_on": to_ms(r.last_attempted_on), "total_max_score": r.total_max_score,
                     "score": r.score} for r in res]
            updates[key] = A.score_update(rows, self.s.agg_type, self.tz)
        to_write = [k for k, u in updates.items() if u.aggregates or u.agg_details]
        params = [(updates[k].aggregates, updates[k].agg_details, {name: now_ms for name in updates[k].aggregates},
                   k[1], k[0], f"cb:{k[2]}") for k in to_write]
        for k, res in zip(to_write, self._many(self.cql["update_agg"], params), strict=True):
            if isinstance(res, Exception):
                errors[k] = f"user_activity_agg update failed: {res}"
        for a in scored:
            self.sc["db-score-read-count"].inc()
            if a.key in errors:
                self.sc["failed-event-count"].inc()
                yield _fail(self.s.job_name, errors[a.key], a, "score-aggregate")
                continue
            u = updates[a.key]
            if u.aggregates or u.agg_details:
                self.sc["db-score-update-count"].inc()
            self.sc["cert-issue-events-count"].inc()
            yield pvalue.TaggedOutput(CERT_TAG, A.cert_issue_event(a.batch_id, a.course_id, a.user_id,
                                                                   u.latest_attempt_id, now_ms, str(uuid.uuid4())))
        for a in refresh:
            if a.key in errors:
                log.warning("aggregate refresh for a skipped attempt failed: %s", errors[a.key])



# ------------------------------------------------------------------------------- the composite


def _user(a: A.Attempt) -> str:
    return a.user_id


class AggregateScores(beam.PTransform):
    """``certs, failed = attempts | AggregateScores(settings, shards, batch_size, max_buffering_secs)``.

    Attempts are batched per ``userId.hashCode % shards`` (at most ``batch_size`` per batch,
    flushed after ``max_buffering_secs`` in streaming, ``None`` for bounded input), checked
    against the relation cache (and, with ``settings.check_question_count``, the question
    count), stored and scored; ``certs`` are the issue-certificate requests.
    """

    def __init__(self, settings: AssessmentSettings, shards: int, batch_size: int,
                 max_buffering_secs: float | None):
        super().__init__()
        self.settings, self.shards = settings, shards
        self.batch_size, self.max_buffering_secs = batch_size, max_buffering_secs

    def expand(self, attempts):
        s = self.settings
        batches = attempts | "BatchByUser" >> ShardedBatches(_user, self.shards, self.batch_size,
                                                             self.max_buffering_secs)
        checked = batches | "CheckContent" >> beam.ParDo(_CheckContentFn(s)).with_outputs(FAILED_TAG, main="batches")
        failures = [checked[FAILED_TAG]]
        batches = checked.batches
        if s.check_question_count:
            counted = batches | "QuestionCount" >> beam.ParDo(_QuestionCountFn(s)).with_outputs(
                FAILED_TAG, main="batches")
            failures.append(counted[FAILED_TAG])
            batches = counted.batches
        stored = batches | "StoreAttempts" >> beam.ParDo(_StoreAttemptsFn(s)).with_outputs(CERT_TAG, FAILED_TAG)
        failures.append(stored[FAILED_TAG])
        return stored[CERT_TAG], tuple(failures) | "Failures" >> beam.Flatten()
