"""assessment-aggregator: its option group, its settings and the builder from reference keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.domain import assessment as A
from pipelines.io.cassandra import CassandraConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.options.fields import parse_bool, ref_option
from pipelines.options.settings import cassandra_config, dead_letter_outages, values


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


@dataclass(frozen=True)
class AssessmentSettings:
    cassandra: CassandraConfig
    relation_cache: RedisConfig
    content_cache: RedisConfig
    job_name: str = A.JOB_NAME  # metric namespace of the aggregator steps, and failed events' jobName
    score_namespace: str = A.SCORE_NAMESPACE  # metric namespace of the score aggregation step
    table: str = "assessment_aggregator"
    activity_table: str = "user_activity_agg"
    question_udt: str = "question"
    content_read_api: str = "http://localhost:9000/api/content/v1/read/"
    http_timeout_secs: float = 10.0
    http_retries: int = 3
    content_read_cache_secs: float = 600.0
    agg_type: str = A.DEFAULT_AGG_TYPE
    agg_timezone: str = "UTC"
    check_question_count: bool = False  # assessment.skip.missingRecords
    strict_course_check: bool = False
    allow_partial_attempts: bool = False
    refresh_on_skip: bool = False
    dead_letter_outages: bool = True  # batch; streaming waits an outage out (restart from checkpoint)


def assessment_settings(opts: PipelineOptions) -> AssessmentSettings:
    """Both caches live on ``redis-meta.*`` (db ``redis.database.relationCache.id`` and
    ``redis.database.contentCache.id``), as in the reference."""
    o = values(opts)
    meta = dict(host=o["redis_meta_host"], port=int(o["redis_meta_port"]))
    return AssessmentSettings(
        dead_letter_outages=dead_letter_outages(opts),
        cassandra=cassandra_config(opts),
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
        check_question_count=bool(o["assessment_skip_missingrecords"]),
        strict_course_check=bool(o["assessment_strict_course_check"]),
        allow_partial_attempts=bool(o["assessment_question_count_allow_partial"]),
        refresh_on_skip=bool(o["assessment_refresh_aggregates_on_skip"]),
    )
