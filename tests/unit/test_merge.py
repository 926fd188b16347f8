"""merge-user-courses' pure rules (pipelines.domain.merge) and options, without Beam or servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import merge_courses
from pipelines.domain import merge as M
from pipelines.domain import progress as P
from pipelines.options import parse_job_options
from pipelines.options.merge import merge_settings
from pipelines.transforms.merge import ValidateMergeRequests

F, T = "from-user", "to-user"


def request(**edata):
    body = {"action": M.MERGE_ACTION, "fromAccountId": F, "toAccountId": T, "rootOrgId": "org", "iteration": 1}
    body.update(edata)
    return {"eid": "BE_JOB_REQUEST", "ets": 1648720639981, "mid": "LP.1.x", "edata": body}


def ts(*args) -> datetime:
    return datetime(*args)  # naive UTC, as the Cassandra driver returns timestamps


def cons(user, content, course="C", batch="B", **cols):
    return {"userid": user, "courseid": course, "batchid": batch, "contentid": content, **cols}


# ------------------------------------------------------------------------------------ request

def test_valid_request():
    assert M.parse_merge_request(request()) == M.MergeRequest(F, T, M.MERGE_ACTION, True)


@pytest.mark.parametrize(("event", "reason"), [
    ({"edata": {}}, "edata is empty"),
    (request(fromAccountId=None), "edata.fromAccountId is missing or empty"),
    (request(toAccountId=""), "edata.toAccountId is missing or empty"),
    ({"edata": {"action": M.MERGE_ACTION, "toAccountId": T}}, "edata.fromAccountId is missing or empty"),
    (request(toAccountId="  "), "edata.toAccountId is blank"),
])
def test_empty_edata_or_missing_ids_are_skips_as_in_the_reference(event, reason):
    with pytest.raises(M.Skip, match=reason):
        M.parse_merge_request(event)


@pytest.mark.parametrize(("event", "reason"), [
    ({}, "edata is missing or not an object"),  # the reference's poison pill (ClassCastException)
    ({"edata": "x"}, "edata is missing or not an object"),
    (request(fromAccountId=42), "edata.fromAccountId is not a string: 42"),
    (request(toAccountId=F), f"fromAccountId and toAccountId are the same account: {F}"),
    (request(action="merge-something-else"), "unknown action 'merge-something-else'"),
    (request(action=None), "unknown action None"),
])
def test_invalid_requests_fail_with_a_reason_instead_of_crashing(event, reason):
    with pytest.raises(M.InvalidRequest, match=reason):
        M.parse_merge_request(event, strict_action=True)


def test_same_account_is_refused_because_merging_into_itself_doubles_every_counter():
    with pytest.raises(M.InvalidRequest):
        M.parse_merge_request(request(fromAccountId="u", toAccountId="u"), strict_action=False)


def test_the_references_own_request_without_an_action_is_accepted_by_default():
    """Issue 12: the reference reads no action; its test fixture's requests have none."""
    reference = {"eid": "BE_JOB_REQUEST", "ets": 1563788371969, "mid": "LMS.1563788371969",
                 "edata": {"fromAccountId": "user001", "toAccountId": "user002"}}
    assert M.parse_merge_request(reference) == M.MergeRequest("user001", "user002", None, False)
    assert M.parse_merge_work(reference) == [M.MergeWork(M.MergeRequest("user001", "user002", None, False),
                                                         reference)]
    with pytest.raises(M.InvalidRequest, match="unknown action None"):
        M.parse_merge_request(reference, strict_action=True)


def test_lenient_action_mode_accepts_any_action_like_the_reference():
    req = M.parse_merge_request(request(action="whatever"), strict_action=False)
    assert (req.from_user, req.to_user, req.action, req.known_action) == (F, T, "whatever", False)


# ------------------------------------------------------------------------------- Java dates

def test_default_format_parses_milliseconds_and_offset():
    assert M.parse_java_date("2022-02-21 05:54:43:853+0000") == datetime(2022, 2, 21, 5, 54, 43, 853000, tzinfo=UTC)
    ist = M.parse_java_date("2022-02-21 11:24:43:853+0530")
    assert ist == datetime(2022, 2, 21, 5, 54, 43, 853000, tzinfo=UTC)
    assert ist.utcoffset() == timedelta(hours=5, minutes=30)


