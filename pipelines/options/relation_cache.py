"""relation-cache-updater: its option group (the recompute on republish, lern-beam's own keys), its
settings and the builder from reference keys (the cache keys it writes belong to the shared groups)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.io.cassandra import CassandraConfig
from pipelines.io.enrolment_scan import ScanSettings, scan_settings
from pipelines.io.redis_store import RedisConfig
from pipelines.options.fields import parse_bool, ref_option
from pipelines.options.settings import cassandra_config, values


class RecomputeOptions(PipelineOptions):
    """relation-cache-updater's recompute on republish (lern-beam keys; the reference has none)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "recompute.enabled", default=True, type=parse_bool,
                   help="When a republish changes the required contents of a course or unit, send a "
                        "user-enrolment-sync request for every enrolment of the course (docs/progress.md, "
                        "'Recompute on republish'). false: rewrite the caches only, as the reference does.")
        ref_option(parser, "recompute.cassandra.keyspace", default="sunbird_courses",
                   help="Keyspace of user_enrolments and course_batch (lms-cassandra.keyspace is the "
                        "hierarchy store's in this job).")
        ref_option(parser, "kafka.output.recompute.topic", default=None,
                   help="Topic of the recompute requests: enrolment-reconciliation's input, "
                        "<env>.batch.enrolment.sync.request, by default.")


@dataclass(frozen=True)
class RecomputeSettings:
    """Where a changed course's enrolments are read and how the scan is cut."""

    job_name: str
    cassandra: CassandraConfig  # keyspace: recompute.cassandra.keyspace (sunbird_courses)
    enrolments_table: str  # lms-cassandra.user_enrolments.table
    batches_table: str  # lms-cassandra.course_batch.table
    relation: RedisConfig  # the relation cache db, where the pending markers live
    scan: ScanSettings = ScanSettings()  # --scan_token_ranges, --scan_page_size
    bounded: bool = True  # batch: dead-letter a store fault; streaming: fail so Flink restarts from a checkpoint


@dataclass(frozen=True)
class RelationCacheSettings:
    job_name: str
    cassandra: CassandraConfig  # keyspace: the hierarchy store's (lms-cassandra.keyspace)
    table: str  # lms-cassandra.table, content_hierarchy
    relation: RedisConfig  # redis.* (db redis.database.index, 10): the relation cache sets
    collection: RedisConfig  # dp-redis.* (db dp-redis.database.index, 5): the collection cache units
    recompute: RecomputeSettings | None = None  # None: no change detection, no recompute requests


def relation_cache_settings(opts: PipelineOptions, job_name: str, bounded: bool = True) -> RelationCacheSettings:
    """The reference's ``lms-cassandra.*``, ``redis.*`` and ``dp-redis.*`` keys, with its Redis
    connection timeout (``redisdb.connection.timeout``, 30 s), and lern-beam's ``recompute.*``."""
    o = values(opts)
    timeout = int(o["redisdb_connection_timeout"]) / 1000.0
    relation = RedisConfig(host=o["redis_host"], port=int(o["redis_port"]), db=int(o["redis_database_index"]),
                           socket_timeout_secs=timeout)
    recompute = None
    if o.get("recompute_enabled", True):
        recompute = RecomputeSettings(
            job_name=job_name,
            cassandra=cassandra_config(opts, o.get("recompute_cassandra_keyspace") or "sunbird_courses"),
            enrolments_table=o["lms_cassandra_user_enrolments_table"],
            batches_table=o["lms_cassandra_course_batch_table"],
            relation=relation, scan=scan_settings(o), bounded=bounded)
    return RelationCacheSettings(
        job_name=job_name,
        cassandra=cassandra_config(opts, o["lms_cassandra_keyspace"]),
        table=o["lms_cassandra_table"],
        relation=relation,
        collection=RedisConfig(host=o["dp_redis_host"], port=int(o["dp_redis_port"]),
                               db=int(o["dp_redis_database_index"]), socket_timeout_secs=timeout),
        recompute=recompute,
    )
