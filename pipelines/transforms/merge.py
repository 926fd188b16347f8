"""The merge-user-courses composites: validate account-merge requests, then merge them.

    events --ValidateMergeRequests--> MergeWork --MergeCourses--> sync | enrolment_sync | assessment
                       \\--> failed                       \\--> failed

``ValidateMergeRequests`` counts the requests' actions and runs the shared ``ValidateEvents``
over ``pipelines.domain.merge.parse_merge_work``: a request without its account ids is skipped
and counted (the reference's ``skipped-event-count``), an unusable one fails with its reason.
``MergeCourses`` batches requests on the target account, so two copies of one request reach the
same worker and run one after the other, and runs each request's steps in order behind a Redis
journal and done-marker (docs/merge.md, *Idempotency*). The rules are the pure functions of
``pipelines.domain.merge``; the DoFn here only reads, calls them and writes.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from pipelines.domain import merge as M
from pipelines.io.cassandra import CassandraClient
from pipelines.io.redis_store import RedisClient
from pipelines.metrics import counter
from pipelines.options.merge import MergeSettings
from pipelines.transforms.batching import ShardedBatches
from pipelines.transforms.failures import FAILED_TAG, fail, raise_outage
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

SYNC_TAG, ENROLMENT_SYNC_TAG, ASSESSMENT_TAG = "sync", "enrolment_sync", "assessment"
FAILED_METRIC = "failed-events-count"
VALIDATION = ValidationMetrics(failed=FAILED_METRIC, skipped="skipped-event-count", total="total-events-count")
log = logging.getLogger(__name__)


class _CountActionsFn(beam.DoFn):
    """Counts the ``edata.action`` of requests that have an ``edata`` (known or not); passes all on."""

    def __init__(self, job_name: str):
        self.known = counter(job_name, "merge-action-count")
        self.unknown = counter(job_name, "unknown-action-count")

    def process(self, event: dict):
        edata = event.get("edata")
        if isinstance(edata, dict) and edata:
            (self.known if edata.get("action") == M.MERGE_ACTION else self.unknown).inc()
        yield event


class ValidateMergeRequests(beam.PTransform):
    """``work, failed = events | ValidateMergeRequests(job_name, strict_action)``.

    Not strict by default: the reference reads no ``edata.action`` (its own requests carry
    none); ``strict_action`` fails requests whose action is not ``merge-user-courses-and-cert``.
    """

    def __init__(self, job_name: str = M.JOB_NAME, strict_action: bool = False):
        super().__init__()
        self.job_name, self.strict_action = job_name, strict_action

    def expand(self, events):
        parse = functools.partial(M.parse_merge_work, strict_action=self.strict_action)
        return (events
                | "CountActions" >> beam.ParDo(_CountActionsFn(self.job_name))
                | "ValidateEvents" >> ValidateEvents(self.job_name, parse, VALIDATION))


def _cql(s: MergeSettings) -> dict[str, str]:
    ks, t = s.cassandra.keyspace, s.tables
    return {
        "consumption": f"SELECT * FROM {ks}.{t['consumption']} WHERE userid = ?",
        "enrolments": f"SELECT * FROM {ks}.{t['enrolments']} WHERE userid = ?",
        "agg": f"SELECT * FROM {ks}.{t['activity_agg']} WHERE activity_type = 'Course' AND activity_id = ? "
               "AND user_id = ?",
        "assessment": f"SELECT * FROM {ks}.{t['assessment']} WHERE user_id = ? AND course_id = ?",
        # Map-merge updates: only completedCount (and F's legacy agg keys) change; T's assessment
        # score keys and agg_details stay (the reference replaced whole maps with F's).
        "update_agg": f"UPDATE {ks}.{t['activity_agg']} SET aggregates = aggregates + ?, "
                      "agg_last_updated = agg_last_updated + ? "
                      "WHERE activity_type = 'Course' AND activity_id = ? AND user_id = ? AND context_id = ?",
        "update_agg_and_legacy": f"UPDATE {ks}.{t['activity_agg']} SET aggregates = aggregates + ?, "
                                 "agg_last_updated = agg_last_updated + ?, agg = agg + ? "
                                 "WHERE activity_type = 'Course' AND activity_id = ? AND user_id = ? "
                                 "AND context_id = ?",
    }


class _MergeFn(beam.DoFn):
    """Runs the merge steps of each request in order, behind the journal/done-marker guard.

    A request ends in exactly one of: merged (``success-events-count``, its outputs emitted) or
    failed (``failed-events-count``, one failed record naming the step, nothing emitted).
    """

    METRICS = ("success-events-count", FAILED_METRIC, "db-update-user-course-batch", "already-merged-event-count",
               "enrolment-sync-request-count", "assessment-recompute-request-count", "consumption-merged-count",
               "consumption-copied-count", "case-insensitive-match-count", "activity-agg-updated-count",
               "enrolment-migrated-count", "assessment-attempt-copied-count", "db-read-count", "db-update-count")

    def __init__(self, s: MergeSettings):
        self.s = s
        self.c = {name: counter(s.job_name, name) for name in self.METRICS}

    def setup(self):
        self.db = CassandraClient(self.s.cassandra)
        self.redis = RedisClient(self.s.markers)
        self.cql = _cql(self.s)

    def teardown(self):
        self.db.close()
        self.redis.close()

    def process(self, shard_batch):
        _, works = shard_batch
        # One request at a time, in arrival order: merges that share an account see each other's writes.
        for work in works:
            yield from self._merge(work)

    def _merge(self, work: M.MergeWork):
        self.step = "read"
        try:
            outputs = self._run(work.request, work.event)
        except Exception as e:  # noqa: BLE001 - after retries: dead-letter with the reason, never crash
            raise_outage(e, self.s.dead_letter_outages)
            log.warning("merge %s -> %s failed at %s: %s", work.request.from_user, work.request.to_user,
                        self.step, e)
            self.c[FAILED_METRIC].inc()
            yield fail(self.s.job_name, f"merge failed at step {self.step}: {e}", work.event, stage=self.step)
            return
        self.c["success-events-count"].inc()
        yield from outputs

    # ------------------------------------------------------------------------------ store helpers

    def _rows(self, cql: str, params: list[tuple]) -> list[list[dict[str, Any]]]:
        if not params:
            return []
        self.c["db-read-count"].inc(len(params))
        return [[r._asdict() for r in rows] for rows in self.db.execute_many(self.cql[cql], params)]

    def _insert(self, table: str, rows: Iterable[dict[str, Any]], whole: bool = False) -> int:
        """Upserts rows binding only their non-null columns (no tombstones), or every column when
        ``whole`` (a replacement); one prepared statement per column set, its rows concurrently."""
        by_columns: dict[tuple[str, ...], list[tuple]] = defaultdict(list)
        for row in rows:
            w = dict(row) if whole else M.writable(row)
            cols = tuple(sorted(w))
            by_columns[cols].append(tuple(w[c] for c in cols))
        n = 0
        for cols, params in by_columns.items():
            cql = (f"INSERT INTO {self.s.cassandra.keyspace}.{table} ({', '.join(cols)}) "
                   f"VALUES ({', '.join('?' for _ in cols)})")
            self.db.execute_many(cql, params)
            n += len(params)
        self.c["db-update-count"].inc(n)
        return n

    def _journal(self, from_user: str, to_user: str, to_rows: list[dict[str, Any]], now_ms: int) -> M.Journal:
        """The first attempt's journal (``SET NX``), whoever wrote it: every attempt merges from it."""
        key, _ = M.marker_keys(from_user, to_user)
        mine = M.Journal(now_ms, to_rows).dumps()
        expiry = self.s.journal_expiry_secs or None

        def run(client):
            pipe = client.pipeline(transaction=True)
            pipe.set(key, mine, nx=True, ex=expiry)
            pipe.get(key)
            return pipe.execute()

        _, stored = self.redis.call(run, "merge journal")
        return M.Journal.loads(stored if stored is not None else mine)

    # ---------------------------------------------------------------------------------- the merge

    def _run(self, req: M.MergeRequest, event: dict) -> list:
        F, T = req.from_user, req.to_user
        _, done_key = M.marker_keys(F, T)
        self.step = "marker"
        done = self.redis.call(lambda c: c.get(done_key), "merge marker")
        if done is not None:
            # A replay or a repeated request: the tables already hold the merge. Only the requests
            # are emitted again (at-least-once: the first run's may not have reached Kafka).
            self.c["already-merged-event-count"].inc()
            self.step = "read"
            (to_enrols,) = self._rows("enrolments", [(T,)])
            return self._outputs(T, to_enrols, M.done_contexts(done))

        self.step = "read"
        from_cons, to_cons, from_enrols, to_enrols = self._rows(
            "consumption", [(F,), (T,)]) + self._rows("enrolments", [(F,), (T,)])
        self.step = "journal"
        journal = self._journal(F, T, to_cons, int(time.time() * 1000))
        started = datetime.fromtimestamp(journal.started_ms / 1000, tz=UTC)

        # Step 1: content consumption, merged from T's pre-merge rows (so sums are added once).
        self.step = "content-consumption"
        plan = M.plan_consumption_merge(from_cons, journal.to_consumption, T, self.s.date_format)
        for fk, tk in plan.case_mismatches:
            log.warning("merge %s -> %s: consumption rows matched case-insensitively: %s ~ %s", F, T, fk, tk)
        self._insert(self.s.tables["consumption"], plan.writes)
        self.c["consumption-merged-count"].inc(plan.merged)
        self.c["consumption-copied-count"].inc(plan.copied)
        self.c["case-insensitive-match-count"].inc(len(plan.case_mismatches))

        # Step 2: completedCount of the courses F is enrolled in (skipped without enrolments).
        course_ids = sorted({e["courseid"] for e in from_enrols if e.get("courseid")})
        self.step = "activity-aggregates"
        if course_ids:
            rows = self._rows("agg", [(c, u) for u in (F, T) for c in course_ids])
            from_aggs = [r for rs in rows[:len(course_ids)] for r in rs]
            to_aggs = [r for rs in rows[len(course_ids):] for r in rs]
            updates = M.plan_aggregate_merge(from_aggs, to_aggs)
            plain = [({M.COMPLETED_COUNT: u.completed_count}, {M.COMPLETED_COUNT: started}, u.activity_id, T,
                      u.context_id) for u in updates if not u.agg]
            legacy = [({M.COMPLETED_COUNT: u.completed_count}, {M.COMPLETED_COUNT: started}, u.agg, u.activity_id,
                       T, u.context_id) for u in updates if u.agg]
            for cql, params in (("update_agg", plain), ("update_agg_and_legacy", legacy)):
                if params:
                    self.db.execute_many(self.cql[cql], params)
            self.c["activity-agg-updated-count"].inc(len(updates))
            self.c["db-update-count"].inc(len(updates))

        # Step 3: enrolments in batches T is not in (compared with T's current rows: a re-run
        # finds them migrated and leaves T's since-recomputed progress alone).
        self.step = "enrolments"
        migrated = M.plan_enrolment_migration(from_enrols, to_enrols, T)
        for e in migrated:
            if e.get("issued_certificates"):
                log.warning("merge %s -> %s: batch %s carries issued certificates to the target", F, T,
                            e.get("batchid"))
        self._insert(self.s.tables["enrolments"], migrated)
        self.c["enrolment-migrated-count"].inc(len(migrated))

        # Step 3b: assessment attempts of F's courses.
        contexts: list[tuple[str, str, str]] = []
        if self.s.assessment and course_ids:
            self.step = "assessment"
            rows = self._rows("assessment", [(u, c) for u in (F, T) for c in course_ids])
            from_attempts = [r for rs in rows[:len(course_ids)] for r in rs]
            to_attempts = [r for rs in rows[len(course_ids):] for r in rs]
            attempts = M.plan_assessment_merge(from_attempts, to_attempts, T)
            self._insert(self.s.tables["assessment"], attempts.copies)
            self._insert(self.s.tables["assessment"], attempts.replacements, whole=True)
            self.c["assessment-attempt-copied-count"].inc(len(attempts.copies) + len(attempts.replacements))
            contexts = M.assessment_contexts(from_attempts)

        # Step 4: T's enrolments after the migration, for the sync events.
        self.step = "sync"
        (to_after,) = self._rows("enrolments", [(T,)])
        outputs = self._outputs(T, to_after, contexts)

        # Written last: from now on a repeat of this request changes nothing.
        self.step = "marker"
        record = M.done_record(event.get("mid") if isinstance(event.get("mid"), str) else None,
                               int(time.time() * 1000), contexts)
        expiry = self.s.marker_expiry_secs or None
        self.redis.call(lambda c: c.set(done_key, record, ex=expiry), "merge marker")
        return outputs

    def _outputs(self, to_user: str, enrols: list[dict[str, Any]], contexts: list[tuple[str, str, str]]) -> list:
        now_ms = int(time.time() * 1000)
        out = []
        for e in sorted(enrols, key=lambda r: (r["courseid"], r["batchid"])):
            out.append(pvalue.TaggedOutput(SYNC_TAG, M.batch_enrolment_sync_event(
                e["batchid"], to_user, e["courseid"], now_ms, str(uuid.uuid4()))))
            self.c["db-update-user-course-batch"].inc()
            if self.s.enrolment_sync:
                out.append(pvalue.TaggedOutput(ENROLMENT_SYNC_TAG,
                                               M.enrolment_sync_request(e["batchid"], to_user, e["courseid"])))
                self.c["enrolment-sync-request-count"].inc()
        if self.s.assessment:
            for course_id, batch_id, content_id in contexts:
                out.append(pvalue.TaggedOutput(ASSESSMENT_TAG, M.assessment_recompute_event(
                    course_id, batch_id, to_user, content_id, now_ms)))
                self.c["assessment-recompute-request-count"].inc()
        return out


def _target(work: M.MergeWork) -> str:
    return work.request.to_user


class MergeCourses(beam.PTransform):
    """``PCollection[MergeWork]`` -> tagged outputs ``sync``, ``enrolment_sync``, ``assessment``, ``failed``.

    Requests are batched on the target account (``toAccountId.hashCode % shards``), so two copies
    of one request reach the same worker, which runs them one after the other. ``failed``
    records have the shared shape; the job turns them into the reference's
    (``pipelines.domain.merge.as_reference_failure``) together with its other failures.
    """

    def __init__(self, settings: MergeSettings, shards: int, batch_size: int, max_buffering_secs: float | None):
        super().__init__()
        self.settings, self.shards = settings, shards
        self.batch_size, self.max_buffering_secs = batch_size, max_buffering_secs

    def expand(self, works):
        return (
            works
            | "BatchByTarget" >> ShardedBatches(_target, self.shards, self.batch_size, self.max_buffering_secs)
            | "Merge" >> beam.ParDo(_MergeFn(self.settings)).with_outputs(
                SYNC_TAG, ENROLMENT_SYNC_TAG, ASSESSMENT_TAG, FAILED_TAG)
        )
