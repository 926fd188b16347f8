"""DedupByMid and MarkSeen: Redis-backed duplicate filtering, the reference's DeDupEngine in bulk.

The reference checks ``EXISTS checksum`` before processing and ``SETEX checksum expiry ""``
only after the event's writes succeeded, so an event that failed half-way is retried on replay
instead of being lost as a "duplicate". We keep that order: ``DedupByMid`` only checks,
``MarkSeen`` (placed after the job's writes) records. Both talk to Redis once per batch with a
pipeline, not once per event.

Check-then-mark alone lets two copies of one event through when both are checked before either
is marked. So events are first sharded on their key (both copies reach the same worker, Flink
keeps a key group on one subtask) and each worker remembers the keys it let through recently.

A mark is written when the job's stores are written, but before its Kafka outputs are durable
(they are flushed when a bundle ends and committed with the next checkpoint). After a crash, Flink
replays every event since the last checkpoint; a strict check would drop the ones already marked
and their lost outputs would never be emitted. So in streaming a job passes ``replay_window_secs``
(longer than a checkpoint interval plus a recovery): a mark younger than that is a replay to let
through, since the job's writes are idempotent and its outputs carry deterministic ids. Marks
hold their time (``SET key <epoch ms>``); a mark without one (the reference writes ``""``) is
always a duplicate. Jobs whose effect must not repeat (notification sends) keep the window at 0.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from pipelines.io.redis_store import RedisClient, RedisConfig
from pipelines.metrics import counter
from pipelines.transforms.batching import ShardedBatches
from pipelines.transforms.failures import FAILED_TAG, fail

DUPLICATE_TAG = "duplicate"
KeyFn = Callable[[dict], "str | None"]


def mid_key(event: dict) -> str | None:
    mid = event.get("mid")
    return mid if isinstance(mid, str) and mid else None


class RecentKeys:
    """A bounded memory of keys already let through by this worker (oldest forgotten first)."""

    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)


def is_duplicate(mark: bytes | str | None, now_ms: int, replay_window_ms: int) -> bool:
    """Whether a stored mark makes an event a duplicate: any mark, unless it is younger than the
    replay window (then the event is a crash replay whose outputs may be lost: let it through)."""
    if mark is None:
        return False
    if replay_window_ms <= 0:
        return True
    text = mark.decode() if isinstance(mark, bytes) else mark
    if not text.isdigit():
        return True  # the reference's "" (or anything else): a duplicate, as it always was
    return now_ms - int(text) >= replay_window_ms


def split_batch(events: list[dict], key_fn: KeyFn, seen: list[bool], recent: RecentKeys) -> tuple[list, list, list]:
    """Pure: splits a batch into (unique, duplicates, keyless) given Redis EXISTS per keyed event.

    ``seen`` lines up with the keyed events in order. A key this worker already let through
    (earlier in the batch or in an earlier batch) is a duplicate too; ``recent`` is updated.
    """
    unique, dups, keyless = [], [], []
    keyed = iter(seen)
    for ev in events:
        key = key_fn(ev)
        if key is None:
            keyless.append(ev)
            continue
        if next(keyed) or key in recent:
            dups.append(ev)
        else:
            unique.append(ev)
            recent.add(key)
    return unique, dups, keyless


class _DedupFn(beam.DoFn):
    def __init__(self, cfg: RedisConfig, key_fn: KeyFn, job_name: str, pass_when_unavailable: bool,
                 source_fn: Callable[[Any], dict], replay_window_secs: float):
        self.cfg, self.key_fn, self.job_name = cfg, key_fn, job_name
        self.replay_window_ms = int(replay_window_secs * 1000)
        self.pass_when_unavailable, self.source_fn = pass_when_unavailable, source_fn
        self.unique = counter(job_name, "unique-event-count")
        self.duplicate = counter(job_name, "duplicate-event-count")
        self.keyless = counter(job_name, "dedup-no-key-count")
        self.failed = counter(job_name, "failed-event-count")
        self.unavailable = counter(job_name, "dedup-unavailable-count")
        self.replayed = counter(job_name, "dedup-replay-window-count")

    def setup(self):
        self.redis = RedisClient(self.cfg)
        self.recent = RecentKeys()

    def process(self, shard_batch: tuple[int, list[dict]]):
        _, batch = shard_batch
        keys = [k for k in (self.key_fn(e) for e in batch) if k is not None]
        try:
            marks = self.redis.call(lambda c: _get_all(c, keys), "dedup check") if keys else []
        except Exception as e:  # noqa: BLE001 - after retries
            if self.pass_when_unavailable:
                # The job's writes are idempotent without the store: checking is only an optimisation.
                self.unavailable.inc(len(batch))
                yield from batch
                return
            for ev in batch:
                self.failed.inc()
                yield fail(self.job_name, f"dedup store unavailable: {e}", self.source_fn(ev), stage="dedup")
            return
        now_ms = int(time.time() * 1000)
        seen = [is_duplicate(m, now_ms, self.replay_window_ms) for m in marks]
        self.replayed.inc(sum(1 for m, dup in zip(marks, seen, strict=True) if m is not None and not dup))
        unique, dups, keyless = split_batch(batch, self.key_fn, seen, self.recent)
        self.unique.inc(len(unique))
        self.duplicate.inc(len(dups))
        self.keyless.inc(len(keyless))
        # An event without a key cannot be deduplicated; it is processed (counted above), not dropped.
        yield from unique
        yield from keyless
        for ev in dups:
            yield pvalue.TaggedOutput(DUPLICATE_TAG, ev)

    def teardown(self):
        self.redis.close()


def _get_all(client, keys: list[str]) -> list:
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.get(k)
    return pipe.execute()


class DedupByMid(beam.PTransform):
    """``unique, duplicates, failed = events | DedupByMid(redis_cfg, job_name)``.

    ``redis_cfg.db`` is the reference's dedup store index; ``key_fn`` defaults to the event's
    ``mid`` (jobs with a computed checksum pass their own). When the store stays unreachable past
    its retries, a job whose writes are idempotent anyway passes ``pass_when_unavailable=True``
    (events go on, counted in ``dedup-unavailable-count``); otherwise they go to the failed output
    (``source_fn`` gives the original event of an element that is not one itself).
    """

    def __init__(self, cfg: RedisConfig, job_name: str, key_fn: KeyFn = mid_key, batch_size: int = 500,
                 shards: int = 16, max_buffering_secs: float | None = 1.0, pass_when_unavailable: bool = False,
                 source_fn: Callable[[Any], dict] = lambda e: e, replay_window_secs: float = 0.0):
        """``max_buffering_secs=None`` for bounded input (see ``ShardedBatches``)."""
        super().__init__()
        self.cfg, self.job_name, self.key_fn, self.batch_size = cfg, job_name, key_fn, batch_size
        self.shards, self.max_buffering_secs = shards, max_buffering_secs
        self.pass_when_unavailable, self.source_fn = pass_when_unavailable, source_fn
        self.replay_window_secs = replay_window_secs

    def expand(self, events):
        out = (
            events
            | "Batch" >> ShardedBatches(self.key_fn, self.shards, self.batch_size, self.max_buffering_secs)
            | "Check" >> beam.ParDo(_DedupFn(self.cfg, self.key_fn, self.job_name, self.pass_when_unavailable,
                                            self.source_fn, self.replay_window_secs)).with_outputs(
                DUPLICATE_TAG, FAILED_TAG, main="unique")
        )
        return out.unique, out[DUPLICATE_TAG], out[FAILED_TAG]


class _MarkFn(beam.DoFn):
    def __init__(self, cfg: RedisConfig, key_fn: KeyFn, expiry_secs: int, job_name: str):
        self.cfg, self.key_fn, self.expiry_secs = cfg, key_fn, expiry_secs
        self.mark_failed = counter(job_name, "dedup-mark-failed-count")

    def setup(self):
        self.redis = RedisClient(self.cfg)

    def process(self, batch: list[Any]):
        keys = [k for k in (self.key_fn(e) for e in batch) if k is not None]
        if keys:
            try:
                self.redis.call(lambda c: _setex_all(c, keys, self.expiry_secs), "dedup mark")
            except Exception:  # noqa: BLE001 - the events are processed; a replay may reprocess them
                self.mark_failed.inc(len(keys))
        yield from batch

    def teardown(self):
        self.redis.close()


def _setex_all(client, keys: list[str], expiry: int) -> None:
    now_ms = str(int(time.time() * 1000))
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.set(k, now_ms, ex=expiry)
    pipe.execute()


class MarkSeen(beam.PTransform):
    """Records processed events' keys (``SET key <epoch ms> EX expiry``) and passes the events on."""

    def __init__(self, cfg: RedisConfig, job_name: str, expiry_secs: int, key_fn: KeyFn = mid_key,
                 batch_size: int = 500):
        super().__init__()
        self.cfg, self.job_name, self.expiry_secs = cfg, job_name, expiry_secs
        self.key_fn, self.batch_size = key_fn, batch_size

    def expand(self, events):
        return (
            events
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.batch_size)
            | "Mark" >> beam.ParDo(_MarkFn(self.cfg, self.key_fn, self.expiry_secs, self.job_name))
        )
