"""enrolment-reconciliation: recompute enrolments' progress from their stored consumption.

    python -m pipelines.enrolment_sync --runner=FlinkRunner              # user-enrolment-sync requests
    python -m pipelines.enrolment_sync --input requests.jsonl --output_dir out/
    python -m pipelines.enrolment_sync --from_cassandra [--course_id=C] [--batch_id=B] [--user_id=U] --output_dir out/

Streaming and JSONL modes read ``user-enrolment-sync`` requests (``<env>.batch.enrolment.sync.request``;
relation-cache-updater sends them itself when a republish changes a course, docs/progress.md).
``--from_cassandra`` needs no Kafka replay: it reads the selected enrolments (a course, a batch, a
learner, or with no selection every enrolment of the platform, through a paged token-range scan)
from ``user_enrolments`` and recomputes each one. Either way the
result is the same writes and events as the activity job, minus consumption writes, and the
completion (with its certificate request) happens only for enrolments not completed yet.
Outputs go to Kafka unless ``--output_dir`` is given (Kafka output needs a portable runner such
as FlinkRunner; DirectRunner cannot run Beam's Java Kafka transforms).
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain import progress as P
from pipelines.domain.progress import Work, sync_work
from pipelines.io.enrolment_scan import ScanEnrolments, scan_settings, selection
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.progress import progress_settings
from pipelines.transforms.compute_progress import AUDIT_TAG, CERT_TAG, ComputeProgress
from pipelines.transforms.failures import FAILED_TAG
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

JOB_NAME = "enrolment-reconciliation"
FAILED_METRIC = "failed-events-count"


def defaults(env: str) -> dict[str, Any]:
    return {
        "kafka.input.topic": f"{env}.batch.enrolment.sync.request",
        "kafka.output.audit.topic": f"{env}.telemetry.raw",
        "kafka.output.failed.topic": f"{env}.enrolment.reconciliation.failed",
        "kafka.output.certissue.topic": f"{env}.issue.certificate.request",
        "kafka.groupId": f"{env}-enrolment-reconciliation-group",
    }


def enrolment_work(row) -> Work:
    return Work(P.EnrolmentKey(row.userid, row.courseid, row.batchid))


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    failures = []
    if o["from_cassandra"]:
        work = p | "ScanEnrolments" >> ScanEnrolments(
            job.cassandra_config(opts), o["lms_cassandra_user_enrolments_table"], selection(o), enrolment_work,
            JOB_NAME, scan=scan_settings(o))
    else:
        events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
        work, invalid = events | "ParseSync" >> ValidateEvents(JOB_NAME, sync_work, ValidationMetrics(FAILED_METRIC))
        failures += [parse_failed, invalid]
    out = work | "ComputeProgress" >> ComputeProgress(
        progress_settings(opts, JOB_NAME, write_consumption=False), o["task_window_shards"],
        o["threshold_batch_read_size"], None if job.bounded(opts) else 1.0)
    out[AUDIT_TAG] | "WriteAudit" >> WriteEvents(io, o["kafka_output_audit_topic"])
    out[CERT_TAG] | "WriteCertIssue" >> WriteEvents(io, o["kafka_output_certissue_topic"])
    failures.append(out[FAILED_TAG])
    tuple(failures) | "WriteFailures" >> WriteFailures(io, o["kafka_output_failed_topic"])


main = job.entrypoint(build, defaults)


if __name__ == "__main__":
    sys.exit(main())
