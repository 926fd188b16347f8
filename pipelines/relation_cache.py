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

Differences from the reference, all on purpose:

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

import logging
import re
import sys
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from pipelines import job
from pipelines.domain.failures import FAILED_TAG, failed_event
from pipelines.domain.hierarchy import (
    CacheEntries,
    HierarchyError,
    cache_entries,
    classify_event,
    parse_hierarchy,
)
from pipelines.io.cassandra import CassandraClient, CassandraConfig
from pipelines.io.events import ReadEvents, WriteEvents
from pipelines.io.redis_store import RedisClient, RedisConfig
from pipelines.metrics import counter

JOB_NAME = "relation-cache-updater"
KEY_INDEX_PREFIX = "lern-beam:relation-cache-keys:"
log = logging.getLogger(__name__)

TOTAL, SUCCESS, FAILED, SKIPPED = ("total-events-count", "success-events-count", "failed-events-count",
                                   "skipped-event-count")
DB_READ, CACHE_WRITE, STALE_DELETE = "db-read-count", "cache-write-count", "cache-stale-key-delete-count"


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


def cql_name(name: str) -> str:
    """A keyspace/table name for CQL: as is when lower-case, else quoted (case-sensitive), like
    the reference's QueryBuilder. Anything that is not an identifier is refused."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,47}", name or ""):
        raise ValueError(f"not a Cassandra identifier: {name!r}")
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else f'"{name}"'


def select_hierarchy(keyspace: str, table: str) -> str:
    return f"SELECT hierarchy FROM {cql_name(keyspace)}.{cql_name(table)} WHERE identifier = ?"


def redis_bytes(s: str) -> bytes:
    """UTF-8 as Jedis writes it: an unpaired surrogate becomes ``?`` instead of an error."""
    return s.encode("utf-8", errors="replace")


def key_index(root_id: str) -> bytes:
    return redis_bytes(KEY_INDEX_PREFIX + root_id)


def rewrite_relation_cache(client, root_id: str, sets: dict[str, list[str]]) -> int:
    """Replaces the collection's relation keys in one WATCHed MULTI/EXEC; returns stale keys deleted.

    Every key is deleted and re-added (the reference's ``del`` + ``sadd``), so the result depends
    on the hierarchy only. Keys listed in the collection's index but not produced now are deleted.
    """
    index = key_index(root_id)
    new = {redis_bytes(k): [redis_bytes(m) for m in members] for k, members in sets.items()}

    def txn(pipe) -> int:
        stale = set(pipe.smembers(index)) - new.keys()
        pipe.multi()
        if stale:
            pipe.delete(*stale)
        for key, members in new.items():
            pipe.delete(key)
            pipe.sadd(key, *members)
        pipe.delete(index)
        if new:
            pipe.sadd(index, *new)
        return len(stale)

    return client.transaction(txn, index, value_from_callable=True)


def write_units(client, units: dict[str, str]) -> None:
    """``SET unit json`` for every unit, in one pipeline (each SET is atomic on its own)."""
    if not units:
        return
    pipe = client.pipeline(transaction=False)
    for unit, text in units.items():
        pipe.set(redis_bytes(unit), redis_bytes(text))
    pipe.execute()


class SelectRequests(beam.DoFn):
    """Counts every event and keeps the collection requests as ``(collection id, event)``."""

    def __init__(self):
        self.total = counter(JOB_NAME, TOTAL)
        self.skipped = counter(JOB_NAME, SKIPPED)
        self.failed = counter(JOB_NAME, FAILED)

    def process(self, event: dict):
        self.total.inc()
        decision = classify_event(event)
        if decision.outcome == "process":
            yield decision.value, event
        elif decision.outcome == "skip":
            self.skipped.inc()
            counter(JOB_NAME, f"skipped-{decision.value}-count").inc()
        else:
            self.failed.inc()
            yield pvalue.TaggedOutput(FAILED_TAG, failed_event(JOB_NAME, decision.value, event, stage="validate"))


class CountUnparsable(beam.DoFn):
    """Records that never became events are input too: counted in total and failed."""

    def __init__(self):
        self.total = counter(JOB_NAME, TOTAL)
        self.failed = counter(JOB_NAME, FAILED)

    def process(self, failed: dict):
        self.total.inc()
        self.failed.inc()
        yield failed


class UpdateRelationCache(beam.DoFn):
    """Fetches one collection's hierarchy, computes its cache entries, writes both caches."""

    def __init__(self, cassandra: CassandraConfig, keyspace: str, table: str, relation: RedisConfig,
                 collection: RedisConfig):
        self.cassandra, self.relation_cfg, self.collection_cfg = cassandra, relation, collection
        self.query = select_hierarchy(keyspace, table)
        self.where = f"{keyspace}.{table}"
        self.success = counter(JOB_NAME, SUCCESS)
        self.failed = counter(JOB_NAME, FAILED)
        self.db_read = counter(JOB_NAME, DB_READ)
        self.cache_write = counter(JOB_NAME, CACHE_WRITE)
        self.stale_delete = counter(JOB_NAME, STALE_DELETE)

    def setup(self):
        self.db = CassandraClient(self.cassandra)
        self.relation = RedisClient(self.relation_cfg)
        self.collection = RedisClient(self.collection_cfg)

    def _fail(self, reason: str, event: dict, stage: str):
        self.failed.inc()
        log.warning("%s: %s", JOB_NAME, reason)
        return pvalue.TaggedOutput(FAILED_TAG, failed_event(JOB_NAME, reason, event, stage=stage))

    def process(self, request: tuple[str, dict]):
        root_id, event = request
        try:
            rows = self.db.execute(self.query, (root_id,))
        except Exception as e:  # noqa: BLE001 - after retries the event is dead-lettered, not lost
            yield self._fail(f"cassandra read of {self.where} failed: {e}", event, "read")
            return
        self.db_read.inc()
        if not rows:
            yield self._fail(f"hierarchy not found: no row in {self.where} for identifier {root_id}", event, "read")
            return
        try:
            entries: CacheEntries = cache_entries(root_id, parse_hierarchy(rows[0].hierarchy))
        except HierarchyError as e:
            yield self._fail(f"{e} (identifier {root_id})", event, "hierarchy")
            return
        except RecursionError:
            yield self._fail(f"hierarchy nested too deeply (identifier {root_id})", event, "hierarchy")
            return
        try:
            stale = self.relation.call(lambda c: rewrite_relation_cache(c, root_id, entries.sets),
                                       "relation cache write")
            self.collection.call(lambda c: write_units(c, entries.units), "collection cache write")
        except Exception as e:  # noqa: BLE001 - a replay rewrites everything, so dead-lettering is safe
            yield self._fail(f"redis write failed: {e}", event, "write")
            return
        self.stale_delete.inc(stale)
        self.cache_write.inc(len(entries.sets) + len(entries.units))
        self.success.inc()
        log.info("%s: %s cached (%d relation keys, %d units, %d stale removed)", JOB_NAME, root_id,
                 len(entries.sets), len(entries.units), stale)

    def teardown(self):
        self.db.close()
        self.relation.close()
        self.collection.close()


def redis_configs(opts) -> tuple[RedisConfig, RedisConfig]:
    """(relation cache, collection cache): the reference's ``redis.*`` and ``dp-redis.*`` keys,
    with its connection timeout (``redisdb.connection.timeout``, 30 s)."""
    o = job.values(opts)
    timeout = int(o["redisdb_connection_timeout"]) / 1000.0
    relation = RedisConfig(host=o["redis_host"], port=int(o["redis_port"]), db=int(o["redis_database_index"]),
                           socket_timeout_secs=timeout)
    collection = RedisConfig(host=o["dp_redis_host"], port=int(o["dp_redis_port"]),
                             db=int(o["dp_redis_database_index"]), socket_timeout_secs=timeout)
    return relation, collection


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    if o.get("from_cassandra"):
        raise ValueError(f"{JOB_NAME}: --from_cassandra is not supported; give --input or read Kafka")
    io = job.event_io(opts)
    keyspace, table = o["lms_cassandra_keyspace"], o["lms_cassandra_table"]
    relation, collection = redis_configs(opts)

    events, unparsable = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME)
    requests = events | "SelectRequests" >> beam.ParDo(SelectRequests()).with_outputs(FAILED_TAG, main="ok")
    updated = requests.ok | "UpdateRelationCache" >> beam.ParDo(UpdateRelationCache(
        job.cassandra_config(opts, keyspace), keyspace, table, relation, collection)).with_outputs(
        FAILED_TAG, main="done")
    parse_failed = unparsable | "CountUnparsable" >> beam.ParDo(CountUnparsable())
    failed = (parse_failed, requests[FAILED_TAG], updated[FAILED_TAG]) | "Failed" >> beam.Flatten()
    failed | "WriteFailed" >> WriteEvents(io, o["kafka_output_failed_topic"])


def main(argv=None) -> int:
    job.setup_logging()
    job.run(build, argv, defaults)  # defaults follow --job_env / job.env
    return 0


if __name__ == "__main__":
    sys.exit(main())
