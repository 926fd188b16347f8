"""collection-certificate-generator: issues certificates through Sunbird RC, exactly once,
and records them on the enrolment.

    python -m pipelines.cert_generate --runner=FlinkRunner [--config collection-certificate-generator.conf]
    python -m pipelines.cert_generate --input generate.jsonl --output_dir out/

Reads ``generate-certificate`` events (``<env>.generate.certificate.request``), validates them
(the reference ``CertValidator``), claims the issuance with a Cassandra lightweight transaction on
a deterministic certificate id, creates the certificate in Sunbird RC (``service.rc.entity``;
on re-issue the old record is deleted first), writes ``user_enrolments.issued_certificates``,
emits the ``certificate-issued-svg`` AUDIT event (``<env>.telemetry.raw``), then sends the
notification and the user feed. Failures go to ``<env>.generate.certificate.failed``.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain.certificates import CertOptions
from pipelines.domain.failures import FAILED_TAG
from pipelines.io.events import ReadEvents, WriteEvents
from pipelines.transforms.cert_store import AUDIT_TAG, ISSUED_TAG, GenerateFn, NotifyFn, cert_settings

JOB_NAME = "collection-certificate-generator"
FAILED_METRIC = "failed-events-count"


def defaults(env: str) -> dict[str, Any]:
    return {
        "kafka.input.topic": f"{env}.generate.certificate.request",
        "kafka.output.failed.topic": f"{env}.generate.certificate.failed",
        "kafka.output.audit.topic": f"{env}.telemetry.raw",
        "kafka.groupId": f"{env}-certificate-generator-group",
    }


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    settings = cert_settings(opts, JOB_NAME)
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
    out = (events
           | "Generate" >> beam.ParDo(GenerateFn(settings)).with_outputs(FAILED_TAG, AUDIT_TAG, ISSUED_TAG))
    notified = out[ISSUED_TAG] | "Notify" >> beam.ParDo(NotifyFn(settings)).with_outputs(FAILED_TAG)
    out[AUDIT_TAG] | "WriteAudit" >> WriteEvents(io, o["kafka_output_audit_topic"])
    ((parse_failed, out[FAILED_TAG], notified[FAILED_TAG]) | "Failures" >> beam.Flatten()
     | "WriteFailed" >> WriteEvents(io, o["kafka_output_failed_topic"]))


def main(argv=None) -> int:
    job.setup_logging()
    job.run(build, argv, defaults, extra_groups=(CertOptions,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
