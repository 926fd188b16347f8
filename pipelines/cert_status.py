"""certificate-status-updater (lern-beam's own; the reference cannot take a certificate back):
revokes, suspends and reinstates issued certificates, once.

    python -m pipelines.cert_status --runner=FlinkRunner [--config certificate-status-updater.conf]
    python -m pipelines.cert_status --input status-requests.jsonl --output_dir out/

Reads ``certificate-status`` requests (``<env>.certificate.status.request``, Kafka key = the
certificate id), applies each to the credential's ``certificate_status`` row with a lightweight
transaction (``ChangeCertificateStatus``; with ``--cert_backend=rc`` a revocation is also sent to
Sunbird RC), emits an AUDIT event per applied change (``<env>.telemetry.raw``). Failures (bad
requests, unknown certificates, RC down) go to ``<env>.certificate.status.failed``.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.certificates import CertOptions, cert_settings
from pipelines.transforms.cert_status import ChangeCertificateStatus

JOB_NAME = "certificate-status-updater"
FAILED_METRIC = "failed-events-count"


def defaults(env: str) -> dict[str, Any]:
    return {
        "kafka.input.topic": f"{env}.certificate.status.request",
        "kafka.output.failed.topic": f"{env}.certificate.status.failed",
        "kafka.output.audit.topic": f"{env}.telemetry.raw",
        "kafka.groupId": f"{env}-certificate-status-updater-group",
    }


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    settings = cert_settings(opts, JOB_NAME)
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
    audit, failed = events | "ChangeStatus" >> ChangeCertificateStatus(settings)
    audit | "WriteAudit" >> WriteEvents(io, o["kafka_output_audit_topic"])
    (parse_failed, failed) | "WriteFailures" >> WriteFailures(io, o["kafka_output_failed_topic"])


main = job.entrypoint(build, defaults, extra_groups=(CertOptions,))


if __name__ == "__main__":
    sys.exit(main())
