"""merge-user-courses: copy one account's course history into another when two accounts merge.

    python -m pipelines.merge_courses --runner=FlinkRunner [--config merge-user-courses.conf]
    python -m pipelines.merge_courses --input requests.jsonl --output_dir out/

Reads account-merge requests (``<env>.lms.user.account.merge``, ``edata.fromAccountId`` ->
``edata.toAccountId``) and, per request and in this order: merges the content consumption rows,
the course ``completedCount`` aggregates, migrates the enrolments the target lacks, copies the
assessment attempts; then emits, for every enrolment of the target, the reference's
``batch-enrolment-sync`` event (``<env>.coursebatch.job.request``) and the ``user-enrolment-sync``
request enrolment-reconciliation consumes (``<env>.batch.enrolment.sync.request``), so the
target's progress, completion and certificates are recomputed; and, per course batch with
copied attempts, an assessment recompute request (``<env>.telemetry.assess``).

A merge is idempotent: a Redis journal of the target's pre-merge rows makes a re-run after a
crash write the same values, and a done-marker written last turns a repeated request into a
no-op that only re-emits the requests. docs/merge.md has the rules, the fixed reference
weaknesses and the metrics.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import job
from pipelines.domain import merge as M
from pipelines.domain.failures import FAILED_TAG, failed_event
from pipelines.io.cassandra import CassandraClient, CassandraConfig
from pipelines.io.events import ReadEvents, WriteEvents
from pipelines.io.redis_store import RedisClient, RedisConfig
from pipelines.metrics import counter
from pipelines.options.fields import parse_bool, ref_option
from pipelines.transforms.batching import ShardedBatches

JOB_NAME = "merge-user-courses"
FAILED_METRIC = "failed-events-count"
SYNC_TAG, ENROLMENT_SYNC_TAG, ASSESSMENT_TAG = "sync", "enrolment_sync", "assessment"
log = logging.getLogger(__name__)


class MergeCoursesOptions(PipelineOptions):
    """merge-user-courses: date format, recompute requests, assessment merge, idempotency markers."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "course.date.format", default=M.DEFAULT_DATE_FORMAT,
                   help="Java SimpleDateFormat pattern of the text date columns of user_content_consumption "
                        "(lastaccesstime, lastcompletedtime, lastupdatedtime); the later of two dates wins.")
        ref_option(parser, "task.course_batch_updater.parallelism", default=1, type=int,
                   help="Parallelism of the sync-event sink (accepted for compatibility; Beam sizes its own "
                        "stages).")
        ref_option(parser, "kafka.output.enrolment.sync.topic", default=None,
                   help="Topic of the user-enrolment-sync requests (enrolment-reconciliation's input); the job "
                        "supplies <env>.batch.enrolment.sync.request. Not a reference key.")
        ref_option(parser, "merge.enrolment.sync.enabled", default=True, type=parse_bool,
                   help="Emit a user-enrolment-sync request per enrolment of the target account, so its "
                        "progress, completion and certificates are recomputed. The reference only emitted "
                        "batch-enrolment-sync events, which no job acts on. Not a reference key.")
        ref_option(parser, "merge.assessment.enabled", default=True, type=parse_bool,
                   help="Copy the source account's assessment_aggregator attempts to the target and ask "
                        "assessment-aggregator to recompute the target's scores. Not a reference key.")
        ref_option(parser, "kafka.output.assessment.recompute.topic", default=None,
                   help="Topic of the assessment recompute requests (assessment-aggregator's input); the job "
                        "supplies <env>.telemetry.assess. Not a reference key.")
        ref_option(parser, "merge.action.strict", default=True, type=parse_bool,
                   help="Fail requests whose edata.action is not merge-user-courses-and-cert (false: accept any "
                        "action, as the reference did). Not a reference key.")
        ref_option(parser, "merge.marker.expiry", default=0, type=int,
                   help="Seconds a merge's done-marker is kept in the marker store (dedup-redis.*); 0 keeps it "
                        "for ever, so a repeated request never merges twice. Not a reference key.")
        ref_option(parser, "merge.journal.expiry", default=604800, type=int,
                   help="Seconds a merge's journal (the target's rows before the merge) is kept, i.e. how "
                        "long a crashed merge can be re-run exactly. Not a reference key.")


