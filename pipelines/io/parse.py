"""ParseEvents: raw records (Kafka values or JSONL lines) to event dicts, failures kept whole."""

from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from pipelines.domain.failures import FAILED_TAG, failed_event
from pipelines.io.codec import InvalidEvent, parse_event, payload_text
from pipelines.metrics import ACCOUNTING, INPUT_RECORDS, counter

DEFAULT_MAX_EVENT_BYTES = 1 << 20


class _ParseFn(beam.DoFn):
    def __init__(self, job_name: str, max_bytes: int, failed_metric: str):
        self.job_name = job_name
        self.max_bytes = max_bytes
        self.parsed = counter(job_name, "parsed-event-count")
        self.read = counter(ACCOUNTING, INPUT_RECORDS.split(":", 1)[1])
        self.failed = counter(job_name, failed_metric)

    def process(self, raw):
        self.read.inc()
        try:
            yield parse_event(raw, self.max_bytes)
            self.parsed.inc()
        except InvalidEvent as e:
            self.failed.inc()
            yield pvalue.TaggedOutput(
                FAILED_TAG, failed_event(self.job_name, str(e), raw=payload_text(raw), stage="parse"))


class ParseEvents(beam.PTransform):
    """Returns ``(events, failed)``: parsed dicts, and decorated failed records with the raw payload."""

    def __init__(self, job_name: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 failed_metric: str = "failed-event-count"):
        """``failed_metric``: the job's own name for its failure counter (reference names differ)."""
        super().__init__()
        self.job_name = job_name
        self.max_event_bytes = max_event_bytes
        self.failed_metric = failed_metric

    def expand(self, raw):
        fn = _ParseFn(self.job_name, self.max_event_bytes, self.failed_metric)
        out = raw | "Parse" >> beam.ParDo(fn).with_outputs(FAILED_TAG, main="events")
        return out.events, out[FAILED_TAG]
