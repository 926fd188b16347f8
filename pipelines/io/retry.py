"""Retry with exponential backoff for transient store and HTTP faults.

The reference retries a Redis read once and a Cassandra read forever; neither is what an operator
wants. Here every external call gets a bounded number of attempts with backoff, and the caller
decides what a final failure means (usually: the event goes to the failed output with the reason).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class RetriesExhausted(RuntimeError):
    """A bulk call whose transient faults outlasted the retry policy."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    initial_backoff_secs: float = 0.2
    max_backoff_secs: float = 5.0
    multiplier: float = 2.0

    def delays(self) -> list[float]:
        """Sleep before attempt 2..n, with +-20% jitter so workers do not retry in lockstep."""
        out, d = [], self.initial_backoff_secs
        for _ in range(max(0, self.attempts - 1)):
            out.append(min(d, self.max_backoff_secs) * random.uniform(0.8, 1.2))
            d *= self.multiplier
        return out


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    transient: tuple[type[BaseException], ...],
    what: str = "call",
    on_retry: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Calls ``fn`` until it succeeds or ``policy.attempts`` transient failures happened.

    Non-transient exceptions propagate at once: retrying a bad request only delays its failure.
    ``on_retry`` runs before each new attempt (for example to reconnect).
    """
    delays = policy.delays()
    for attempt in range(policy.attempts):
        try:
            return fn()
        except transient as e:
            if attempt >= len(delays):
                raise
            log.warning("%s failed (attempt %d/%d): %s", what, attempt + 1, policy.attempts, e)
            sleep(delays[attempt])
            if on_retry is not None:
                on_retry(e)
    raise AssertionError("unreachable")
