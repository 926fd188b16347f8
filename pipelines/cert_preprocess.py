"""collection-cert-pre-processor: issue-certificate requests -> criteria -> generate-certificate events.

    python -m pipelines.cert_preprocess --runner=FlinkRunner [--config collection-cert-pre-processor.conf]
    python -m pipelines.cert_preprocess --input requests.jsonl --output_dir out/
    python -m pipelines.cert_preprocess --from_cassandra [--course_id=C] [--batch_id=B] [--user_id=U] --output_dir out/

Reads ``issue-certificate`` requests (``<env>.issue.certificate.request``), and for every SVG
template of the batch whose criteria the learner meets (``ValidateCertCriteria``: enrolment
status, assessment score, user profile; rules in ``pipelines.domain.certificates``) emits a
``generate-certificate`` event to ``<env>.generate.certificate.request``.
``--from_cassandra`` backfills the selected enrolments (a course, a batch, a learner, or with no
selection every enrolment, through a paged token-range scan): every completed one becomes a request,
and templates already issued to the learner are skipped, so only what is missing is requested
(the generator's claim makes each issuance happen once even if a request is repeated).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain.certificates import issue_request_for
from pipelines.io.enrolment_scan import ScanEnrolments, scan_settings, selection
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.certificates import CertOptions, cert_settings
from pipelines.transforms.cert_criteria import ValidateCertCriteria

JOB_NAME = "collection-cert-pre-processor"
FAILED_METRIC = "failed-events-count"


def defaults(env: str) -> dict[str, Any]:
    return {
        "kafka.input.topic": f"{env}.issue.certificate.request",
        "kafka.output.topic": f"{env}.generate.certificate.request",
        "kafka.output.failed.topic": f"{env}.issue.certificate.failed",
        "kafka.groupId": f"{env}-collection-cert-pre-processor-group",
        "content_read_api": "/content/v3/read",
        "user_read_api": "/private/user/v1/read",
    }


def completed_request(row):
    """A backfill row -> an issue-certificate request, for completed enrolments only."""
    if row.status != 2:
        return None
    return issue_request_for(row.userid, row.courseid, row.batchid, int(time.time() * 1000))


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    failures = []
    if o["from_cassandra"]:
        requests = p | "ScanCompleted" >> ScanEnrolments(
            job.cassandra_config(opts), o["lms_cassandra_user_enrolments_table"], selection(o), completed_request,
            JOB_NAME, columns=("userid", "courseid", "batchid", "status"), scan=scan_settings(o))
    else:
        requests, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
        failures.append(parse_failed)
    generate, failed = requests | "ValidateCertCriteria" >> ValidateCertCriteria(cert_settings(opts, JOB_NAME))
    generate | "WriteGenerate" >> WriteEvents(io, o["kafka_output_topic"])
    failures.append(failed)
    tuple(failures) | "WriteFailures" >> WriteFailures(io, o["kafka_output_failed_topic"])


main = job.entrypoint(build, defaults, extra_groups=(CertOptions,))


if __name__ == "__main__":
    sys.exit(main())
