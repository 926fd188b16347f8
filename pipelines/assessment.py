"""assessment-aggregator: assessment attempts -> per-question rows, totals, best scores, cert trigger.

    python -m pipelines.assessment --runner=FlinkRunner [--config assessment-aggregator.conf]
    python -m pipelines.assessment --input attempts.jsonl --output_dir out/

Reads batch-assess events (``<env>.telemetry.assess``: all ASSESS telemetry of one attempt), checks
the content belongs to the course (relation cache), optionally checks the question count against
the content's ``totalQuestions`` (content cache, then the content read API), writes the attempt to
``assessment_aggregator`` unless a newer or equal version is stored, recomputes the learner's best
scores in ``user_activity_agg`` and asks the certificate pre-processor to re-evaluate
(``<env>.issue.certificate.request``). Failures go to ``<env>.telemetry.assess.failed`` with a
reason and the original event. See docs/assessment.md.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import job
from pipelines.domain import assessment as A
from pipelines.domain.failures import FAILED_TAG, failed_event
from pipelines.io.events import ReadEvents, WriteEvents
from pipelines.io.redis_store import RedisConfig
from pipelines.metrics import counter
from pipelines.options.fields import parse_bool, ref_option
from pipelines.options.groups import EMULATOR_URL
from pipelines.transforms.assessment_store import (
    CERT_TAG,
    AssessmentSettings,
    CheckContentFn,
    QuestionCountFn,
    StoreAttemptsFn,
)
from pipelines.transforms.batching import ShardedBatches

JOB_NAME = "AssessmentAggregatorJob"
"""The reference's job name: metric namespace of the aggregator steps and failed events' jobName."""
SCORE_NAMESPACE = f"{JOB_NAME}.score"
"""Metric namespace of the score aggregation step (the reference's UserScoreAggregateFunction)."""
FAILED_METRIC = "failed-event-count"


class AssessmentOptions(PipelineOptions):
    """assessment-aggregator (keys of assessment-aggregator.conf, plus lern-beam's own)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "lms-cassandra.questionudttype", default="question",
                   help="Name of the question UDT; it must exist in the keyspace before the job starts.")
        ref_option(parser, "lms-cassandra.activitytable", default="user_activity_agg",
                   help="Table of the best-score aggregates (the docs' misspelling "
                        "lms-cassandra.activityytable is accepted in a conf file).")
        ref_option(parser, "lms-cassandra.enrolmentstable", default="user_enrolments",
                   help="Enrolments table (read by the reference's config, never queried).")
        ref_option(parser, "assessment.skip.missingRecords", default=False, type=parse_bool,
                   help="Check each attempt's unique question count against the content's totalQuestions "
                        "(content cache, then the content read API); mismatches go to the failed topic.")
        ref_option(parser, "user.activity.agg.type", default=A.DEFAULT_AGG_TYPE,
                   help="The 'type' written into every agg_details entry.")
        ref_option(parser, "task.downstream.parallelism", default=1, type=int,
                   help="Accepted for compatibility; Beam sets parallelism with --parallelism.")
        ref_option(parser, "task.assessaggregator.parallelism", default=1, type=int,
                   help="Accepted for compatibility; Beam sets parallelism with --parallelism.")
        ref_option(parser, "task.scoreaggregator.parallelism", default=1, type=int,
                   help="Accepted for compatibility; Beam sets parallelism with --parallelism.")
        ref_option(parser, "user.activity.agg.timezone", default="UTC",
                   help="Time zone of the agg_details dates (lern-beam key; the reference used the JVM's "
                        "zone, UTC in its containers).")
        ref_option(parser, "assessment.content.read.cache.expiry", default=600, type=int,
                   help="Seconds a totalQuestions answer of the content read API is cached per worker; 0 "
                        "disables the cache (lern-beam key).")
        ref_option(parser, "assessment.question.count.allow.partial", default=False, type=parse_bool,
                   help="With the question count check on, accept attempts with fewer unique questions "
                        "than totalQuestions, as the reference did (lern-beam key; default: both ways).")
        ref_option(parser, "assessment.strict.course.check", default=False, type=parse_bool,
                   help="Fail events of a course that has no leaf nodes in the relation cache instead of "
                        "accepting them (the reference accepts; lern-beam key).")
        ref_option(parser, "assessment.refresh.aggregates.on.skip", default=False, type=parse_bool,
                   help="Also recompute user_activity_agg for a skipped (stale) attempt, so a replay heals "
                        "an aggregate lost to a failure after the attempt write; no certificate request is "
                        "sent for it (lern-beam key).")


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


class ValidateFn(beam.DoFn):
    """Batch-assess event -> :class:`Attempt`; an invalid one goes to the failed output with the reason."""

    def __init__(self):
        self.total = counter(JOB_NAME, "total-events-count")
        self.failed = counter(JOB_NAME, FAILED_METRIC)

    def process(self, event: dict):
        self.total.inc()
        try:
            attempt = A.parse_attempt(event)
        except Exception as e:  # noqa: BLE001 - InvalidAssessment, or anything odd input can raise: never crash
            self.failed.inc()
            reason = str(e) if isinstance(e, A.InvalidAssessment) else f"invalid event: {type(e).__name__}: {e}"
            if isinstance(e, RecursionError):  # too deep for the JSON writer too: keep it as text
                yield pvalue.TaggedOutput(FAILED_TAG, failed_event(JOB_NAME, reason, raw=_text(event),
                                                                   stage="validate", src=A.SRC))
                return
            yield pvalue.TaggedOutput(FAILED_TAG, failed_event(JOB_NAME, reason, event, stage="validate", src=A.SRC))
            return
        yield attempt


def _text(event: dict) -> str:
    try:
        return json.dumps(event, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        return repr(event)


def settings(opts) -> AssessmentSettings:
    o = job.values(opts)
    meta = dict(host=o["redis_meta_host"], port=int(o["redis_meta_port"]))
    return AssessmentSettings(
        job_name=JOB_NAME,
        score_namespace=SCORE_NAMESPACE,
        cassandra=job.cassandra_config(opts),
        relation_cache=RedisConfig(**meta, db=int(o["redis_database_relationcache_id"])),
        content_cache=RedisConfig(**meta, db=int(o["redis_database_contentcache_id"])),
        table=o["lms_cassandra_table"],
        activity_table=o["lms_cassandra_activitytable"],
        question_udt=o["lms_cassandra_questionudttype"],
        content_read_api=o["content_read_api"],
        http_timeout_secs=float(o["http_timeout_secs"]),
        http_retries=int(o["http_retries"]),
        content_read_cache_secs=float(o["assessment_content_read_cache_expiry"]),
        agg_type=o["user_activity_agg_type"],
        agg_timezone=o["user_activity_agg_timezone"],
        strict_course_check=bool(o["assessment_strict_course_check"]),
        allow_partial_attempts=bool(o["assessment_question_count_allow_partial"]),
        refresh_on_skip=bool(o["assessment_refresh_aggregates_on_skip"]),
    )


def with_src(failed: dict) -> dict:
    """The reference's ``metadata.src`` on failed events built before validation (unparsable records)."""
    return {**failed, "metadata": {**(failed.get("metadata") or {}), "src": A.SRC}}


def _user(a: A.Attempt) -> str:
    return a.user_id


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    s = settings(opts)
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
    parse_failed = parse_failed | "FailedSrc" >> beam.Map(with_src)
    valid = events | "Validate" >> beam.ParDo(ValidateFn()).with_outputs(FAILED_TAG, main="attempts")
    failures = [parse_failed, valid[FAILED_TAG]]
    batches = valid.attempts | "BatchByUser" >> ShardedBatches(
        _user, o["task_window_shards"], o["threshold_batch_read_size"], None if job.bounded(opts) else 1.0)
    checked = batches | "CheckContent" >> beam.ParDo(CheckContentFn(s)).with_outputs(FAILED_TAG, main="batches")
    failures.append(checked[FAILED_TAG])
    batches = checked.batches
    if o["assessment_skip_missingrecords"]:
        counted = batches | "QuestionCount" >> beam.ParDo(QuestionCountFn(s)).with_outputs(FAILED_TAG, main="batches")
        failures.append(counted[FAILED_TAG])
        batches = counted.batches
    stored = batches | "StoreAttempts" >> beam.ParDo(StoreAttemptsFn(s)).with_outputs(CERT_TAG, FAILED_TAG)
    failures.append(stored[FAILED_TAG])
    stored[CERT_TAG] | "WriteCertIssue" >> WriteEvents(io, o["kafka_output_certissue_topic"])
    tuple(failures) | "Failures" >> beam.Flatten() | "WriteFailed" >> WriteEvents(io, o["kafka_failed_topic"])


def main(argv=None) -> int:
    job.setup_logging()
    job.run(build, argv, defaults, extra_groups=(AssessmentOptions,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
