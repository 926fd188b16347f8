"""Failure routing: how a DoFn sends a record to its job's failed output.

The record itself is built by ``pipelines.domain.failures.failed_event``; ``fail`` wraps it in
the tagged output every job flattens into its failed topic, so no DoFn builds either by hand.
"""

from __future__ import annotations

from apache_beam import pvalue

from pipelines.domain.failures import FAILED_TAG, failed_event

__all__ = ["FAILED_TAG", "fail"]


def fail(job_name: str, reason: str, event: dict | None = None, *, raw: str | None = None,
         stage: str | None = None, src: str | None = None) -> pvalue.TaggedOutput:
    """The failed-output element for ``event`` (or an unparsable ``raw`` payload) with ``reason``."""
    return pvalue.TaggedOutput(FAILED_TAG, failed_event(job_name, reason, event, raw=raw, stage=stage, src=src))