EXTRA_GROUPS = (MergeCoursesOptions,)


def defaults(env: str) -> dict[str, Any]:
    """The deployment's topics and group for ``job.env`` (the packaged conf's ``__env__`` names)."""
    return {
        "kafka.input.topic": f"{env}.lms.user.account.merge",
        "kafka.output.failed.topic": f"{env}.learning.events.failed",
        "kafka.output.course.batch.updater.topic": f"{env}.coursebatch.job.request",
        "kafka.output.enrolment.sync.topic": f"{env}.batch.enrolment.sync.request",
        "kafka.output.assessment.recompute.topic": f"{env}.telemetry.assess",
        "kafka.groupId": f"{env}-merge-courses-group",
    }


def merge_failure(reason: str, event: dict | None = None, raw: str | None = None, stage: str | None = None,
                  ) -> dict[str, Any]:
    """The failed-topic record: the reference's ``jobName`` and ``failInfo.{errorCode,error}``
    (§3.6), plus the shared decoration and the original event kept whole."""
    out = failed_event(M.REFERENCE_JOB_NAME, reason, event, raw=raw, stage=stage, src=JOB_NAME)
    out["failInfo"] = {"errorCode": "DATA_ERROR", **out["failInfo"]}
    return out


def as_reference_failure(record: dict[str, Any]) -> dict[str, Any]:
    """A parse failure from ``ReadEvents`` in the same shape as the job's own failures."""
    out = dict(record)
    out["jobName"] = M.REFERENCE_JOB_NAME
    out["failInfo"] = {"errorCode": "DATA_ERROR", **(record.get("failInfo") or {})}
    return out


@dataclass(frozen=True)
class MergeWork:
    request: M.MergeRequest
    event: dict


class ValidateMerge(beam.DoFn):
    """Merge request -> ``MergeWork``; skips and invalid requests go to the failed output."""

    def __init__(self, strict_action: bool):
        self.strict_action = strict_action
        self.total = counter(JOB_NAME, "total-events-count")
        self.skipped = counter(JOB_NAME, "skipped-event-count")
        self.failed = counter(JOB_NAME, FAILED_METRIC)
        self.known_action = counter(JOB_NAME, "merge-action-count")
        self.unknown_action = counter(JOB_NAME, "unknown-action-count")

    def process(self, event: dict):
        self.total.inc()
        edata = event.get("edata")
        if isinstance(edata, dict) and edata:
            (self.known_action if edata.get("action") == M.MERGE_ACTION else self.unknown_action).inc()
        try:
            req = M.parse_merge_request(event, self.strict_action)
        except M.Skip as e:
            # Reference: counted as skipped and given a failed JSON (which it never sank). Here the
            # record reaches the failed topic, with the reference's error code and the reason.
            self.skipped.inc()
            yield pvalue.TaggedOutput(FAILED_TAG, merge_failure(f"{M.SKIP_ERROR}: {e}", event, stage="validate"))
            return
        except M.InvalidRequest as e:
            self.failed.inc()
            yield pvalue.TaggedOutput(FAILED_TAG, merge_failure(str(e), event, stage="validate"))
            return
        yield MergeWork(req, event)


@dataclass(frozen=True)
class MergeSettings:
    cassandra: CassandraConfig
    markers: RedisConfig
    tables: dict[str, str]
    date_format: str = M.DEFAULT_DATE_FORMAT
    enrolment_sync: bool = True
    assessment: bool = True
    marker_expiry_secs: int = 0
    journal_expiry_secs: int = 604800


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
    """Runs the merge steps of each request in order, behind the journal/done-marker guard."""

    METRICS = ("success-events-count", FAILED_METRIC, "db-update-user-course-batch", "already-merged-event-count",
               "enrolment-sync-request-count", "assessment-recompute-request-count", "consumption-merged-count",
               "consumption-copied-count", "case-insensitive-match-count", "activity-agg-updated-count",
               "enrolment-migrated-count", "assessment-attempt-copied-count", "db-read-count", "db-update-count")

    def __init__(self, s: MergeSettings):
        self.s = s
        self.c = {name: counter(JOB_NAME, name) for name in self.METRICS}

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

    def _merge(self, work: MergeWork):
        self.step = "read"
        try:
            outputs = self._run(work.request, work.event)
        except Exception as e:  # noqa: BLE001 - after retries: dead-letter with the reason, never crash
            log.warning("merge %s -> %s failed at %s: %s", work.request.from_user, work.request.to_user,
                        self.step, e)
            self.c[FAILED_METRIC].inc()
            yield pvalue.TaggedOutput(FAILED_TAG, merge_failure(f"merge failed at step {self.step}: {e}",
                                                                work.event, stage=self.step))
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


