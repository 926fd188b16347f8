"""merge-user-courses: copy one account's course history into another when two accounts merge.

    python -m pipelines.merge_courses --runner=FlinkRunner [--config merge-user-courses.conf]
    python -m pipelines.merge_courses --input requests.jsonl --output_dir out/

Reads account-merge requests (``<env>.lms.user.account.merge``, ``edata.fromAccountId`` ->
``edata.toAccountId``) and, per request and in this order: merges the content consumption rows,
the course ``completedCount`` aggregates, migrates the enrolments the target lacks, copies the
assessment attempts; then emits, for every enrolment of the target, the reference's
``batch-enrolment-sync`` event (``<env>.coursebatch.job.request``) and the ``user-enrolment-sync``
request enrolment-reconciliation consumes (``<env>.batch.enrolment.sync.request``), so the
target's progress, completion and certificates are recomputed; and, per course batch with
copied attempts, an assessment recompute request (``<env>.telemetry.assess``).

A merge is idempotent: a Redis journal of the target's pre-merge rows makes a re-run after a
crash write the same values, and a done-marker written last turns a repeated request into a
no-op that only re-emits the requests. Any request with both account ids is merged, whatever its
``edata.action`` (the reference reads none); ``--merge_action_strict=true`` opts in to checking it.
The steps are ``pipelines/transforms/merge.py``, the rules ``pipelines/domain/merge.py``, the
options and settings ``pipelines/options/merge.py``; docs/merge.md has the rules, the fixed
reference weaknesses and the metrics.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain import merge as M
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.merge import MergeCoursesOptions, merge_settings
from pipelines.transforms.failures import FAILED_TAG
from pipelines.transforms.merge import (
    ASSESSMENT_TAG,
    ENROLMENT_SYNC_TAG,
    FAILED_METRIC,
    SYNC_TAG,
    MergeCourses,
    ValidateMergeRequests,
)

JOB_NAME = M.JOB_NAME
EXTRA_GROUPS = (MergeCoursesOptions,)


def defaults(env: str) -> dict[str, Any]:
    """The deployment's topics and group for ``job.env`` (the packaged conf's ``__env__`` names)."""
    return {
        "kafka.input.topic": f"{env}.lms.user.account.merge",
        "kafka.output.failed.topic": f"{env}.learning.events.failed",
        "kafka.output.course.batch.updater.topic": f"{env}.coursebatch.job.request",
        "kafka.output.enrolment.sync.topic": f"{env}.batch.enrolment.sync.request",
        "kafka.output.assessment.recompute.topic": f"{env}.telemetry.assess",
        "kafka.groupId": f"{env}-merge-courses-group",
    }


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    settings = merge_settings(opts)
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
    work, invalid = events | "Validate" >> ValidateMergeRequests(JOB_NAME, settings.strict_action)
    out = work | "MergeUserCourses" >> MergeCourses(
        settings, o["task_window_shards"], o["threshold_batch_read_size"], None if job.bounded(opts) else 1.0)
    out[SYNC_TAG] | "WriteSync" >> WriteEvents(io, o["kafka_output_course_batch_updater_topic"])
    if settings.enrolment_sync:
        out[ENROLMENT_SYNC_TAG] | "WriteEnrolmentSync" >> WriteEvents(io, o["kafka_output_enrolment_sync_topic"])
    if settings.assessment:
        out[ASSESSMENT_TAG] | "WriteAssessment" >> WriteEvents(io, o["kafka_output_assessment_recompute_topic"])
    (
        (parse_failed, invalid, out[FAILED_TAG])
        | "Failures" >> beam.Flatten()
        | "AsReferenceFailure" >> beam.Map(M.as_reference_failure)
        | "WriteFailures" >> WriteFailures(io, o["kafka_output_failed_topic"])
    )


main = job.entrypoint(build, defaults, EXTRA_GROUPS)


def run(argv=None) -> dict[str, int]:
    """Runs the job and returns its counter totals (for tests and scripts)."""
    return job.run(job.importable(build), argv, defaults, extra_groups=EXTRA_GROUPS)


if __name__ == "__main__":
    sys.exit(main())