def test_lenient_parse_rolls_over_and_ignores_trailing_text():
    assert M.parse_java_date("2022-13-01 00:00:00:000+0000") == datetime(2023, 1, 1, tzinfo=UTC)
    assert M.parse_java_date("2022-01-01 25:00:00:000+0000") == datetime(2022, 1, 2, 1, tzinfo=UTC)
    assert M.parse_java_date("2022-01-01 00:00:00:5+0000 trailing") == datetime(2022, 1, 1, 0, 0, 0, 5000,
                                                                                 tzinfo=UTC)
    assert M.parse_java_date("2022-01-01 00:00:00:000GMT-01:00") == datetime(2022, 1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "garbage", "2022-02-21", "2022/02/21 05:54:43:853+0000",
                                  "2022-02-21 05:54:43:853"])
def test_unparsable_dates_are_none(text):
    assert M.parse_java_date(text) is None


def test_other_patterns_including_abutting_fields_and_month_names():
    assert M.parse_java_date("20220221", "yyyyMMdd") == datetime(2022, 2, 21, tzinfo=UTC)
    assert M.parse_java_date("21/02/2022 05:54 PM", "dd/MM/yyyy hh:mm a") == datetime(2022, 2, 21, 17, 54, tzinfo=UTC)
    assert M.parse_java_date("Feb 21, 2022", "MMM d, yyyy") == datetime(2022, 2, 21, tzinfo=UTC)
    assert M.parse_java_date("2022-02-21T05:54:43 +01:00", "yyyy-MM-dd'T'HH:mm:ss XXX") == \
        datetime(2022, 2, 21, 4, 54, 43, tzinfo=UTC)


def test_unsupported_pattern_is_rejected_up_front():
    with pytest.raises(ValueError, match="pattern letter 'Q'"):
        M.check_date_format("yyyy-QQ")
    M.check_date_format(M.DEFAULT_DATE_FORMAT)


# ---------------------------------------------------------------------- step 1: consumption

def test_merge_consumption_row_applies_the_reference_table():
    f = cons(F, "c1", status=2, progress=100, viewcount=3, completedcount=1,
             datetime=ts(2022, 3, 1), last_access_time=ts(2022, 1, 1), last_completed_time=None,
             last_updated_time=ts(2022, 5, 1),
             lastaccesstime="2022-02-21 05:54:43:853+0000", lastcompletedtime="not a date",
             lastupdatedtime="2022-01-01 00:00:00:000+0000")
    t = cons(T, "c1", status=1, progress=40, viewcount=2, completedcount=None,
             datetime=ts(2022, 2, 1), last_access_time=ts(2022, 6, 1), last_completed_time=ts(2022, 4, 1),
             last_updated_time=ts(2022, 5, 1),
             lastaccesstime="2022-02-21 11:24:43:852+0530", lastcompletedtime="2021-01-01 00:00:00:000+0000",
             lastupdatedtime="also not a date")
    merged = M.merge_consumption_row(f, t)
    assert merged == {
        "userid": T, "courseid": "C", "batchid": "B", "contentid": "c1",
        "status": 2, "progress": 100,                        # max
        "viewcount": 5, "completedcount": 1,                 # sum; a null side takes the other
        "datetime": ts(2022, 3, 1),                          # later
        "last_access_time": ts(2022, 6, 1),
        "last_completed_time": ts(2022, 4, 1),               # F null -> T
        "last_updated_time": ts(2022, 5, 1),                 # tie -> T (same value either way)
        "lastaccesstime": "2022-02-21 05:54:43:853+0000",    # 1 ms later than T's, across offsets
        "lastcompletedtime": "2021-01-01 00:00:00:000+0000",  # F does not parse -> T
        "lastupdatedtime": "2022-01-01 00:00:00:000+0000",   # T does not parse -> F
    }


def test_merge_consumption_ties_and_wrong_types_keep_the_target_and_other_columns_are_the_targets():
    f = cons(F, "c1", status=2, progress="90", lastaccesstime="2022-01-01 00:00:00:000+0000",
             datetime="2022-01-01", extra="from")
    t = cons(T, "c1", status=2, progress=10, lastaccesstime="2022-01-01 05:30:00:000+0530",
             datetime=ts(2020, 1, 1), extra="to")
    merged = M.merge_consumption_row(f, t)
    assert merged["progress"] == 10 and merged["datetime"] == ts(2020, 1, 1)
    assert merged["lastaccesstime"] == "2022-01-01 05:30:00:000+0530"  # the same instant: T wins
    assert merged["extra"] == "to" and merged["userid"] == T


