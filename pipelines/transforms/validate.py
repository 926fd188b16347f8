"""ValidateEvents: the one "event -> work items, skip, or fail" step every job starts with.

A job hands it a pure parser from its domain module. The parser returns the work items of an
event (usually one; activity splits an event into one per completed content), or
``(items, ignored)`` when parts of a valid event are left out (counted under ``ignored``); it
raises ``Skip`` for an event that is not for the job (counted under the skip's own ``metric``
when it names one), or ``InvalidRequest`` (or a subclass) for one that is but cannot be
processed. Each outcome is counted under the job's own reference metric names; failures go to
the failed output with the original event kept whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from pipelines.domain.errors import InvalidRequest, Skip
from pipelines.metrics import counter
from pipelines.transforms.failures import FAILED_TAG, fail

Parser = Callable[[dict], Iterable[Any] | tuple[Iterable[Any], int]]


@dataclass(frozen=True)
class ValidationMetrics:
    """The job's reference names for each outcome; ``None`` leaves that outcome uncounted."""

    failed: str
    skipped: str | None = "skipped-events-count"
    total: str | None = "total-events-count"
    valid: str | None = None
    ignored: str | None = None


class _ValidateFn(beam.DoFn):
    def __init__(self, job_name: str, parse: Parser, metrics: ValidationMetrics):
        self.job_name, self.parse = job_name, parse
        self.counters = {outcome: counter(job_name, name) for outcome, name in vars(metrics).items() if name}

    def _inc(self, outcome: str, n: int = 1) -> None:
        if outcome in self.counters and n:
            self.counters[outcome].inc(n)

    def _count_skip(self, skip: Skip) -> None:
        self._inc("skipped")
        if skip.metric is not None:
            if skip.metric not in self.counters:
                self.counters[skip.metric] = counter(self.job_name, skip.metric)
            self.counters[skip.metric].inc()

    def process(self, event: dict):
        self._inc("total")
        try:
            parsed = self.parse(event)
        except Skip as skip:
            self._count_skip(skip)
            return
        except InvalidRequest as e:
            self._inc("failed")
            yield fail(self.job_name, str(e), event, stage="validate")
            return
        items, ignored = parsed if isinstance(parsed, tuple) else (parsed, 0)
        self._inc("valid")
        self._inc("ignored", ignored)
        yield from items


class ValidateEvents(beam.PTransform):
    """``valid, failed = events | ValidateEvents(job_name, parse, metrics)``."""

    def __init__(self, job_name: str, parse: Parser, metrics: ValidationMetrics):
        super().__init__()
        self.job_name, self.parse, self.metrics = job_name, parse, metrics

    def expand(self, events):
        out = events | "Validate" >> beam.ParDo(
            _ValidateFn(self.job_name, self.parse, self.metrics)).with_outputs(FAILED_TAG, main="valid")
        return out.valid, out[FAILED_TAG]
