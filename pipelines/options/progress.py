"""The progress family's settings (activity-aggregate-updater, enrolment-reconciliation), from reference keys."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.io.cassandra import CassandraConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.io.retry import RetryPolicy
from pipelines.options.settings import cassandra_config, dead_letter_outages, replay_window_secs, values


@dataclass(frozen=True)
class ProgressSettings:
    job_name: str
    cassandra: CassandraConfig
    relation_cache: RedisConfig
    search_base_url: str
    tables: dict[str, str]
    module_aggs: bool = True
    filter_processed: bool = True
    status_cache_secs: int = 3600
    http_timeout_secs: float = 10.0
    write_consumption: bool = True  # activity: yes; recompute from stored rows: nothing new to write
    applied_ttl_secs: int = 604800  # dedup-redis.database.expiry: the reference's dedup window
    store_retry: RetryPolicy = RetryPolicy()
    dead_letter_outages: bool = True  # batch: yes; streaming: fail so Flink restarts from a checkpoint
    replay_window_secs: float = 0.0  # streaming: how long a replayed completion re-emits its outputs


STREAMING_STORE_RETRY = RetryPolicy(attempts=12, initial_backoff_secs=0.5, max_backoff_secs=30.0)
"""A streaming job waits a store outage out: about three and a half minutes of backoff before the
bundle fails and Flink's restart strategy takes over (restoring from the last checkpoint)."""


def progress_settings(opts, job_name: str, write_consumption: bool) -> ProgressSettings:
    """The settings both progress jobs build from their options (reference keys)."""
    o = values(opts)
    batch = dead_letter_outages(opts)
    return ProgressSettings(
        job_name=job_name,
        cassandra=cassandra_config(opts),
        # Reference DataCache: the relation cache lives on redis.host, db redis.database.relationCache.id.
        relation_cache=RedisConfig(host=o["redis_host"], port=int(o["redis_port"]),
                                   db=int(o["redis_database_relationcache_id"])),
        search_base_url=o["service_search_basepath"],
        tables={"consumption": o["lms_cassandra_consumption_table"],
                "enrolments": o["lms_cassandra_user_enrolments_table"],
                "activity_agg": o["lms_cassandra_user_activity_agg_table"],
                "applied": o["lms_cassandra_consumption_applied_table"]},
        module_aggs=bool(o["activity_module_aggs_enabled"]),
        filter_processed=bool(o["activity_filter_processed_enrolments"]),
        status_cache_secs=int(o["activity_collection_status_cache_expiry"]),
        http_timeout_secs=float(o["http_timeout_secs"]),
        write_consumption=write_consumption,
        applied_ttl_secs=int(o["dedup_redis_database_expiry"]),
        store_retry=RetryPolicy() if batch else STREAMING_STORE_RETRY,
        dead_letter_outages=batch,
        replay_window_secs=replay_window_secs(opts),
    )
