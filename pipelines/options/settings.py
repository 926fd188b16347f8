"""Options -> the config objects every job family hands to its clients.

The settings builder of each family lives beside it (``options/progress.py``, ...); these are the
pieces they all share: the flat option values, where events come from and go to, and the
Cassandra and dedup-Redis connections, all read from reference keys.
"""

from __future__ import annotations

from typing import Any

from apache_beam.options.pipeline_options import (
    DirectOptions,
    FlinkRunnerOptions,
    PipelineOptions,
    StandardOptions,
)

from pipelines.io.cassandra import CassandraConfig
from pipelines.io.events import EventIO, KafkaConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.options.groups import BatchIOOptions


def dead_letter_outages(opts: PipelineOptions) -> bool:
    """Batch runs dead-letter what a store outage stopped; streaming ones wait it out (restart)."""
    return not opts.view_as(StandardOptions).streaming


_DIRECT_RUNNERS = frozenset({"directrunner", "direct", "switchingdirectrunner", "testdirectrunner", "fnapirunner"})


def is_flink(opts: PipelineOptions) -> bool:
    """FlinkRunner, embedded or the cluster submission ``pipelines.runner`` swaps in for it."""
    runner = opts.view_as(StandardOptions).runner or ""
    return runner in ("FlinkRunner", "flink") or runner.endswith(".ClusterFlinkRunner")


def bounded_grouping(opts: PipelineOptions) -> str:
    """How a bounded run's ``ShardedBatches`` cut their batches: ``"bundle"`` or ``"shuffle"``.

    Batches cut from a bundle as it streams past hold nothing but the open batches, but they keep
    one learner's events in one worker only if the runner runs one bundle at a time: a one-worker
    DirectRunner (its stages are fused and run in turn) or FlinkRunner at parallelism 1 (one
    subtask per step; ``task.parallelism`` is 1 by default). With parallel workers a
    ``GroupByKey`` on the shard key keeps each shard on one worker. ``--bounded_grouping``
    overrides the choice."""
    choice = opts.view_as(BatchIOOptions).bounded_grouping or "auto"
    if choice != "auto":
        return choice
    if is_flink(opts):
        one_at_a_time = opts.view_as(FlinkRunnerOptions).parallelism == 1
    else:
        runner = opts.view_as(StandardOptions).runner or "DirectRunner"
        name = (runner if isinstance(runner, str) else type(runner).__name__).lower()
        one_at_a_time = name in _DIRECT_RUNNERS and opts.view_as(DirectOptions).direct_num_workers == 1
    return "bundle" if one_at_a_time else "shuffle"


def replay_window_secs(opts: PipelineOptions) -> float:
    """How long after a dedup mark or a completion a replay is taken for a crash replay (whose
    outputs may be lost) and let through or re-emitted: 0 in batch; in streaming
    ``--replay_window_secs``, by default three checkpoint intervals plus five minutes of recovery."""
    if dead_letter_outages(opts):
        return 0.0
    o = values(opts)
    if o.get("replay_window_secs") is not None:
        return float(o["replay_window_secs"])
    return 3 * int(o["task_checkpointing_interval"]) / 1000 + 300


def values(opts: PipelineOptions) -> dict[str, Any]:
    """Every option of the job, defaults included, by destination name."""
    return opts.get_all_options(drop_default=False)


def event_io(opts: PipelineOptions) -> EventIO:
    o = values(opts)
    kafka = KafkaConfig(
        bootstrap_servers=o["kafka_broker_servers"],
        group_id=o.get("kafka_groupid"),
        auto_offset_reset=o.get("kafka_auto_offset_reset"),
        expansion_service=o["expansion_service"],
        max_num_records=o.get("max_num_records"),
        max_read_time_secs=o.get("max_read_time_secs"),
        start_read_time_ms=o.get("start_read_time_ms"),
        producer_overrides={
            "linger.ms": str(o["kafka_producer_linger_ms"]),
            "batch.size": str(o["kafka_producer_batch_size"]),
            "compression.type": str(o["kafka_producer_compression_type"]),
            "max.request.size": str(o["kafka_producer_max_request_size"]),
        },
    )
    return EventIO(kafka=kafka, input=o.get("input"), output_dir=o.get("output_dir"))


def cassandra_config(opts: PipelineOptions, keyspace: str | None = None) -> CassandraConfig:
    o = values(opts)
    hosts = tuple(h.strip() for h in str(o["lms_cassandra_host"]).split(",") if h.strip())
    return CassandraConfig(hosts=hosts, port=int(o["lms_cassandra_port"]),
                           keyspace=keyspace or o["lms_cassandra_keyspace"],
                           consistency=o["lms_cassandra_consistency"])


def dedup_redis_config(opts: PipelineOptions) -> RedisConfig:
    o = values(opts)
    return RedisConfig(host=o["dedup_redis_host"], port=int(o["dedup_redis_port"]),
                       db=int(o["dedup_redis_database_index"]))
