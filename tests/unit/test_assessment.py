"""The pure assessment rules (pipelines.domain.assessment) and the job's options, without servers.

Test names say which reference behaviour (spec assessment-and-merge.md §2) or which fixed
reference weakness (§2.11, §4) they pin down.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines import assessment, job
from pipelines.domain import assessment as A
from pipelines.domain.javafmt import gson_string
from pipelines.options.assessment import assessment_settings
from pipelines.transforms.scores import ValidateAttemptFn

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000


def assess(qid, ets, score=1, maxscore=1, **edata):
    ev = {"eid": "ASSESS", "ets": ets, "mid": f"ASSESS:{qid}:{ets}",
          "edata": {"item": {"id": qid, "maxscore": maxscore, "type": "mcq", "title": f"T{qid}", "desc": "d",
                             "params": [{"1": '{"text":"A"}'}]},
                    "score": score, "resvalues": [{"1": '{"text":"A"}'}], "duration": 3}}
    ev["edata"].update(edata)
    return ev


DEFAULT = object()


def event(events=DEFAULT, **top):
    """A batch-assess event; a field given as ``...`` is left out."""
    ev = {"assessmentTs": T0, "batchId": "B", "courseId": "C", "userId": "U", "attemptId": "AT", "contentId": "Q",
          "events": [assess("q1", T0 - 10)] if events is DEFAULT else events}
    ev.update(top)
    return {k: v for k, v in ev.items() if v is not ...}


# ------------------------------------------------------------------------------- validation

def test_parse_attempt_reads_the_reference_fields():
    a = A.parse_attempt(event([assess("q1", T0 - 20, 1, 2), assess("q2", T0 - 10, 0.5, 1)]))
    assert (a.user_id, a.course_id, a.batch_id, a.content_id, a.attempt_id, a.assessment_ts) == \
        ("U", "C", "B", "Q", "AT", T0)
    assert not a.recompute and a.key == ("U", "C", "B") and a.pk == ("U", "C", "B", "Q", "AT")
    q1, q2 = a.questions
    assert q1 == A.Question("q1", T0 - 20, 2.0, 1.0, "mcq", "Tq1", "d", 3.0, ({"1": '{"text":"A"}'},),
                            ({"1": '{"text":"A"}'},), 0)
    assert (q2.id, q2.score, q2.max_score) == ("q2", 0.5, 1.0)
    assert a.source["attemptId"] == "AT", "the original event is carried for the failed output"


@pytest.mark.parametrize("events", [..., None, []])
def test_missing_null_or_empty_events_is_the_recompute_path(events):
    a = A.parse_attempt(event(events, attemptId=..., assessmentTs=...) if events is ... else event(events))
    assert a.recompute and a.questions == ()


@pytest.mark.parametrize("field", ["userId", "batchId"])
def test_recompute_event_without_user_or_batch_fails_with_a_reason_instead_of_crashing(field):
    # §2.4/§2.11.1: the reference's score operator threw here and restarted the job forever.
    with pytest.raises(A.InvalidAssessment, match=f"{field} is missing"):
        A.parse_attempt(event([], **{field: ...}))


@pytest.mark.parametrize("top, reason", [
    ({"courseId": ...}, "courseId is missing"),
    ({"contentId": 42}, "contentId is missing or not a non-empty string"),
    ({"userId": ""}, "userId is missing"),
    ({"attemptId": ...}, "attemptId is missing"),
    ({"assessmentTs": ...}, "assessmentTs must be an integral epoch time"),
    ({"assessmentTs": "soon"}, "assessmentTs must be an integral epoch time"),
    ({"assessmentTs": 1.5}, "assessmentTs must be an integral epoch time"),
    ({"assessmentTs": True}, "assessmentTs must be an integral epoch time"),
    ({"assessmentTs": 1 << 70}, "assessmentTs is out of range"),
    ({"events": {"q": 1}}, "events must be a list"),
    ({"events": ["x"]}, r"events\[0\] must be an object"),
    ({"events": [{"edata": {}}]}, r"events\[0\].ets must be an integral"),
    ({"events": [{"ets": 1}]}, r"events\[0\].edata is missing"),
    ({"events": [{"ets": 1, "edata": {"score": 1}}]}, r"events\[0\].edata.item is missing"),
    ({"events": [assess("q", 1, resvalues=None)]}, r"events\[0\].edata.resvalues must be a list"),
    ({"events": [assess("q", 1, resvalues=["a"])]}, r"events\[0\].edata.resvalues\[0\] must be an object"),
    ({"events": [assess("q", 1, score="lots")]}, r"events\[0\].edata.score must be a number"),
    ({"events": [assess("q", 1, score=True)]}, r"events\[0\].edata.score must be a number"),
    ({"events": [assess("q", 1, score=float("nan"))]}, r"events\[0\].edata.score must be a finite number"),
    ({"events": [assess({"id": 1}, 1)]}, r"events\[0\].edata.item.id must be a string"),
])
def test_invalid_events_raise_a_reason(top, reason):
    with pytest.raises(A.InvalidAssessment, match=reason):
        A.parse_attempt(event(**top))


def test_item_params_must_be_a_list():
    ev = assess("q", 1)
    del ev["edata"]["item"]["params"]
    with pytest.raises(A.InvalidAssessment, match=r"edata.item.params must be a list, got null"):
        A.parse_attempt(event([ev]))


def test_small_and_string_timestamps_are_accepted():
    # §2.11.8: the reference cast to Long, so a JSON integer below 2^31 or a string failed.
    a = A.parse_attempt(event([assess("q1", 5)], assessmentTs=1000))
    assert a.assessment_ts == 1000 and a.questions[0].ets == 5
    a = A.parse_attempt(event([assess("q1", "1700000000001")], assessmentTs=" 1700000000002 "))
    assert a.assessment_ts == 1700000000002 and a.questions[0].ets == 1700000000001
    assert A.parse_attempt(event(assessmentTs=1.7e12)).assessment_ts == 1_700_000_000_000


def test_missing_numbers_are_zero_numeric_strings_count_and_missing_texts_are_null():
    ev = assess("q1", 1, score="0.5", duration=None)
    del ev["edata"]["item"]["maxscore"], ev["edata"]["item"]["title"], ev["edata"]["item"]["desc"]
    ev["edata"]["item"]["type"] = 7
    q = A.parse_attempt(event([ev])).questions[0]
    assert (q.score, q.max_score, q.duration, q.title, q.description, q.type) == (0.5, 0.0, 0.0, None, None, "7")


def test_answer_maps_keep_strings_exact_and_encode_other_values_compactly():
    maps = A.answer_maps([{"1": ' {"text": "x"} ', "n": 1, "o": {"a": None, "b": [1, None]}, "z": None}], "r")
    assert maps == ({"1": ' {"text": "x"} ', "n": "1", "o": '{"b":[1,null]}'},)


# -------------------------------------------------------------------------- unique questions

def test_unique_questions_keep_the_latest_answer_per_question():
    events = [assess("q1", 300, score=1), assess("q2", 100, score=0), assess("q1", 100, score=0),
              assess("q2", 200, score=1), assess("q1", 200, score=0)]
    qs = A.unique_questions(events)
    assert [(q.id, q.ets, q.score) for q in qs] == [("q2", 200, 1.0), ("q1", 300, 1.0)]


def test_unique_questions_break_ets_ties_by_input_position():
    qs = A.unique_questions([assess("q1", 100, score=1), assess("q1", 100, score=0)])
    assert [(q.id, q.score, q.position) for q in qs] == [("q1", 1.0, 0)]


def test_unique_questions_order_is_deterministic_by_time_then_position():
    # §2.11.5: the reference's order (and so its float sums) came from hash-map iteration.
    events = [assess("c", 50), assess("a", 10), assess("b", 50), assess("d", 10)]
    assert [q.id for q in A.unique_questions(events)] == ["a", "d", "c", "b"]
    assert [q.id for q in A.unique_questions(list(reversed(events)))] == ["d", "a", "b", "c"]


def test_questions_without_an_id_form_one_group():
    ev1, ev2 = assess(None, 1, score=1), assess("q", 2)
    del ev1["edata"]["item"]["id"]
    qs = A.unique_questions([ev1, ev2, assess(None, 3, score=0)])
    assert [(q.id, q.ets) for q in qs] == [("q", 2), (None, 3)]


# ------------------------------------------------------------------------------- formats

@pytest.mark.parametrize("x, text", [
    (2.0, "2.0"), (1.33, "1.33"), (10.0, "10.0"), (0.125, "0.12"), (0.375, "0.38"), (1.005, "1.0"),
    (2.675, "2.67"), (0.1 + 0.2, "0.3"), (1.999, "2.0"), (0.0, "0.0"), (-1.5, "-1.5"), (-0.0, "-0.0"),
    (-0.001, "-0.0"), (1234567.891, "1234567.89"), (1e20, "100000000000000000000.0"),
])
def test_grand_total_numbers_are_java_decimal_format(x, text):
    assert A.format_decimal(x) == text


def test_format_grand_total():
    assert A.format_grand_total(2.0, 3.0) == "2.0/3.0"
    assert A.format_grand_total(1.3333333, 2) == "1.33/2.0"


@pytest.mark.parametrize("x, text", [
    (2.0, "2.0"), (1.33, "1.33"), (0.0, "0.0"), (-0.0, "-0.0"), (100.0, "100.0"), (0.001, "0.001"),
    (9999999.0, "9999999.0"), (1e7, "1.0E7"), (12345678.9, "1.23456789E7"), (0.0009, "9.0E-4"),
    (1.5e-4, "1.5E-4"), (-2.5e10, "-2.5E10"), (1 / 3, "0.3333333333333333"), (0.1 + 0.2, "0.30000000000000004"),
])
def test_agg_details_doubles_are_java_double_to_string(x, text):
    assert A.java_double_to_string(x) == text


def test_gson_string_escapes_like_gson():
    assert gson_string('a"b\\c<d>&=\'\n\x01é') == '"a\\"b\\\\c\\u003cd\\u003e\\u0026\\u003d\\u0027\\n\\u0001é"'


@pytest.mark.parametrize("ms, text", [
    (1588003042000, "Apr 27, 2020, 3:57:22 PM"),
    (1587988642999, "Apr 27, 2020, 11:57:22 AM"),
    (1577836800000, "Jan 1, 2020, 12:00:00 AM"),
    (1577880000000, "Jan 1, 2020, 12:00:00 PM"),
])
def test_agg_details_dates_are_the_java_11_us_medium_format(ms, text):
    assert A.java_medium_datetime(ms) == text


def test_agg_details_dates_do_not_depend_on_the_machine_time_zone_or_locale():
    # §2.11.6: the reference printed in the JVM's zone and locale (U+202F before AM/PM on new JDKs).
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    try:
        assert A.java_medium_datetime(1588003042000) == "Apr 27, 2020, 3:57:22 PM"
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
    assert A.java_medium_datetime(1588003042000, timezone(timedelta(hours=5, minutes=30))) == \
        "Apr 27, 2020, 9:27:22 PM"


# ------------------------------------------------------------------------ attempt metrics

def test_score_metrics_sum_in_question_order_with_exact_grand_total():
    qs = A.unique_questions([assess("a", 1, 0.1, 1), assess("b", 2, 0.2, 1), assess("c", 3, 0.33, 1.5)])
    m = A.score_metrics(qs)
    assert m == A.ScoreMetrics(0.1 + 0.2 + 0.33, 3.5, "0.63/3.5")
    assert A.score_metrics([]) == A.ScoreMetrics(0.0, 0.0, "0.0/0.0")


def test_question_udt_field_by_field():
    ev = assess("q1", T0, 0.5, 2, duration=14, resvalues=[{"1": '{"text":"W"}', "n": 2}])
    q = A.parse_attempt(event([ev])).questions[0]
    assert A.question_udt(q) == {
        "id": "q1", "assess_ts": T0, "max_score": 2.0, "score": 0.5, "type": "mcq", "title": "Tq1",
        "resvalues": [{"1": '{"text":"W"}', "n": "2"}], "params": [{"1": '{"text":"A"}'}], "description": "d",
        "duration": Decimal("14.0")}
    assert str(A.question_udt(A.Question("x", 1, duration=2.25))["duration"]) == "2.25"


def test_attempt_row_is_the_full_reference_row():
    a = A.parse_attempt(event([assess("q1", T0 - 5, 1, 2), assess("q2", T0 - 4, 0, 1)]))
    row = A.attempt_row(a, created_on=T0 - 100, now_ms=T0 + 1)
    assert {k: v for k, v in row.items() if k != "question"} == {
        "course_id": "C", "batch_id": "B", "user_id": "U", "content_id": "Q", "attempt_id": "AT",
        "updated_on": T0 + 1, "created_on": T0 - 100, "last_attempted_on": T0, "total_score": 1.0,
        "total_max_score": 3.0, "grand_total": "1.0/3.0"}
    assert [q["id"] for q in row["question"]] == ["q1", "q2"]


def attempt(ts, attempt_id="AT", content="Q"):
    return A.parse_attempt(event(assessmentTs=ts, attemptId=attempt_id, contentId=content))


def test_newer_attempts_only_and_created_on_is_kept():
    new, newer, same, older = attempt(200), attempt(300), attempt(200), attempt(100)
    stored = {new.pk: A.StoredAttempt(200, 50)}
    accepted, skipped = A.decide_attempts([newer, same, older], stored, now_ms=999)
    assert accepted == [(newer, 50)] and skipped == [same, older]
    accepted, skipped = A.decide_attempts([new], {}, now_ms=999)
    assert accepted == [(new, 999)] and skipped == []


def test_newer_attempts_only_within_one_batch_in_arrival_order():
    # Two versions of one attempt in a batch, newest first: the older one must not win.
    newest, old = attempt(300), attempt(200)
    accepted, skipped = A.decide_attempts([newest, old], {}, now_ms=7)
    assert accepted == [(newest, 7)] and skipped == [old]
    accepted, skipped = A.decide_attempts([old, newest], {}, now_ms=7)
    assert accepted == [(old, 7), (newest, 7)] and skipped == []
    other = attempt(100, attempt_id="AT2")
    assert A.decide_attempts([newest, other], {}, 7)[0] == [(newest, 7), (other, 7)]


def test_rows_found_counts_rows_written_earlier_in_the_same_batch_like_the_reference():
    """The reference's db-read-count: a row found per event, so the later versions of an attempt
    written earlier in the batch count (its test: first, older, latest -> 2 reads)."""
    first, older, latest, other = attempt(200), attempt(100), attempt(300), attempt(50, attempt_id="AT2")
    accepted, skipped = A.decide_attempts([first, older, latest, other], {}, now_ms=7)
    assert skipped == [older] and A.rows_found(accepted, {}) == [False, True, False]
    stored = {other.pk: A.StoredAttempt(10, 5), first.pk: None}
    accepted, _ = A.decide_attempts([first, latest, other], stored, now_ms=7)
    assert A.rows_found(accepted, stored) == [False, True, True]


def test_a_stored_row_without_timestamps_is_overwritten():
    a = attempt(100)
    assert A.decide_attempts([a], {a.pk: A.StoredAttempt(None, None)}, now_ms=5) == ([(a, 5)], [])


# ------------------------------------------------------------------------- question count

@pytest.mark.parametrize("raw, n", [
    ('{"totalQuestions": 5}', 5), ('{"totalquestions": 5}', 5), ('{"total_questions": "5"}', 5),
    (b'{"totalQuestions": 5.0}', 5), ('{"totalQuestions": " 7 "}', 7), ('{"totalQuestions": 5.5}', 0),
    ('{"totalQuestions": -1}', 0), ('{"totalQuestions": ""}', 0), ('{"totalQuestions": "five"}', 0),
    ('{"totalQuestions": true}', 0), ('{"name": "x"}', 0), ("not json", 0), ("[1]", 0), (None, 0),
])
def test_total_questions_from_the_content_cache(raw, n):
    # §2.11.8: HEAD accepts "5", 5.3.0 failed the event on it; both key spellings work.
    assert A.total_questions_from_cache(raw) == n


def test_total_questions_from_the_content_read_api():
    ok = {"responseCode": "OK", "result": {"content": {"totalQuestions": 4}}}
    assert A.total_questions_from_api("c", ok) == (True, 4)
    assert A.total_questions_from_api("c", {**ok, "responseCode": "ok"}) == (True, 4)
    assert A.total_questions_from_api("c", {"responseCode": "OK", "result": {"content": {}}}) == (True, None)
    assert A.total_questions_from_api("c", {"responseCode": "OK", "result": {"content": {"totalQuestions": "4"}}}) \
        == (True, 4)
    assert A.total_questions_from_api("c", {"responseCode": "RESOURCE_NOT_FOUND"}) == (False, None)
    assert A.total_questions_from_api("c", {"result": {}}) == (False, None)
    assert A.total_questions_from_api("c", "<html>") == (False, None)
    with pytest.raises(A.InvalidAssessment, match="non-integral totalQuestions 4.5 for c"):
        A.total_questions_from_api("c", {"responseCode": "OK", "result": {"content": {"totalQuestions": 4.5}}})


def test_question_count_check_rejects_both_ways():
    # §2.5 E.3: the reference rejected only more questions than the content has.
    assert A.question_count_problem(3, 3) is None
    assert A.question_count_problem(3, None) is None
    assert "4 unique questions but the content has totalQuestions=3" in A.question_count_problem(4, 3)
    assert "partial attempt" in A.question_count_problem(2, 3)
    assert A.question_count_problem(2, 3, allow_partial=True) is None
    assert A.question_count_problem(4, 3, allow_partial=True) is not None


# ----------------------------------------------------------------------------- score rules

ROWS = [
    {"content_id": "c1", "attempt_id": "a1", "last_attempted_on": 1588003042000, "score": 2.0, "total_max_score": 4.0},
    {"content_id": "c1", "attempt_id": "a2", "last_attempted_on": 1588003042400, "score": 3.0, "total_max_score": 5.0},
    {"content_id": "c1", "attempt_id": "a3", "last_attempted_on": 1588003042100, "score": 3.0, "total_max_score": 6.0},
    {"content_id": "c2", "attempt_id": "b1", "last_attempted_on": None, "score": None, "total_max_score": None},
]


def test_best_score_aggregates_take_the_best_rows_own_max_score_and_count_attempts():
    assert A.best_score_aggregates(ROWS) == {
        "score:c1": 3.0, "max_score:c1": 5.0, "attempts_count:c1": 3.0,
        "score:c2": 0.0, "max_score:c2": 0.0, "attempts_count:c2": 1.0}
    assert A.best_score_aggregates([]) == {}


def test_agg_details_are_gson_strings_in_reference_field_order():
    assert A.agg_details(ROWS[:1] + ROWS[3:]) == [
        '{"attempt_id":"a1","last_attempted_on":"Apr 27, 2020, 3:57:22 PM","score":2.0,"content_id":"c1",'
        '"max_score":4.0,"type":"attempt_metrics"}',
        '{"attempt_id":"b1","score":0.0,"content_id":"c2","max_score":0.0,"type":"attempt_metrics"}']
    big = [{**ROWS[0], "score": 12345678.0}]
    assert '"score":1.2345678E7' in A.agg_details(big, "custom", timezone(timedelta(hours=-3)))[0]
    assert '"type":"custom"' in A.agg_details(big, "custom")[0]
    assert "12:57:22 PM" in A.agg_details(big, "custom", timezone(timedelta(hours=-3)))[0]
    assert all(json.loads(s) for s in A.agg_details(ROWS))


def test_latest_attempt_id_uses_millisecond_timestamps_not_parsed_strings():
    # §2.11.6: a1..a3 fall in one second; the reference's string round trip picked the first row.
    assert A.latest_attempt_id(ROWS[:3]) == "a2"
    assert A.latest_attempt_id(ROWS) == "", "more than one assessment content"
    assert A.latest_attempt_id([]) == ""
    tie = [{**ROWS[0], "attempt_id": "x"}, {**ROWS[0], "attempt_id": "y"}]
    assert A.latest_attempt_id(tie) == "x"


def test_score_update_bundles_the_three():
    u = A.score_update(ROWS[:2])
    assert u.aggregates["score:c1"] == 3.0 and len(u.agg_details) == 2 and u.latest_attempt_id == "a2"


def test_cert_issue_event_field_by_field_and_built_as_data():
    ev = A.cert_issue_event("B1", "C1", "U1", "A1", 1700000000000, "3f1c")
    assert json.dumps(ev, separators=(",", ":")) == (
        '{"eid":"BE_JOB_REQUEST","ets":1700000000000,"mid":"LP.1700000000000.3f1c",'
        '"actor":{"id":"Course Certificate Generator","type":"System"},'
        '"context":{"pdata":{"ver":"1.0","id":"org.sunbird.platform"}},'
        '"object":{"id":"B1_C1","type":"CourseCertificateGeneration"},'
        '"edata":{"userIds":["U1"],"action":"issue-certificate","iteration":1,"trigger":"auto-issue",'
        '"batchId":"B1","reIssue":false,"courseId":"C1","attemptId":"A1"}}')
    # §2.7: the reference interpolated ids into a string; a quote broke the JSON.
    odd = A.cert_issue_event('B"1', "C1", 'U"1', "", 1, "u")
    assert json.loads(json.dumps(odd))["edata"]["userIds"] == ['U"1']


# -------------------------------------------------------------------------------- options

def opts(*argv):
    return job.values(job.job_options(list(argv), assessment.defaults, (assessment.AssessmentOptions,)))


def test_defaults_follow_the_reference_conf():
    o = opts()
    assert (o["kafka_input_topic"], o["kafka_failed_topic"], o["kafka_groupid"], o["kafka_output_certissue_topic"]) \
        == ("local.telemetry.assess", "local.telemetry.assess.failed", "local-assessment-aggregator-group",
            "local.issue.certificate.request")
    assert (o["lms_cassandra_table"], o["lms_cassandra_questionudttype"], o["lms_cassandra_activitytable"]) == \
        ("assessment_aggregator", "question", "user_activity_agg")
    assert (o["redis_database_relationcache_id"], o["redis_database_contentcache_id"]) == (10, 5)
    assert o["assessment_skip_missingrecords"] is False and o["user_activity_agg_type"] == "attempt_metrics"
    assert o["content_read_api"].endswith("/api/content/v1/read/")
    assert opts("--job_env=prod")["kafka_input_topic"] == "prod.telemetry.assess"


def test_deployment_style_conf_with_dp_core_spellings(tmp_path):
    o = opts("--config", str(ROOT / "local/sample/assessment/assessment-aggregator.conf"))
    assert o["kafka_broker_servers"] == "localhost:9092"
    assert o["assessment_skip_missingrecords"] is True
    assert o["task_assessaggregator_parallelism"] == 1 and o["task_scoreaggregator_parallelism"] == 1
    conf = tmp_path / "docs-spelling.conf"
    conf.write_text('kafka.consumer.broker-servers = "k1:9092"\nkafka.output.failed.topic = "x.failed"\n'
                    'lms-cassandra.activityytable = "agg2"\nassessment.skip.missingRecords = "true"\n'
                    'job.env = "dev"\n')
    o = opts("--config", str(conf), "--user_activity_agg_type=other")
    assert (o["kafka_broker_servers"], o["kafka_failed_topic"], o["lms_cassandra_activitytable"]) == \
        ("k1:9092", "x.failed", "agg2")
    assert o["assessment_skip_missingrecords"] is True and o["user_activity_agg_type"] == "other"
    assert o["kafka_input_topic"] == "dev.telemetry.assess"


def test_settings_use_the_meta_redis_and_both_cache_dbs():
    s = assessment_settings(job.job_options(["--redis_meta_host=meta", "--redis_database_contentcache_id=7"],
                                            assessment.defaults, (assessment.AssessmentOptions,)))
    assert (s.relation_cache.host, s.relation_cache.db, s.content_cache.host, s.content_cache.db) == \
        ("meta", 10, "meta", 7)
    assert s.job_name == "AssessmentAggregatorJob" and s.score_namespace == "AssessmentAggregatorJob.score"
    assert s.agg_timezone == "UTC" and s.table == "assessment_aggregator"


def test_store_timestamp_conversion_round_trips_milliseconds():
    from datetime import datetime

    from pipelines.transforms.scores import to_ms, zone
    assert to_ms(datetime(2020, 4, 27, 15, 57, 22, 395000)) == 1588003042395
    assert to_ms(datetime(2020, 4, 27, 15, 57, 22, 395000, tzinfo=UTC)) == 1588003042395
    assert to_ms(None) is None and to_ms(5) == 5
    assert zone("UTC") is UTC and str(zone("Asia/Kolkata")) == "Asia/Kolkata"


def test_pathological_input_is_a_failed_event_not_a_crash():
    from pipelines.io.codec import dumps

    deep: dict = {}
    cur = deep
    for _ in range(600):
        cur["a"] = {}
        cur = cur["a"]
    ev = event([assess("q", 1, resvalues=[{"x": deep}])])
    (out,) = list(ValidateAttemptFn().process(ev))
    assert out.tag == "failed" and out.value["failInfo"]["error"].startswith("invalid event: RecursionError")
    assert json.loads(out.value["raw"])["attemptId"] == "AT" and dumps(out.value)
    (ok,) = list(ValidateAttemptFn().process(event()))
    assert isinstance(ok, A.Attempt)
