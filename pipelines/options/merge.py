"""merge-user-courses: its option group, its settings and the builder from reference keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.domain import merge as M
from pipelines.io.cassandra import CassandraConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.options.fields import parse_bool, ref_option
from pipelines.options.settings import cassandra_config, dead_letter_outages, dedup_redis_config, values


class MergeCoursesOptions(PipelineOptions):
    """merge-user-courses: date format, recompute requests, assessment merge, idempotency markers."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "course.date.format", default=M.DEFAULT_DATE_FORMAT,
                   help="Java SimpleDateFormat pattern of the text date columns of user_content_consumption "
                        "(lastaccesstime, lastcompletedtime, lastupdatedtime); the later of two dates wins.")
        ref_option(parser, "task.course_batch_updater.parallelism", default=1, type=int,
                   help="Parallelism of the sync-event sink (accepted for compatibility; Beam sizes its own "
                        "stages).")
        ref_option(parser, "kafka.output.enrolment.sync.topic", default=None,
                   help="Topic of the user-enrolment-sync requests (enrolment-reconciliation's input); the job "
                        "supplies <env>.batch.enrolment.sync.request. Not a reference key.")
        ref_option(parser, "merge.enrolment.sync.enabled", default=True, type=parse_bool,
                   help="Emit a user-enrolment-sync request per enrolment of the target account, so its "
                        "progress, completion and certificates are recomputed. The reference only emitted "
                        "batch-enrolment-sync events, which no job acts on. Not a reference key.")
        ref_option(parser, "merge.assessment.enabled", default=True, type=parse_bool,
                   help="Copy the source account's assessment_aggregator attempts to the target and ask "
                        "assessment-aggregator to recompute the target's scores. Not a reference key.")
        ref_option(parser, "kafka.output.assessment.recompute.topic", default=None,
                   help="Topic of the assessment recompute requests (assessment-aggregator's input); the job "
                        "supplies <env>.telemetry.assess. Not a reference key.")
        ref_option(parser, "merge.action.strict", default=False, type=parse_bool,
                   help="Fail requests whose edata.action is not merge-user-courses-and-cert. Off by default: "
                        "the reference reads no action and its own requests carry none, so every request "
                        "with both account ids is merged (unknown actions are counted in "
                        "unknown-action-count). Not a reference key.")
        ref_option(parser, "merge.marker.expiry", default=0, type=int,
                   help="Seconds a merge's done-marker is kept in the marker store (dedup-redis.*); 0 keeps it "
                        "for ever, so a repeated request never merges twice. Not a reference key.")
        ref_option(parser, "merge.journal.expiry", default=604800, type=int,
                   help="Seconds a merge's journal (the target's rows before the merge) is kept, i.e. how "
                        "long a crashed merge can be re-run exactly. Not a reference key.")


@dataclass(frozen=True)
class MergeSettings:
    cassandra: CassandraConfig
    markers: RedisConfig
    tables: dict[str, str]
    job_name: str = M.JOB_NAME
    date_format: str = M.DEFAULT_DATE_FORMAT
    strict_action: bool = False
    enrolment_sync: bool = True
    assessment: bool = True
    marker_expiry_secs: int = 0
    journal_expiry_secs: int = 604800
    dead_letter_outages: bool = True  # batch; streaming waits an outage out (restart from checkpoint)


def merge_settings(opts: PipelineOptions) -> MergeSettings:
    """The job's settings from its options; an unsupported ``course.date.format`` stops it at start."""
    o = values(opts)
    date_format = o["course_date_format"]
    try:
        M.check_date_format(date_format)
    except ValueError as e:
        raise SystemExit(f"course.date.format: {e}") from None
    return MergeSettings(
        dead_letter_outages=dead_letter_outages(opts),
        cassandra=cassandra_config(opts),
        markers=dedup_redis_config(opts),
        tables={"consumption": o["lms_cassandra_content_consumption_table"],
                "enrolments": o["lms_cassandra_user_enrolments_table"],
                "activity_agg": o["lms_cassandra_user_activity_agg_table"],
                "assessment": o["lms_cassandra_assessment_aggregator_table"]},
        date_format=date_format,
        strict_action=bool(o["merge_action_strict"]),
        enrolment_sync=bool(o["merge_enrolment_sync_enabled"]),
        assessment=bool(o["merge_assessment_enabled"]),
        marker_expiry_secs=int(o["merge_marker_expiry"]),
        journal_expiry_secs=int(o["merge_journal_expiry"]),
    )