def test_plan_copies_unmatched_rows_whole_and_writes_only_merged_columns_of_matches():
    f_rows = [cons(F, "c1", status=2, viewcount=1, completedcount=1, progress=100),
              cons(F, "c9", course="C2", batch="B2", status=1, viewcount=4, progress=20, lastaccesstime="x")]
    t_rows = [cons(T, "c1", status=1, viewcount=2, completedcount=0, progress=50, lastreadcontentid="keep")]
    plan = M.plan_consumption_merge(f_rows, t_rows, T)
    assert (plan.merged, plan.copied, plan.case_mismatches) == (1, 1, [])
    merged, copied = plan.writes
    assert set(merged) == {*M.CONSUMPTION_KEY, *M.MERGED_COLUMNS}, "T's other columns are never written"
    assert {k: v for k, v in merged.items() if v is not None} == {
        "userid": T, "courseid": "C", "batchid": "B", "contentid": "c1", "status": 2, "progress": 100,
        "viewcount": 3, "completedcount": 1}
    assert copied == {**f_rows[1], "userid": T}


def test_plan_matches_case_insensitively_reports_it_and_accumulates_several_sources():
    f_rows = [cons(F, "DO_1", course="c", batch="b", viewcount=1), cons(F, "do_1", course="C", batch="B", viewcount=2)]
    t_rows = [cons(T, "Do_1", course="C", batch="b", viewcount=10)]
    plan = M.plan_consumption_merge(f_rows, t_rows, T)
    assert plan.merged == 2 and plan.copied == 0
    assert plan.case_mismatches == [(("c", "b", "DO_1"), ("C", "b", "Do_1")), (("C", "B", "do_1"), ("C", "b", "Do_1"))]
    assert len(plan.writes) == 1
    assert plan.writes[0]["contentid"] == "Do_1" and plan.writes[0]["viewcount"] == 13


def test_replanning_from_the_pre_merge_snapshot_writes_the_same_rows_so_counters_are_added_once():
    """Weakness 3.8.2: the reference summed again on every replay. Planned from the journal's
    snapshot of T, a re-run writes identical rows; planned from T's current rows it would not."""
    f_rows = [cons(F, "c1", viewcount=3, completedcount=1), cons(F, "c2", viewcount=1)]
    snapshot = [cons(T, "c1", viewcount=2, completedcount=1)]
    first = M.plan_consumption_merge(f_rows, snapshot, T)
    again = M.plan_consumption_merge(f_rows, snapshot, T)
    assert first.writes == again.writes
    assert [w["viewcount"] for w in first.writes] == [5, 1]
    after_first = [{**snapshot[0], **first.writes[0]}, first.writes[1]]
    naive = M.plan_consumption_merge(f_rows, after_first, T)
    assert [w["viewcount"] for w in naive.writes] == [8, 2], "what the journal prevents"


# ---------------------------------------------------------------- step 2: activity aggregates

def test_merge_completed_count_is_the_max_with_missing_values_as_zero():
    assert M.merge_completed_count({"completedCount": 2.0}, {"completedCount": 5.0}) == 5.0
    assert M.merge_completed_count({"completedCount": 7.0}, {"completedCount": 5.0}) == 7.0
    assert M.merge_completed_count({}, None) == 0.0
    assert M.merge_completed_count(None, {"completedCount": 3}) == 3.0


def agg_row(user, course, context, aggregates=None, agg=None, details=None):
    return {"activity_type": "Course", "activity_id": course, "user_id": user, "context_id": context,
            "aggregates": aggregates, "agg": agg, "agg_details": details, "agg_last_updated": None}


