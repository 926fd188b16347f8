"""ReadEvents / WriteEvents: the same PCollection[dict] from Kafka (streaming) or JSONL (batch).

A job never knows where its events come from: ``--input`` selects JSONL files, otherwise the job
reads its reference topic through Beam's Java ``ReadFromKafka`` (a cross-language transform, see
docs/streaming.md). Outputs go to ``<output_dir>/<topic>.jsonl`` in batch mode, or to the topic.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam import coders
from apache_beam.io import ReadFromText
from apache_beam.io.kafka import ReadFromKafka, WriteToKafka

from pipelines.io.codec import dumps
from pipelines.io.jsonl import WriteJsonl
from pipelines.io.parse import DEFAULT_MAX_EVENT_BYTES, ParseEvents
from pipelines.metrics import ACCOUNTING, FAILED_RECORDS, counter

BYTES = "org.apache.kafka.common.serialization.ByteArrayDeserializer"


@dataclass(frozen=True)
class KafkaConfig:
    """Broker-side settings shared by every topic of a job (reference ``kafka.*`` keys)."""

    bootstrap_servers: str = "localhost:9092"
    group_id: str | None = None
    auto_offset_reset: str | None = None
    expansion_service: str = "localhost:8097"
    max_num_records: int | None = None
    max_read_time_secs: int | None = None
    start_read_time_ms: int | None = None
    producer_overrides: dict[str, str] = field(default_factory=dict)

    def consumer_config(self) -> dict[str, str]:
        # Same consumer semantics as the reference: read_committed, and auto.offset.reset only
        # when configured. Offsets move only when a Flink checkpoint completes (KafkaIO commits
        # them on finalize): the consumer's own periodic auto-commit would mark records consumed
        # while their work is still buffered in state that a crash can lose.
        cfg = {"bootstrap.servers": self.bootstrap_servers, "isolation.level": "read_committed",
               "enable.auto.commit": "false"}
        if self.group_id:
            cfg["group.id"] = self.group_id
        if self.auto_offset_reset:
            cfg["auto.offset.reset"] = self.auto_offset_reset
        return cfg

    def producer_config(self) -> dict[str, str]:
        # The reference producer: at-least-once, linger 10 ms, 64 KiB batches, snappy.
        return {"bootstrap.servers": self.bootstrap_servers, "linger.ms": "10", "batch.size": "65536",
                "compression.type": "snappy", "acks": "all", **self.producer_overrides}


@dataclass(frozen=True)
class EventIO:
    """Where a job's events come from and go to; built from the job's options."""

    kafka: KafkaConfig = KafkaConfig()
    input: str | None = None
    output_dir: str | None = None
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES

    @property
    def batch(self) -> bool:
        return self.input is not None


class ReadEvents(beam.PTransform):
    """``events, failed = p | ReadEvents(io, topic, job_name)``."""

    def __init__(self, io: EventIO, topic: str, job_name: str, failed_metric: str = "failed-event-count"):
        super().__init__()
        self.io, self.topic, self.job_name, self.failed_metric = io, topic, job_name, failed_metric

    def expand(self, pbegin):
        if self.io.batch:
            # Bytes, not text: a line that is not UTF-8 must reach ParseEvents (and the failed
            # output), not fail the read.
            raw = pbegin | "ReadJsonl" >> ReadFromText(self.io.input, coder=coders.BytesCoder())
        else:
            k = self.io.kafka
            raw = (
                pbegin
                | "ReadKafka" >> ReadFromKafka(
                    consumer_config=k.consumer_config(),
                    topics=[self.topic],
                    key_deserializer=BYTES,
                    value_deserializer=BYTES,
                    max_num_records=k.max_num_records,
                    max_read_time=k.max_read_time_secs,
                    start_read_time=k.start_read_time_ms,
                    commit_offset_in_finalize=bool(k.group_id),
                    expansion_service=k.expansion_service,
                )
                | "Values" >> beam.Map(lambda kv: kv[1])
            )
        return raw | "ParseEvents" >> ParseEvents(self.job_name, self.io.max_event_bytes, self.failed_metric)


KeyFn = Callable[[dict[str, Any]], str | None]


def kafka_key(event: dict[str, Any], value: bytes, key_fn: KeyFn | None = None) -> bytes:
    """The record key: ``key_fn(event)`` when a topic is keyed by something else (certificate
    status requests: the certificate id, so one certificate's changes stay in order on one
    partition), else the event's ``mid`` as the reference does.

    The reference sends a null key when ``mid`` is absent; Beam's Python ``WriteToKafka`` cannot
    carry a null key, so such records get a digest of their value: still spread across partitions,
    and the same event always lands on the same one.
    """
    key = key_fn(event) if key_fn is not None else event.get("mid")
    if isinstance(key, str) and key:
        return key.encode()
    return hashlib.md5(value).hexdigest().encode()


def to_kafka_record(event: dict[str, Any], keep_nulls: bool = False,
                    key_fn: KeyFn | None = None) -> tuple[bytes, bytes]:
    value = dumps(event, keep_nulls).encode()
    return kafka_key(event, value, key_fn), value


class WriteEvents(beam.PTransform):
    """Writes event dicts to ``topic`` (Kafka) or ``<output_dir>/<topic>.jsonl`` (batch).

    Null-valued entries are dropped as the reference does, except with ``keep_nulls`` (failed
    records, which keep the original event exactly). ``key_fn`` sets the Kafka key (default: ``mid``)."""

    def __init__(self, io: EventIO, topic: str, keep_nulls: bool = False, key_fn: KeyFn | None = None):
        super().__init__()
        self.io, self.topic, self.keep_nulls, self.key_fn = io, topic, keep_nulls, key_fn

    def expand(self, events):
        keep_nulls = self.keep_nulls
        if self.io.output_dir is not None:
            return (
                events
                | "ToJson" >> beam.Map(lambda e: dumps(e, keep_nulls))
                | "WriteJsonl" >> WriteJsonl(os.path.join(self.io.output_dir, f"{self.topic}.jsonl"))
            )
        return (
            events
            | "ToRecord" >> beam.Map(to_kafka_record, keep_nulls, self.key_fn).with_output_types(tuple[bytes, bytes])
            | "WriteKafka" >> WriteToKafka(
                producer_config=self.io.kafka.producer_config(), topic=self.topic,
                expansion_service=self.io.kafka.expansion_service)
        )


class WriteFailures(beam.PTransform):
    """Every failed output of a job to its failed topic (or file), original events kept exactly.

    ``tuple(failures) | WriteFailures(io, topic)`` with the job's failed PCollections (parse,
    validation, each store step): one tail for every job. A tuple, not a list: Beam reads a
    list on the left of ``|`` as elements to create.
    """

    def __init__(self, io: EventIO, topic: str):
        super().__init__()
        self.io, self.topic = io, topic

    def expand(self, failures):
        if isinstance(failures, beam.PCollection):  # Beam hands over a one-element list unwrapped
            failures = (failures,)
        failed = counter(ACCOUNTING, FAILED_RECORDS.split(":", 1)[1])

        def count(record: dict) -> dict:
            failed.inc()
            return record

        return (
            tuple(failures)
            | "Failures" >> beam.Flatten()
            | "Count" >> beam.Map(count)
            | "WriteFailed" >> WriteEvents(self.io, self.topic, keep_nulls=True)
        )
