"""Recompute on republish: a changed course's enrolments become ``user-enrolment-sync`` requests.

    cached course ids --RecomputeChangedCourses--> sync requests --> enrolment-reconciliation's topic
                                \\--> (course, marker token) --ClearRecomputeMarkers (after the write)
                                \\--> failed

``UpdateRelationCache`` writes the pending-recompute marker ``lern-beam:recompute-pending:<course>``
in the same ``MULTI``/``EXEC`` as a rewrite that changed the course's required contents
(``pipelines/transforms/relation_cache.py``). Here, for every course it has just cached:

1. the marker is read; no marker, nothing to do (an unchanged republish emits nothing);
2. ``course_batch`` is read (one partition): a collection without batches has no enrolments, so
   a textbook or a course nobody can join costs no scan;
3. the course's enrolments are read with the token-range scan of ``pipelines.io.enrolment_scan``
   (its ``scan_tasks``/``pages``/``matches``: a course selection filtered on the replica, page by
   page), and each becomes ``pipelines.domain.progress.sync_request``: what
   enrolment-reconciliation consumes. Nothing but one page is held; the requests stream out;
4. ``(course, token)`` goes on to ``ClearRecomputeMarkers``, which deletes the marker only if it
   still holds that token (a newer change keeps its own) and only after the requests were written:
   in a bounded run after the output files exist (a side input on the write), in streaming one
   buffered stage later (checkpointed state flushed in a later bundle, as the progress jobs confirm
   completions; docs/progress.md).

A crash anywhere before 4 leaves the marker: the next time the course passes through the job
(the replayed event after a restart, a republish, a ``relation-cache-update`` request) its
requests go out again. Extra requests are harmless: a recompute is idempotent, never lowers a
completed enrolment and completes one exactly once (enrolment-reconciliation's LWT).

The scan of one course runs in one DoFn call, its token ranges one after the other. The cost
that matters is downstream (one recompute per enrolment in enrolment-reconciliation, which
spreads them over its shards); the scan itself streams at the store's read rate
(bench/README.md, "Recompute on republish").
"""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam import pvalue

from pipelines.domain.cache_keys import recompute_pending_key
from pipelines.domain.hierarchy import relation_cache_request
from pipelines.domain.progress import EnrolmentKey, sync_request
from pipelines.io.cassandra import CassandraClient
from pipelines.io.enrolment_scan import KEY_COLUMNS, matches, pages, scan_tasks
from pipelines.io.redis_store import RedisClient
from pipelines.metrics import counter
from pipelines.options.relation_cache import RecomputeSettings
from pipelines.transforms.batching import ShardedBatches
from pipelines.transforms.failures import FAILED_TAG, fail, raise_outage
from pipelines.transforms.relation_cache import cql_name, redis_bytes

EMITTED_TAG = "emitted"
COURSES, REQUESTS, FAILED = "recompute-course-count", "recompute-request-count", "recompute-failed-count"
CLEARED, CLEAR_FAILED = "recompute-marker-cleared-count", "recompute-marker-clear-failed-count"
CLEAR_IF_TOKEN = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
"""Compare-and-delete: a marker rewritten by a newer change (another token) is left for its own emission."""
log = logging.getLogger(__name__)


