"""lern-beam-smoke: the smallest real job, proving the streaming path end to end.

    python -m pipelines.smoke --runner=FlinkRunner --max_num_records=N      # Kafka -> Flink
    python -m pipelines.smoke --input events.jsonl --output_dir out/        # JSONL, DirectRunner

Events (any JSON object with a ``mid``) are read from ``<env>.lern.smoke.input``, deduplicated by
``mid`` in Redis, batched on a shard key with ``GroupIntoBatches``, written one row per event to
Cassandra ``lern_beam.smoke_event``, then emitted to ``<env>.lern.smoke.output``. Failures go to
``<env>.lern.smoke.failed``. It exercises every piece of shared plumbing the nine jobs use.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain.smoke import require_mid
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.settings import replay_window_secs
from pipelines.transforms.dedup import DedupByMid, MarkSeen
from pipelines.transforms.smoke_rows import WriteSmokeRows
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

JOB_NAME = "lern-beam-smoke"
KEYSPACE = "lern_beam"
VALIDATION = ValidationMetrics(failed="failed-event-count", skipped=None, total=None)


def defaults(env: str = "local") -> dict[str, Any]:
    return {
        "kafka_input_topic": f"{env}.lern.smoke.input",
        "kafka_output_topic": f"{env}.lern.smoke.output",
        "kafka_output_failed_topic": f"{env}.lern.smoke.failed",
        "kafka_groupid": f"{env}-lern-beam-smoke-group",
        "kafka_auto_offset_reset": "earliest",
    }


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    redis_cfg = job.dedup_redis_config(opts)
    buffering = None if io.batch else 1.0
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME)
    valid, invalid = events | "RequireMid" >> ValidateEvents(JOB_NAME, require_mid, VALIDATION)
    unique, _duplicates, dedup_failed = valid | "Dedup" >> DedupByMid(
        redis_cfg, JOB_NAME, max_buffering_secs=buffering, replay_window_secs=replay_window_secs(opts))
    written, write_failed = unique | "WriteRows" >> WriteSmokeRows(
        job.cassandra_config(opts, KEYSPACE), JOB_NAME, o["task_window_shards"], o["threshold_batch_read_size"],
        buffering)
    done = written | "MarkSeen" >> MarkSeen(redis_cfg, JOB_NAME, o["dedup_redis_database_expiry"])
    done | "WriteOut" >> WriteEvents(io, o["kafka_output_topic"])
    (parse_failed, invalid, dedup_failed, write_failed) | "WriteFailures" >> WriteFailures(
        io, o["kafka_output_failed_topic"])


main = job.entrypoint(build, defaults())


if __name__ == "__main__":
    sys.exit(main())