class MergeUserCourses(beam.PTransform):
    """``PCollection[MergeWork]`` -> tagged outputs ``sync``, ``enrolment_sync``, ``assessment``, ``failed``.

    Requests are batched on the target account (``toAccountId.hashCode % shards``), so two copies
    of one request reach the same worker, which runs them one after the other.
    """

    def __init__(self, settings: MergeSettings, shards: int, batch_size: int, max_buffering_secs: float | None):
        super().__init__()
        self.settings, self.shards = settings, shards
        self.batch_size, self.max_buffering_secs = batch_size, max_buffering_secs

    def expand(self, works):
        return (
            works
            | "BatchByTarget" >> ShardedBatches(lambda w: w.request.to_user, self.shards, self.batch_size,
                                                self.max_buffering_secs)
            | "Merge" >> beam.ParDo(_MergeFn(self.settings)).with_outputs(
                SYNC_TAG, ENROLMENT_SYNC_TAG, ASSESSMENT_TAG, FAILED_TAG)
        )


def merge_settings(opts) -> MergeSettings:
    o = job.values(opts)
    date_format = o["course_date_format"]
    try:
        M.check_date_format(date_format)
    except ValueError as e:
        raise SystemExit(f"course.date.format: {e}") from None
    return MergeSettings(
        cassandra=job.cassandra_config(opts),
        markers=job.dedup_redis_config(opts),
        tables={"consumption": o["lms_cassandra_content_consumption_table"],
                "enrolments": o["lms_cassandra_user_enrolments_table"],
                "activity_agg": o["lms_cassandra_user_activity_agg_table"],
                "assessment": o["lms_cassandra_assessment_aggregator_table"]},
        date_format=date_format,
        enrolment_sync=bool(o["merge_enrolment_sync_enabled"]),
        assessment=bool(o["merge_assessment_enabled"]),
        marker_expiry_secs=int(o["merge_marker_expiry"]),
        journal_expiry_secs=int(o["merge_journal_expiry"]),
    )


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    settings = merge_settings(opts)
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
    valid = events | "Validate" >> beam.ParDo(ValidateMerge(bool(o["merge_action_strict"]))).with_outputs(
        FAILED_TAG, main="work")
    out = valid.work | "MergeUserCourses" >> MergeUserCourses(
        settings, o["task_window_shards"], o["threshold_batch_read_size"], None if job.bounded(opts) else 1.0)
    out[SYNC_TAG] | "WriteSync" >> WriteEvents(io, o["kafka_output_course_batch_updater_topic"])
    if settings.enrolment_sync:
        out[ENROLMENT_SYNC_TAG] | "WriteEnrolmentSync" >> WriteEvents(io, o["kafka_output_enrolment_sync_topic"])
    if settings.assessment:
        out[ASSESSMENT_TAG] | "WriteAssessment" >> WriteEvents(io, o["kafka_output_assessment_recompute_topic"])
    failures = (parse_failed | "AsReferenceFailure" >> beam.Map(as_reference_failure), valid[FAILED_TAG],
                out[FAILED_TAG])
    failures | "Failures" >> beam.Flatten() | "WriteFailed" >> WriteEvents(io, o["kafka_output_failed_topic"])


def run(argv=None) -> dict[str, int]:
    return job.run(build, argv, defaults, extra_groups=EXTRA_GROUPS)


def main(argv=None) -> int:
    job.setup_logging()
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
