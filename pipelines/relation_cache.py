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

Metrics, namespace ``relation-cache-updater`` (the reference's names): ``total-events-count``,
``success-events-count``, ``skipped-event-count``, ``failed-events-count``, ``db-read-count``,
``cache-write-count`` (keys written). Added: ``skipped-action-count`` and
``skipped-mimetype-count`` (why events were skipped), ``cache-stale-key-delete-count``.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.io.events import ReadEvents, WriteFailures
from pipelines.options.relation_cache import relation_cache_settings
from pipelines.transforms.relation_cache import (
    KEY_INDEX_PREFIX,
    CountUnparsable,
    SelectCollectionRequests,
    UpdateRelationCache,
)

JOB_NAME = "relation-cache-updater"
__all__ = ["JOB_NAME", "KEY_INDEX_PREFIX", "build", "defaults", "main"]


def defaults(env: str = "local") -> dict[str, Any]:
    """The reference conf (``relation-cache-updater.conf``) with ``sunbirddev`` replaced by the env.

    The failed topic is ours: the reference has none.
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


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    if o.get("from_cassandra"):
        raise ValueError(f"{JOB_NAME}: --from_cassandra is not supported; give --input or read Kafka")
    io = job.event_io(opts)
    settings = relation_cache_settings(opts, JOB_NAME)
    events, unparsable = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME)
    requests, invalid = events | "SelectRequests" >> SelectCollectionRequests(JOB_NAME)
    _cached, update_failed = requests | "UpdateRelationCache" >> UpdateRelationCache(settings)
    parse_failed = unparsable | "CountUnparsable" >> CountUnparsable(JOB_NAME)
    (parse_failed, invalid, update_failed) | "WriteFailures" >> WriteFailures(io, o["kafka_output_failed_topic"])


main = job.entrypoint(build, defaults)  # defaults follow --job_env / job.env


if __name__ == "__main__":
    sys.exit(main())
