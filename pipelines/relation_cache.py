"""relation-cache-updater: walks a published collection's hierarchy into the Redis caches.

    python -m pipelines.relation_cache --runner=FlinkRunner --flink_master=[local]    # Kafka -> Flink
    python -m pipelines.relation_cache --input events.jsonl --output_dir out/        # JSONL, DirectRunner

Reads ``<env>.content.postpublish.request`` (``kafka.input.topic``). For each post-publish /
relation-cache-update event of a collection (see ``classify_event``) it reads
``SELECT hierarchy FROM <lms-cassandra.keyspace>.<lms-cassandra.table> WHERE identifier = ?``
and writes, like the reference job:

* relation cache (``redis.host``/``redis.port``, db ``redis.database.index`` = 10), Redis sets
  without expiry: ``<collection>:<unit>:leafnodes``, ``<collection>:<unit>:optionalnodes``,
  ``<collection>:<content>:ancestors``;
* collection cache (``dp-redis.host``/``dp-redis.port``, db ``dp-redis.database.index`` = 5),
  strings without expiry: ``<unit id>`` -> JSON of each ``visibility: Parent`` unit.

Differences from the reference, all on purpose (the steps are in
``pipelines/transforms/relation_cache.py``):

* One Redis round trip per collection and cache (a pipeline), and the relation cache rewrite is a
  ``MULTI``/``EXEC`` transaction: the reference deletes and re-adds key by key, so a reader (the
  activity aggregator computing progress from ``leafnodes``) could see a key deleted half-way.
* Stale keys are removed: the keys written for a collection are remembered in the set
  ``lern-beam:relation-cache-keys:<collection>`` (same db), and a republish deletes the keys it
  no longer produces (a removed unit's ``leafnodes``, a removed content's ``ancestors``) in the
  same transaction, guarded by ``WATCH`` against a concurrent rewrite of the same collection.
  Keys written before this index existed (by the reference) cannot be known without scanning the
  whole db, so they are left alone. Collection cache entries are never deleted: that db is keyed
  by bare content ids and shared with other writers.
* Bad input never stops the job: unparsable events, requests without identifier, a hierarchy
  missing, empty or malformed in Cassandra, and Cassandra/Redis faults that persist after retries
  go to the failed topic (``kafka.output.failed.topic``, default ``<env>.relation.cache.failed``;
  the reference has none and restarts or skips instead) with a reason. Other events on the shared
  topic are skipped and counted, as in the reference.

* Progress follows the course (``recompute.enabled``, default true): a rewrite that changes the
  required contents of the course or of a unit writes a pending-recompute marker in the same
  transaction, and every enrolment of the course is then sent as a ``user-enrolment-sync``
  request to ``kafka.output.recompute.topic`` (enrolment-reconciliation's input,
  ``<env>.batch.enrolment.sync.request``), read page by page from ``user_enrolments`` in
  ``recompute.cassandra.keyspace``; the marker is cleared once they are written. An unchanged
  republish sends nothing. The reference leaves stored progress on the old tree until someone
  runs a sync by hand (docs/progress.md, "Recompute on republish").

Metrics, namespace ``relation-cache-updater`` (the reference's names): ``total-events-count``,
``success-events-count``, ``skipped-event-count``, ``failed-events-count``, ``db-read-count``,
``cache-write-count`` (keys written). Added: ``skipped-action-count`` and
``skipped-mimetype-count`` (why events were skipped), ``cache-stale-key-delete-count``, and for the
recompute ``course-changed-count`` (rewrites that set a marker), ``recompute-course-count``,
``recompute-request-count``, ``recompute-failed-count`` (courses whose requests could not be read:
not input events, so outside the input accounting), ``recompute-marker-cleared-count``.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain.cache_keys import KEY_INDEX_PREFIX, RECOMPUTE_PENDING_PREFIX
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.relation_cache import RecomputeOptions, relation_cache_settings
from pipelines.transforms.course_changes import ClearRecomputeMarkers, RecomputeChangedCourses
from pipelines.transforms.relation_cache import CountUnparsable, SelectCollectionRequests, UpdateRelationCache

JOB_NAME = "relation-cache-updater"
EXTRA_GROUPS = (RecomputeOptions,)
__all__ = ["EXTRA_GROUPS", "JOB_NAME", "KEY_INDEX_PREFIX", "RECOMPUTE_PENDING_PREFIX", "build", "defaults", "main"]


def defaults(env: str = "local") -> dict[str, Any]:
    """The reference conf (``relation-cache-updater.conf``) with ``sunbirddev`` replaced by the env.

    The failed topic is ours: the reference has none. So is the recompute topic, whose default
    (``recompute_topic``) is applied in ``build``: callers that run ``build`` without this job's
    option group (``EXTRA_GROUPS``) keep working.
    """
    return {
        "kafka.input.topic": f"{env}.content.postpublish.request",
        "kafka.groupId": f"{env}-relation-cache-updater-group",
        "kafka.output.failed.topic": f"{env}.relation.cache.failed",
        "task.consumer.parallelism": 1,
        "task.parallelism": 2,
        "lms-cassandra.keyspace": "dev_hierarchy_store",
        "lms-cassandra.table": "content_hierarchy",
        "redis.database.index": 10,
        "dp-redis.database.index": 5,
    }


def recompute_topic(o: dict[str, Any]) -> str:
    """``kafka.output.recompute.topic``, by default enrolment-reconciliation's input topic."""
    return o.get("kafka_output_recompute_topic") or f"{o['job_env']}.batch.enrolment.sync.request"


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    if o.get("from_cassandra"):
        raise ValueError(f"{JOB_NAME}: --from_cassandra is not supported; give --input or read Kafka")
    io = job.event_io(opts)
    settings = relation_cache_settings(opts, JOB_NAME, job.bounded(opts))
    events, unparsable = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME)
    requests, invalid = events | "SelectRequests" >> SelectCollectionRequests(JOB_NAME)
    cached, update_failed = requests | "UpdateRelationCache" >> UpdateRelationCache(settings)
    parse_failed = unparsable | "CountUnparsable" >> CountUnparsable(JOB_NAME)
    failures = [parse_failed, invalid, update_failed]
    if settings.recompute is not None:
        syncs, emitted, recompute_failed = cached | "RecomputeChangedCourses" >> RecomputeChangedCourses(
            settings.recompute)
        written = syncs | "WriteRecomputeRequests" >> WriteEvents(io, recompute_topic(o))
        emitted | "ClearRecomputeMarkers" >> ClearRecomputeMarkers(settings.recompute, after=written)
        failures.append(recompute_failed)
    tuple(failures) | "WriteFailures" >> WriteFailures(io, o["kafka_output_failed_topic"])


main = job.entrypoint(build, defaults, EXTRA_GROUPS)  # defaults follow --job_env / job.env


if __name__ == "__main__":
    sys.exit(main())
