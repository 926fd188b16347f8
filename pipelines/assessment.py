"""assessment-aggregator: assessment attempts -> per-question rows, totals, best scores, cert trigger.

    python -m pipelines.assessment --runner=FlinkRunner [--config assessment-aggregator.conf]
    python -m pipelines.assessment --input attempts.jsonl --output_dir out/

Reads batch-assess events (``<env>.telemetry.assess``: all ASSESS telemetry of one attempt), checks
the content belongs to the course (relation cache), optionally checks the question count against
the content's ``totalQuestions`` (content cache, then the content read API), writes the attempt to
``assessment_aggregator`` unless a newer or equal version is stored, recomputes the learner's best
scores in ``user_activity_agg`` and asks the certificate pre-processor to re-evaluate
(``<env>.issue.certificate.request``). Failures go to ``<env>.telemetry.assess.failed`` with a
reason and the original event. The steps are ``pipelines/transforms/scores.py``; the options
and settings ``pipelines/options/assessment.py``. See docs/assessment.md.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain import assessment as A
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.assessment import AssessmentOptions, assessment_settings
from pipelines.options.groups import EMULATOR_URL
from pipelines.transforms.scores import AggregateScores, ValidateAttempts

JOB_NAME = A.JOB_NAME
SCORE_NAMESPACE = A.SCORE_NAMESPACE
FAILED_METRIC = "failed-event-count"
EXTRA_GROUPS = (AssessmentOptions,)
__all__ = ["EXTRA_GROUPS", "FAILED_METRIC", "JOB_NAME", "SCORE_NAMESPACE", "AssessmentOptions", "build",
           "defaults", "main"]


def defaults(env: str) -> dict[str, Any]:
    """The reference conf's topics, group and tables, named for ``job.env`` like its ``${job.env}``."""
    return {
        "kafka.input.topic": f"{env}.telemetry.assess",
        "kafka.failed.topic": f"{env}.telemetry.assess.failed",
        "kafka.groupId": f"{env}-assessment-aggregator-group",
        "kafka.output.certissue.topic": f"{env}.issue.certificate.request",
        "lms-cassandra.table": "assessment_aggregator",
        # The reference ships dev.sunbirded.org; locally it is the emulator's content read.
        "content.read.api": f"{EMULATOR_URL}/api/content/v1/read/",
    }


def with_src(failed: dict) -> dict:
    """The reference's ``metadata.src`` on failed records built before validation (unparsable records)."""
    return {**failed, "metadata": {**(failed.get("metadata") or {}), "src": A.SRC}}


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
    parse_failed = parse_failed | "FailedSrc" >> beam.Map(with_src)
    attempts, invalid = events | "Validate" >> ValidateAttempts(JOB_NAME, FAILED_METRIC)
    certs, failed = attempts | "AggregateScores" >> AggregateScores(
        assessment_settings(opts), o["task_window_shards"], o["threshold_batch_read_size"],
        None if job.bounded(opts) else 1.0)
    certs | "WriteCertIssue" >> WriteEvents(io, o["kafka_output_certissue_topic"])
    (parse_failed, invalid, failed) | "WriteFailures" >> WriteFailures(io, o["kafka_failed_topic"])


main = job.entrypoint(build, defaults, EXTRA_GROUPS)


if __name__ == "__main__":
    sys.exit(main())
