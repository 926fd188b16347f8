"""ShardedBatches: group events into store-sized batches on the reference's shard key.

The reference windows events by ``userId.hashCode % window.shards`` and flushes a window at
``threshold.batch.read.size`` or on a timer. ``GroupIntoBatches`` with a processing-time
``max_buffering_duration_secs`` does both in Beam, so nothing waits for a full batch, and it is
a keyed stateful DoFn, which avoids the plain-GroupByKey-after-ReadFromKafka stall (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import apache_beam as beam

from pipelines.domain.javafmt import java_string_hash


def shard_of(key: str, shards: int) -> int:
    """The reference's ``key.hashCode % shards``: Java's remainder, negative for negative hashes.

    It is only a grouping key, so the sign does not matter, but matching the reference keeps
    batch composition (and therefore store load) the same.
    """
    h = java_string_hash(key)
    r = abs(h) % shards
    return -r if h < 0 else r


def chunks(shard_events: tuple[int, Iterable[dict]], size: int) -> Iterator[tuple[int, list[dict]]]:
    shard, events = shard_events
    batch: list[dict] = []
    for ev in events:
        batch.append(ev)
        if len(batch) >= size:
            yield shard, batch
            batch = []
    if batch:
        yield shard, batch


class ShardedBatches(beam.PTransform):
    """``events -> PCollection[(shard, list[event])]`` in batches of at most ``batch_size``.

    Streaming (``max_buffering_secs`` set): ``GroupIntoBatches``, flushed by size or by a
    processing-time timer. Bounded input (``max_buffering_secs=None``): ``GroupByKey`` then
    fixed-size chunks, because any ``GroupIntoBatches`` declares a real-time timer, which pushes
    DirectRunner off its FnApi path onto the bundle-based runner, which then fails on it.
    """

    def __init__(self, key_fn: Callable[[dict], str], shards: int, batch_size: int,
                 max_buffering_secs: float | None = 1.0):
        super().__init__()
        self.key_fn, self.shards = key_fn, max(1, shards)
        self.batch_size, self.max_buffering_secs = batch_size, max_buffering_secs

    def expand(self, events):
        shards, key_fn, size = self.shards, self.key_fn, self.batch_size
        keyed = events | "ShardKey" >> beam.Map(lambda e: (shard_of(key_fn(e) or "", shards), e))
        if self.max_buffering_secs:
            return keyed | "Batch" >> beam.GroupIntoBatches(size, max_buffering_duration_secs=self.max_buffering_secs)
        return keyed | "Group" >> beam.GroupByKey() | "Chunk" >> beam.FlatMap(chunks, size)
