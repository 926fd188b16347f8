"""relation-cache-updater: its settings and the builder from reference keys (no own option group:
every key it reads belongs to the shared groups)."""

from __future__ import annotations

from dataclasses import dataclass

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.io.cassandra import CassandraConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.options.settings import cassandra_config, values


@dataclass(frozen=True)
class RelationCacheSettings:
    job_name: str
    cassandra: CassandraConfig  # keyspace: the hierarchy store's (lms-cassandra.keyspace)
    table: str  # lms-cassandra.table, content_hierarchy
    relation: RedisConfig  # redis.* (db redis.database.index, 10): the relation cache sets
    collection: RedisConfig  # dp-redis.* (db dp-redis.database.index, 5): the collection cache units


def relation_cache_settings(opts: PipelineOptions, job_name: str) -> RelationCacheSettings:
    """The reference's ``lms-cassandra.*``, ``redis.*`` and ``dp-redis.*`` keys, with its Redis
    connection timeout (``redisdb.connection.timeout``, 30 s)."""
    o = values(opts)
    timeout = int(o["redisdb_connection_timeout"]) / 1000.0
    return RelationCacheSettings(
        job_name=job_name,
        cassandra=cassandra_config(opts, o["lms_cassandra_keyspace"]),
        table=o["lms_cassandra_table"],
        relation=RedisConfig(host=o["redis_host"], port=int(o["redis_port"]), db=int(o["redis_database_index"]),
                             socket_timeout_secs=timeout),
        collection=RedisConfig(host=o["dp_redis_host"], port=int(o["dp_redis_port"]),
                               db=int(o["dp_redis_database_index"]), socket_timeout_secs=timeout),
    )
