"""activity-aggregate-updater: content completions -> course progress, completion, certificate trigger.

    python -m pipelines.activity --runner=FlinkRunner [--config activity-aggregate-updater.conf]
    python -m pipelines.activity --input events.jsonl --output_dir out/

Reads ``batch-enrolment-update`` requests (``<env>.coursebatch.job.request``), splits them into
completed contents, drops completions already processed (the reference's MD5 checksum in the
Redis dedup store), recomputes each enrolment's progress from its consumption rows and the
relation cache, writes ``user_content_consumption``, ``user_activity_agg`` and
``user_enrolments``, and emits AUDIT telemetry and, on the completion transition only, the
issue-certificate request.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain.progress import update_work
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.progress import progress_settings
from pipelines.options.settings import replay_window_secs
from pipelines.transforms.compute_progress import AUDIT_TAG, CERT_TAG, PROCESSED_TAG, ComputeProgress
from pipelines.transforms.dedup import DedupByMid, MarkSeen
from pipelines.transforms.failures import FAILED_TAG
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

JOB_NAME = "activity-aggregate-updater"
FAILED_METRIC = "failed-events-count"
VALIDATION = ValidationMetrics(failed=FAILED_METRIC, valid="batch-enrolment-update-count",
                               ignored="skipped-contents-count")


def defaults(env: str) -> dict[str, Any]:
    """The reference conf's topics and group, named for ``job.env`` the way its deployment does."""
    return {
        "kafka.input.topic": f"{env}.coursebatch.job.request",
        "kafka.output.audit.topic": f"{env}.telemetry.raw",
        "kafka.output.failed.topic": f"{env}.activity.agg.failed",
        "kafka.output.certissue.topic": f"{env}.issue.certificate.request",
        "kafka.groupId": f"{env}-activity-aggregate-updater-group",
    }


def work_checksum(work) -> str | None:
    return work.checksum


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    buffering = None if job.bounded(opts) else 1.0
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
    work, invalid = events | "Split" >> ValidateEvents(JOB_NAME, update_work, VALIDATION)
    failures = [parse_failed, invalid]
    dedup_cfg = job.dedup_redis_config(opts)
    if o["activity_input_dedup_enabled"]:
        work, _duplicates, dedup_failed = work | "Dedup" >> DedupByMid(
            dedup_cfg, JOB_NAME, key_fn=work_checksum, batch_size=o["threshold_batch_read_size"],
            max_buffering_secs=buffering, pass_when_unavailable=True,
            replay_window_secs=replay_window_secs(opts))
        failures.append(dedup_failed)
    out = work | "ComputeProgress" >> ComputeProgress(
        progress_settings(opts, JOB_NAME, write_consumption=True), o["task_window_shards"],
        o["threshold_batch_read_size"], buffering)
    if o["activity_input_dedup_enabled"]:
        _ = out[PROCESSED_TAG] | "MarkSeen" >> MarkSeen(dedup_cfg, JOB_NAME, o["dedup_redis_database_expiry"],
                                                        key_fn=work_checksum)
    out[AUDIT_TAG] | "WriteAudit" >> WriteEvents(io, o["kafka_output_audit_topic"])
    out[CERT_TAG] | "WriteCertIssue" >> WriteEvents(io, o["kafka_output_certissue_topic"])
    failures.append(out[FAILED_TAG])
    tuple(failures) | "WriteFailures" >> WriteFailures(io, o["kafka_output_failed_topic"])


main = job.entrypoint(build, defaults)


if __name__ == "__main__":
    sys.exit(main())
