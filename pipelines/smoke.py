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
from apache_beam import pvalue

from pipelines import job
from pipelines.domain.failures import FAILED_TAG, failed_event
from pipelines.io.cassandra import CassandraClient, CassandraConfig
from pipelines.io.codec import dumps
from pipelines.io.events import ReadEvents, WriteEvents
from pipelines.metrics import counter
from pipelines.transforms.batching import ShardedBatches
from pipelines.transforms.dedup import DedupByMid, MarkSeen, mid_key

JOB_NAME = "lern-beam-smoke"
KEYSPACE = "lern_beam"
INSERT = ("INSERT INTO smoke_event (mid, shard, payload, batch_size, processed_on) "
          "VALUES (?, ?, ?, ?, toTimestamp(now()))")


def defaults(env: str = "local") -> dict[str, Any]:
    return {
        "kafka_input_topic": f"{env}.lern.smoke.input",
        "kafka_output_topic": f"{env}.lern.smoke.output",
        "kafka_output_failed_topic": f"{env}.lern.smoke.failed",
        "kafka_groupid": f"{env}-lern-beam-smoke-group",
        "kafka_auto_offset_reset": "earliest",
    }


def output_event(event: dict, shard: int, batch_size: int) -> dict:
    return {"eid": "LERN_BEAM_SMOKE", "mid": event.get("mid"), "shard": shard, "batchSize": batch_size,
            "edata": event}


class WriteRows(beam.DoFn):
    """One Cassandra row per event, the whole batch as concurrent prepared inserts."""

    def __init__(self, cfg: CassandraConfig):
        self.cfg = cfg
        self.written = counter(JOB_NAME, "db-write-count")
        self.failed = counter(JOB_NAME, "failed-event-count")

    def setup(self):
        self.db = CassandraClient(self.cfg)

    def process(self, shard_batch: tuple[int, list[dict]]):
        shard, batch = shard_batch
        try:
            self.db.execute_many(INSERT, [(e["mid"], shard, dumps(e), len(batch)) for e in batch])
        except Exception as e:  # noqa: BLE001 - after retries the batch is dead-lettered, not lost
            for ev in batch:
                self.failed.inc()
                yield pvalue.TaggedOutput(FAILED_TAG, failed_event(JOB_NAME, f"cassandra write: {e}", ev,
                                                                   stage="write"))
            return
        self.written.inc(len(batch))
        for ev in batch:
            yield output_event(ev, shard, len(batch))

    def teardown(self):
        self.db.close()


def require_mid(event: dict):
    if mid_key(event) is None:
        counter(JOB_NAME, "failed-event-count").inc()
        yield pvalue.TaggedOutput(FAILED_TAG, failed_event(JOB_NAME, "missing or non-string mid", event,
                                                           stage="validate"))
    else:
        yield event


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    redis_cfg = job.dedup_redis_config(opts)
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME)
    valid = events | "RequireMid" >> beam.FlatMap(require_mid).with_outputs(FAILED_TAG, main="ok")
    buffering = None if io.batch else 1.0
    unique, _duplicates, dedup_failed = valid.ok | "Dedup" >> DedupByMid(
        redis_cfg, JOB_NAME, max_buffering_secs=buffering)
    written = (
        unique
        | "Shard" >> ShardedBatches(mid_key, o["task_window_shards"], o["threshold_batch_read_size"],
                                    max_buffering_secs=buffering)
        | "WriteRows" >> beam.ParDo(WriteRows(job.cassandra_config(opts, KEYSPACE))).with_outputs(
            FAILED_TAG, main="out")
    )
    done = written.out | "MarkSeen" >> MarkSeen(redis_cfg, JOB_NAME, o["dedup_redis_database_expiry"])
    done | "WriteOut" >> WriteEvents(io, o["kafka_output_topic"])
    failed = (parse_failed, valid[FAILED_TAG], dedup_failed, written[FAILED_TAG]) | "Failed" >> beam.Flatten()
    failed | "WriteFailed" >> WriteEvents(io, o["kafka_output_failed_topic"])


def main(argv=None) -> int:
    job.setup_logging()
    job.run(job.importable(build), argv, defaults())
    return 0


if __name__ == "__main__":
    sys.exit(main())