def test_target_aggregates_are_read_from_the_target_and_other_keys_are_not_planned():
    """Weakness 3.8.3: the reference read F's row as T's (T's larger count was overwritten) and
    replaced T's whole maps (score keys, agg_details). Only completedCount and F's agg keys are planned."""
    f_rows = [agg_row(F, "C1", "cb:B1", {"completedCount": 2.0, "score:x": 9.0}, {"completedCount": 2, "n": 1}, ["f"]),
              agg_row(F, "C2", "cb:B2", {"completedCount": 1.0})]
    t_rows = [agg_row(T, "C1", "cb:B1", {"completedCount": 3.0, "score:a": 4.0}, {"completedCount": 1, "n": 5}, ["t"]),
              agg_row(T, "C3", "cb:B3", {"completedCount": 8.0})]
    assert M.plan_aggregate_merge(f_rows, t_rows) == [
        M.AggregateUpdate("C1", "cb:B1", 3.0, {"completedCount": 2}),
        M.AggregateUpdate("C2", "cb:B2", 1.0, {}),
    ]


def test_legacy_agg_takes_only_larger_source_values():
    assert M.merge_agg_counts({"a": 2, "b": 1, "c": 3, "d": "x"}, {"a": 1, "b": 5}) == {"a": 2, "c": 3}
    assert M.merge_agg_counts(None, {"a": 1}) == {}


# ------------------------------------------------------------------------ step 3: enrolments

def enrol(user, course, batch, **cols):
    return {"userid": user, "courseid": course, "batchid": batch, **cols}


def test_only_batches_the_target_lacks_are_migrated_with_every_column():
    certs = [{"name": "Cert", "id": "cert-1"}]
    f = [enrol(F, "C1", "B1", status=2, progress=9), enrol(F, "C2", "B2", status=2, progress=4, active=True,
                                                           issued_certificates=certs, certificates=certs,
                                                           completedon=ts(2022, 1, 1), addedby="admin")]
    t = [enrol(T, "C1", "B1", status=1, progress=1), enrol(T, "C3", "B3")]
    assert M.plan_enrolment_migration(f, t, T) == [{**f[1], "userid": T}]
    # Compared by batch id only, as in the reference.
    assert M.plan_enrolment_migration([enrol(F, "OTHER", "B3")], t, T) == []
    # A re-run against T's rows after the migration migrates nothing.
    assert M.plan_enrolment_migration(f, t + [{**f[1], "userid": T}], T) == []


# --------------------------------------------------------------------- assessment attempts

def attempt(user, attempt_id, last, course="C1", batch="B1", content="a1", **cols):
    return {"user_id": user, "course_id": course, "batch_id": batch, "content_id": content, "attempt_id": attempt_id,
            "last_attempted_on": last, **cols}


def test_assessment_attempts_are_copied_and_the_latest_attempt_wins():
    """Weakness 3.8.9: the reference did not merge assessment_aggregator at all."""
    f = [attempt(F, "new", ts(2022, 1, 2), total_score=3.0, created_on=ts(2022, 1, 2)),
         attempt(F, "both-newer", ts(2022, 1, 5), total_score=5.0, created_on=ts(2022, 1, 5)),
         attempt(F, "both-older", ts(2022, 1, 1), total_score=1.0),
         attempt(F, "both-equal", ts(2022, 1, 3), total_score=1.0)]
    t = [attempt(T, "both-newer", ts(2022, 1, 3), total_score=2.0, created_on=ts(2021, 12, 31)),
         attempt(T, "both-older", ts(2022, 1, 4), total_score=4.0),
         attempt(T, "both-equal", ts(2022, 1, 3), total_score=2.0),
         attempt(T, "only-target", ts(2022, 1, 1))]
    plan = M.plan_assessment_merge(f, t, T)
    assert plan.copies == [{**f[0], "user_id": T}]
    assert plan.replacements == [{**f[1], "user_id": T, "created_on": ts(2021, 12, 31)}]
    after = t[1:] + plan.copies + plan.replacements
    assert M.plan_assessment_merge(f, after, T) == M.AssessmentPlan(), "a re-run writes nothing"


def test_assessment_contexts_are_the_source_batches_sorted():
    f = [attempt(F, "1", None, course="C2", batch="B2", content="z"), attempt(F, "2", None, content="b"),
         attempt(F, "3", None, content="a"), attempt(F, "4", None, course=None)]
    assert M.assessment_contexts(f) == [("C1", "B1", "a"), ("C2", "B2", "z")]


# ------------------------------------------------------------------------------------ events

