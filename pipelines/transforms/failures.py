"""Failure routing: how a DoFn sends a record to its job's failed output, and when it must not.

The record itself is built by ``pipelines.domain.failures.failed_event``; ``fail`` wraps it in
the tagged output every job flattens into its failed topic, so no DoFn builds either by hand.

A store or service outage is not the event's fault. In a batch run the event is dead-lettered
with the reason (``lern-replay-failed`` re-drives it later); in streaming, ``raise_outage`` fails
the bundle instead, after the client's retries, so Flink's restart strategy restarts the job
from its last checkpoint and the event is processed when the store is back. Good events are
never dead-lettered because a store blinked.
"""

from __future__ import annotations

import requests
from apache_beam import pvalue

from pipelines.domain.failures import FAILED_TAG, failed_event
from pipelines.io.cassandra import TRANSIENT as CASSANDRA_TRANSIENT
from pipelines.io.http import TransientHttpError
from pipelines.io.rc import RCUnavailable
from pipelines.io.redis_store import TRANSIENT as REDIS_TRANSIENT
from pipelines.io.retry import RetriesExhausted

__all__ = ["FAILED_TAG", "OUTAGES", "StoreUnavailable", "fail", "raise_outage"]

OUTAGES = (*CASSANDRA_TRANSIENT, *REDIS_TRANSIENT, TransientHttpError, requests.ConnectionError, requests.Timeout,
           RCUnavailable, RetriesExhausted)
"""What a client raises once its retries are spent on a fault of the store or service itself."""


class StoreUnavailable(Exception):
    """A store or service still down after the retries: the streaming bundle fails, Flink restarts."""


def raise_outage(error: BaseException, dead_letter: bool) -> None:
    """Raises ``StoreUnavailable`` for an outage unless the run dead-letters them (batch)."""
    if dead_letter:
        return
    cause: BaseException | None = error
    while cause is not None:  # a typed client error may wrap the outage
        if isinstance(cause, OUTAGES):
            raise StoreUnavailable(f"{type(error).__name__}: {error}") from error
        cause = cause.__cause__


def fail(job_name: str, reason: str, event: dict | None = None, *, raw: str | None = None,
         stage: str | None = None, src: str | None = None) -> pvalue.TaggedOutput:
    """The failed-output element for ``event`` (or an unparsable ``raw`` payload) with ``reason``."""
    return pvalue.TaggedOutput(FAILED_TAG, failed_event(job_name, reason, event, raw=raw, stage=stage, src=src))