class _EmitRecomputeFn(beam.DoFn):
    """Course id -> a sync request per enrolment when its marker is pending, then ``(course, token)``."""

    def __init__(self, s: RecomputeSettings):
        self.s = s
        ks = cql_name(s.cassandra.keyspace)
        self.table = f"{ks}.{cql_name(s.enrolments_table)}"
        self.batches_cql = f"SELECT batchid FROM {ks}.{cql_name(s.batches_table)} WHERE courseid = ? LIMIT 1"
        self.courses = counter(s.job_name, COURSES)
        self.requests = counter(s.job_name, REQUESTS)
        self.failed = counter(s.job_name, FAILED)

    def setup(self):
        self.db = CassandraClient(self.s.cassandra)
        self.redis = RedisClient(self.s.relation)

    def teardown(self):
        self.db.close()
        self.redis.close()

    def process(self, course_id: str):
        try:
            token = self.redis.call(lambda c: c.get(redis_bytes(recompute_pending_key(course_id))),
                                    "recompute marker read")
            if token is None:
                return
            has_batches = bool(self.db.execute(self.batches_cql, (course_id,)))
            sel = (course_id, None, None)
            if has_batches:
                for cql, params in scan_tasks(self.table, sel, KEY_COLUMNS, self.s.scan.ranges):
                    for page in pages(self.db, cql, params, self.s.scan.page_size):
                        selected = [row for row in page if matches(row, sel)]
                        self.requests.inc(len(selected))
                        for row in selected:
                            yield sync_request(EnrolmentKey(row.userid, row.courseid, row.batchid))
        except Exception as e:  # noqa: BLE001 - the marker stays: a replay or republish re-drives it
            raise_outage(e, self.s.bounded)
            self.failed.inc()
            log.warning("%s: recompute of %s failed: %s", self.s.job_name, course_id, e)
            yield fail(self.s.job_name, f"recompute requests for course {course_id} failed: {e} (the pending "
                                        "marker is kept; re-drive with this relation-cache-update request)",
                       relation_cache_request(course_id), stage="recompute")
            return
        self.courses.inc()
        log.info("%s: %s changed: enrolments re-requested%s", self.s.job_name, course_id,
                 "" if has_batches else " (none: the course has no batch)")
        yield pvalue.TaggedOutput(EMITTED_TAG, (course_id, token.decode()))


class RecomputeChangedCourses(beam.PTransform):
    """``requests, emitted, failed = course_ids | RecomputeChangedCourses(settings)``.

    ``requests``: one ``user-enrolment-sync`` request per enrolment of every course whose
    pending-recompute marker is set; ``emitted``: ``(course, marker token)`` once a course's
    requests are all out, for ``ClearRecomputeMarkers``; ``failed``: a ``relation-cache-update``
    request per course whose recompute could not be read (bounded runs; streaming fails the bundle).
    """

    def __init__(self, settings: RecomputeSettings):
        super().__init__()
        self.settings = settings

    def expand(self, course_ids):
        out = course_ids | "EmitRequests" >> beam.ParDo(_EmitRecomputeFn(self.settings)).with_outputs(
            EMITTED_TAG, FAILED_TAG, main="requests")
        return out.requests, out[EMITTED_TAG], out[FAILED_TAG]


class _ClearMarkerFn(beam.DoFn):
    def __init__(self, s: RecomputeSettings):
        self.s = s
        self.cleared = counter(s.job_name, CLEARED)
        self.clear_failed = counter(s.job_name, CLEAR_FAILED)

    def setup(self):
        self.redis = RedisClient(self.s.relation)

    def teardown(self):
        self.redis.close()

    def process(self, emitted: tuple[str, str], *_after):
        """Yields nothing; returns a list so Beam does not warn about a missing iterator."""
        course_id, token = emitted
        key = redis_bytes(recompute_pending_key(course_id))
        try:
            deleted = self.redis.call(lambda c: c.eval(CLEAR_IF_TOKEN, 1, key, token), "recompute marker clear")
        except Exception as e:  # noqa: BLE001 - a marker left behind only re-sends the requests later
            raise_outage(e, self.s.bounded)
            self.clear_failed.inc()
            log.warning("%s: pending recompute marker of %s not cleared: %s", self.s.job_name, course_id, e)
            return []
        self.cleared.inc(int(bool(deleted)))
        return []


class ClearRecomputeMarkers(beam.PTransform):
    """``emitted | ClearRecomputeMarkers(settings, after=written)``: deletes each course's marker
    if it still holds the token, once the requests are written.

    ``after`` is what the request sink returned. A PCollection (a bounded run's output files) is
    taken as a side input, so no marker is cleared before the files exist. Otherwise (Kafka) the
    pairs are held one buffered stage (``ShardedBatches``: checkpointed state, flushed in a later
    bundle than the one that emitted the requests).
    """

    def __init__(self, settings: RecomputeSettings, after=None):
        super().__init__()
        self.settings, self.after = settings, after

    def expand(self, emitted):
        clear = _ClearMarkerFn(self.settings)
        if isinstance(self.after, beam.PCollection):
            return emitted | "Clear" >> beam.ParDo(clear, beam.pvalue.AsList(self.after))
        return (emitted
                | "Hold" >> ShardedBatches(lambda kv: kv[0], 1, 100, None if self.settings.bounded else 1.0)
                | "Unbatch" >> beam.FlatMap(lambda shard_batch: shard_batch[1])
                | "Clear" >> beam.ParDo(clear))