def test_batch_enrolment_sync_event_is_the_reference_event():
    assert M.batch_enrolment_sync_event("B1", T, "C1", 1700000000000, "u-1") == {
        "actor": {"id": "Course Batch Updater", "type": "System"},
        "eid": "BE_JOB_REQUEST",
        "edata": {"action": "batch-enrolment-sync", "iteration": 1, "batchId": "B1", "userId": T,
                  "courseId": "C1", "reset": ["completionPercentage", "status", "progress"]},
        "ets": 1700000000000,
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
        "mid": "LP.1700000000000.u-1",
        "object": {"id": f"B1_{T}", "type": "CourseBatchEnrolment"},
    }


def test_enrolment_sync_request_is_what_enrolment_reconciliation_parses():
    ev = M.enrolment_sync_request("B1", T, "C1")
    assert ev == {"eid": "BE_JOB_REQUEST", "edata": {"action": "user-enrolment-sync", "userId": T,
                                                     "courseId": "C1", "batchId": "B1"}}
    assert P.parse_sync_event(ev) == P.EnrolmentKey(T, "C1", "B1")


def test_assessment_recompute_event_takes_the_assessment_jobs_recompute_path():
    assert M.assessment_recompute_event("C1", "B1", T, "a1", 1700000000000) == {
        "assessmentTs": 1700000000000, "batchId": "B1", "courseId": "C1", "userId": T, "contentId": "a1",
        "events": []}


# ------------------------------------------------------------------------- journal and writes

def test_journal_round_trips_rows_with_timestamps_and_maps():
    rows = [cons(T, "c1", viewcount=2, datetime=ts(2022, 1, 1, 5, 6, 7, 123000), lastaccesstime="x", progress=None),
            cons(T, "c2", nested={"k": ts(2020, 1, 1)}, items=[1, 2])]
    j = M.Journal(1700000000123, rows)
    assert M.Journal.loads(j.dumps()) == j
    assert M.Journal.loads(j.dumps().encode()) == j


def test_aware_timestamps_are_stored_as_utc():
    aware = datetime(2022, 1, 1, 10, tzinfo=timezone(timedelta(hours=5)))
    assert M.Journal.loads(M.Journal(1, [{"d": aware}]).dumps()).to_consumption == [{"d": ts(2022, 1, 1, 5)}]


def test_marker_keys_and_done_record():
    assert M.marker_keys("a", "b") == ("merge-user-courses:journal:a:b", "merge-user-courses:done:a:b")
    rec = M.done_record("mid-1", 5, [("C1", "B1", "a1")])
    assert M.done_contexts(rec) == [("C1", "B1", "a1")] and M.done_contexts(rec.encode()) == [("C1", "B1", "a1")]


def test_writable_binds_no_nulls_and_no_empty_collections():
    """Weakness 3.8.4: the reference's full-row inserts wrote nulls, i.e. tombstones."""
    assert M.writable({"a": 1, "b": None, "c": [], "d": {}, "e": "", "f": 0, "g": [{"x": "y"}], "h": False}) == \
        {"a": 1, "e": "", "f": 0, "g": [{"x": "y"}], "h": False}


# ------------------------------------------------------------------------------------ options

def _opts(argv):
    return parse_job_options(argv, extra_groups=merge_courses.EXTRA_GROUPS,
                             defaults=merge_courses.defaults("local"))


def test_options_have_the_reference_and_job_defaults():
    o = _opts([]).get_all_options()
    assert o["kafka_input_topic"] == "local.lms.user.account.merge"
    assert o["kafka_output_failed_topic"] == "local.learning.events.failed"
    assert o["kafka_output_course_batch_updater_topic"] == "local.coursebatch.job.request"
    assert o["kafka_output_enrolment_sync_topic"] == "local.batch.enrolment.sync.request"
    assert o["kafka_output_assessment_recompute_topic"] == "local.telemetry.assess"
    assert o["kafka_groupid"] == "local-merge-courses-group"
    assert o["course_date_format"] == "yyyy-MM-dd HH:mm:ss:SSSZ"
    assert o["merge_enrolment_sync_enabled"] is True and o["merge_assessment_enabled"] is True
    # Not strict by default (issue 12): the reference's own requests carry no edata.action.
    assert o["merge_action_strict"] is False and o["merge_marker_expiry"] == 0
    assert _opts(["--merge_action_strict=true"]).get_all_options()["merge_action_strict"] is True
    assert (o["lms_cassandra_host"], o["lms_cassandra_port"]) == ("localhost", 9042)
    assert o["lms_cassandra_content_consumption_table"] == "user_content_consumption"


