"""Bounded concurrent calls inside a DoFn, for steps that wait on HTTP services.

The certificate generator spends nearly all its time waiting on Sunbird RC, the user service and
the notification service (five calls per certificate), one certificate after another. Different
certificates are independent, and their exactly-once guards (claim LWTs, compare-and-set of
``issued_certificates``) already hold between concurrent workers, so a worker can have several in
flight: ``BatchElements`` gathers the elements of a bundle and ``map_concurrently`` runs the
element handler over a batch on a small thread pool, yielding the outputs in input order.

Beam counts metrics only on the thread that runs the bundle, so a handler counts through a
``Tally``: increments made on a pool thread are collected with its outputs and applied on the
bundle thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pipelines.metrics import counter


class Tally:
    """``tally.inc(name)``: a job counter that may be incremented from pool threads."""

    def __init__(self, job_name: str, names: Iterable[str]):
        self.counters = {name: counter(job_name, name) for name in names}
        self._local = threading.local()

    def inc(self, name: str, n: int = 1) -> None:
        pending = getattr(self._local, "pending", None)
        if pending is None:
            self.counters[name].inc(n)
        else:
            pending[name] += n

    def collect(self, handler: Callable[[Any], Iterable], item: Any) -> tuple[list, Counter]:
        """Runs ``handler(item)`` on this (pool) thread; returns its outputs and its increments."""
        self._local.pending = Counter()
        try:
            return list(handler(item)), self._local.pending
        finally:
            self._local.pending = None

    def apply(self, pending: Counter) -> None:
        for name, n in pending.items():
            self.counters[name].inc(n)


def map_concurrently(pool: ThreadPoolExecutor, tally: Tally, handler: Callable[[Any], Iterable],
                     items: Iterable) -> Iterator:
    """Every item's outputs, in input order, with at most the pool's size of handlers running.
    A handler's exception fails the bundle, as it would without the pool."""
    futures = [pool.submit(tally.collect, handler, item) for item in items]
    for future in futures:
        outputs, pending = future.result()
        tally.apply(pending)
        yield from outputs
