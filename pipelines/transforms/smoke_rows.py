"""WriteSmokeRows: lern-beam-smoke's store step, the shared plumbing in its smallest form.

Events are batched on their ``mid`` (``ShardedBatches``), each batch is written as concurrent
prepared inserts, one row per event, and the written events come out wrapped with their shard and
batch size; a batch the store refuses after retries goes to the failed output, event by event.
"""

from __future__ import annotations

import apache_beam as beam

from pipelines.domain.smoke import output_event
from pipelines.io.cassandra import CassandraClient, CassandraConfig
from pipelines.io.codec import dumps
from pipelines.metrics import counter
from pipelines.transforms.batching import ShardedBatches
from pipelines.transforms.dedup import mid_key
from pipelines.transforms.failures import FAILED_TAG, fail

INSERT = ("INSERT INTO smoke_event (mid, shard, payload, batch_size, processed_on) "
          "VALUES (?, ?, ?, ?, toTimestamp(now()))")


class _WriteRowsFn(beam.DoFn):
    def __init__(self, cfg: CassandraConfig, job_name: str):
        self.cfg, self.job_name = cfg, job_name
        self.written = counter(job_name, "db-write-count")
        self.failed = counter(job_name, "failed-event-count")

    def setup(self):
        self.db = CassandraClient(self.cfg)

    def process(self, shard_batch: tuple[int, list[dict]]):
        shard, batch = shard_batch
        try:
            self.db.execute_many(INSERT, [(e["mid"], shard, dumps(e), len(batch)) for e in batch])
        except Exception as e:  # noqa: BLE001 - after retries the batch is dead-lettered, not lost
            for ev in batch:
                self.failed.inc()
                yield fail(self.job_name, f"cassandra write: {e}", ev, stage="write")
            return
        self.written.inc(len(batch))
        for ev in batch:
            yield output_event(ev, shard, len(batch))

    def teardown(self):
        self.db.close()


class WriteSmokeRows(beam.PTransform):
    """``written, failed = events | WriteSmokeRows(cassandra_cfg, job_name, shards, batch_size, buffering)``."""

    def __init__(self, cfg: CassandraConfig, job_name: str, shards: int, batch_size: int,
                 max_buffering_secs: float | None):
        super().__init__()
        self.cfg, self.job_name = cfg, job_name
        self.shards, self.batch_size, self.max_buffering_secs = shards, batch_size, max_buffering_secs

    def expand(self, events):
        out = (
            events
            | "Shard" >> ShardedBatches(mid_key, self.shards, self.batch_size, self.max_buffering_secs)
            | "Write" >> beam.ParDo(_WriteRowsFn(self.cfg, self.job_name)).with_outputs(FAILED_TAG, main="out")
        )
        return out.out, out[FAILED_TAG]