def test_reference_conf_keys_reach_the_options(tmp_path: Path):
    conf = tmp_path / "merge-user-courses.conf"
    conf.write_text('kafka { output.course.batch.updater.topic = "dev.coursebatch.job.request" }\n'
                    'course.date.format = "yyyy-MM-dd"\n'
                    'merge.enrolment.sync.enabled = false\n'
                    'task { course_batch_updater.parallelism = 2 }\n')
    o = _opts(["--config", str(conf)]).get_all_options()
    assert o["kafka_output_course_batch_updater_topic"] == "dev.coursebatch.job.request"
    assert o["course_date_format"] == "yyyy-MM-dd" and o["merge_enrolment_sync_enabled"] is False
    assert o["task_course_batch_updater_parallelism"] == 2


def test_the_packaged_confs_swapped_cassandra_host_and_port_fail_with_a_clear_message(tmp_path: Path):
    """Weakness 3.8.7: the packaged conf has port="localhost", host="9042"."""
    conf = tmp_path / "merge-user-courses.conf"
    conf.write_text('lms-cassandra { port = "localhost", host = "9042" }\n')
    with pytest.raises(ValueError, match="bad value for lms-cassandra.port"):
        _opts(["--config", str(conf)])


def test_an_unsupported_date_format_stops_the_job_at_start():
    with pytest.raises(SystemExit, match="course.date.format"):
        merge_settings(_opts(["--course_date_format=yyyy-QQ"]))


def test_failed_records_keep_the_reference_fields_and_the_event():
    ev = request(toAccountId="")
    rec = M.merge_failure("ERR_MERGE_USER_COURSES_SAMZA: edata.toAccountId is missing or empty", ev,
                                      stage="validate")
    assert rec["jobName"] == "MergeUserCourses"
    assert rec["failInfo"] == {"errorCode": "DATA_ERROR", "stage": "validate",
                               "error": "ERR_MERGE_USER_COURSES_SAMZA: edata.toAccountId is missing or empty"}
    assert rec["edata"] == ev["edata"] and rec["mid"] == ev["mid"]
    assert rec["metadata"] == {"validation_error": rec["failInfo"]["error"], "src": "merge-user-courses"}
    parse = M.as_reference_failure({"raw": "{x", "jobName": "merge-user-courses",
                                                "failInfo": {"error": "malformed JSON", "stage": "parse"}})
    assert parse == {"raw": "{x", "jobName": "MergeUserCourses",
                     "failInfo": {"errorCode": "DATA_ERROR", "error": "malformed JSON", "stage": "parse"}}


# ----------------------------------------------------------------- the validation composite

def test_validate_merge_requests_routes_each_request_to_exactly_one_outcome():
    """``ValidateMergeRequests`` (``TestPipeline`` + ``assert_that``): merge work for valid
    requests, one failed record per invalid one, and skips counted with no record."""
    good, bare = request(), {"mid": "ref", "edata": {"fromAccountId": F, "toAccountId": T}}
    skipped, invalid = request(toAccountId=""), request(toAccountId=F)
    with TestPipeline() as p:
        work, failed = p | beam.Create([good, bare, skipped, invalid]) | ValidateMergeRequests()
        assert_that(work | "Pairs" >> beam.Map(lambda w: (w.request.from_user, w.request.to_user, w.event["mid"])),
                    equal_to([(F, T, "LP.1.x"), (F, T, "ref")]), label="work")
        assert_that(failed | "Reasons" >> beam.Map(lambda f: (f["failInfo"]["error"], f["edata"])),
                    equal_to([(f"fromAccountId and toAccountId are the same account: {F}", invalid["edata"])]),
                    label="failed")
    with TestPipeline() as p:
        _, failed = p | beam.Create([bare]) | ValidateMergeRequests(strict_action=True)
        assert_that(failed | beam.Map(lambda f: f["failInfo"]["error"]),
                    equal_to([f"unknown action None: expected {M.MERGE_ACTION}"]))
