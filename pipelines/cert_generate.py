"""collection-certificate-generator: issues certificates through Sunbird RC, exactly once,
and records them on the enrolment.

    python -m pipelines.cert_generate --runner=FlinkRunner [--config collection-certificate-generator.conf]
    python -m pipelines.cert_generate --input generate.jsonl --output_dir out/

Reads ``generate-certificate`` events (``<env>.generate.certificate.request``), validates them
(the reference ``CertValidator``) and issues each once (``IssueRC``: claim, Sunbird RC create,
``user_enrolments.issued_certificates``), emits the ``certificate-issued-svg`` AUDIT event
(``<env>.telemetry.raw``), then sends the notification and the user feed (``NotifyLearner``).
Failures go to ``<env>.generate.certificate.failed``.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.certificates import CertOptions, cert_settings
from pipelines.transforms.cert_notify import NotifyLearner
from pipelines.transforms.issue_rc import IssueRC

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
    audit, issued, failed = events | "IssueRC" >> IssueRC(settings)
    notify_failed = issued | "Notify" >> NotifyLearner(settings)
    audit | "WriteAudit" >> WriteEvents(io, o["kafka_output_audit_topic"])
    (parse_failed, failed, notify_failed) | "WriteFailures" >> WriteFailures(io, o["kafka_output_failed_topic"])


main = job.entrypoint(build, defaults, extra_groups=(CertOptions,))


if __name__ == "__main__":
    sys.exit(main())
