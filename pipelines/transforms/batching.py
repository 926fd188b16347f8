"""ShardedBatches: group events into store-sized batches on the reference's shard key.

The reference windows events by ``userId.hashCode % window.shards`` and flushes a window at
``threshold.batch.read.size`` or on a timer. ``GroupIntoBatches`` with a processing-time
``max_buffering_duration_secs`` does both in Beam, so nothing waits for a full batch, and it is
a keyed stateful DoFn, which avoids the plain-GroupByKey-after-ReadFromKafka stall (DESIGN.md).

A bounded run has no timer to wait for. On a runner that runs one bundle at a time it cuts the
batches from each bundle as the events stream past (nothing held but the open batches, so a
backfill's memory does not grow with its input); elsewhere it groups on the shard key first
(``options.settings.bounded_grouping``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from pipelines.domain.javafmt import java_string_hash
from pipelines.options.settings import bounded_grouping


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


class BatchInBundle(beam.DoFn):
    """``(shard, event) -> (shard, [event, ...])``: batches of at most ``size`` per shard, cut from
    one bundle in arrival order; each shard's last batch is flushed when the bundle ends.

    Bounded runs only (the batches are emitted in the global window)."""

    def __init__(self, size: int):
        self.size = size

    def start_bundle(self) -> None:
        self._open: dict[int, list] = {}

    def process(self, keyed: tuple[int, dict]) -> Iterator[tuple[int, list]]:
        shard, event = keyed
        batch = self._open.setdefault(shard, [])
        batch.append(event)
        if len(batch) >= self.size:
            del self._open[shard]
            yield shard, batch

    def finish_bundle(self) -> Iterator:
        open_batches, self._open = self._open, {}
        for shard, batch in open_batches.items():
            yield GlobalWindows.windowed_value((shard, batch))


class ShardedBatches(beam.PTransform):
    """``events -> PCollection[(shard, list[event])]`` in batches of at most ``batch_size``.

    Streaming (``max_buffering_secs`` set): ``GroupIntoBatches``, flushed by size or by a
    processing-time timer. Bounded input (``max_buffering_secs=None``): no ``GroupIntoBatches``,
    because it declares a real-time timer, which pushes DirectRunner off its FnApi path onto the
    bundle-based runner, which then fails on it. Instead ``BatchInBundle`` where the runner runs
    one bundle at a time, else ``GroupByKey`` then fixed-size chunks (module docstring).
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
        if bounded_grouping(events.pipeline.options) == "bundle":
            return keyed | "BatchInBundle" >> beam.ParDo(BatchInBundle(size))
        return keyed | "Group" >> beam.GroupByKey() | "Chunk" >> beam.FlatMap(chunks, size)
