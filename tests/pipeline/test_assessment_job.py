"""assessment-aggregator on DirectRunner against the real stack (Cassandra, Redis, Sunbird emulator).

Every test builds its own course (ids prefixed with ``run_id``) in the relation cache (Redis db 10),
the content cache (db 5) and the emulator's content read API, runs the job over JSONL and asserts
the ``assessment_aggregator`` rows (question UDTs included), the ``user_activity_agg`` row and every
output event.
"""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import apache_beam as beam
import pytest
import redis
import requests
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import assessment
from pipelines.io.cassandra import CassandraConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.options.assessment import AssessmentSettings
from pipelines.transforms.scores import AggregateScores, ValidateAttempts
from tests.batch_runs import read_topic, run_job

EMULATOR = "http://127.0.0.1:9000"
T0 = 1_700_000_000_000
EPOCH = datetime(1970, 1, 1)
DECORATION = ("jobName", "failInfo", "flags", "metadata")


def ms(dt: datetime | None) -> int | None:
    return None if dt is None else round((dt - EPOCH) / timedelta(milliseconds=1))


@pytest.fixture
def course(stack, run_id):
    """Course C (batch B) with leaves I (a resource), Q1, Q2 and Q3 (assessments).

    Q1 has totalQuestions=2 in the content cache, Q2 has 3 only in the content read API, Q3 is
    unknown to both (the API answers RESOURCE_NOT_FOUND).
    """
    c = {k: f"{run_id}-{k}" for k in ("C", "B", "I", "Q1", "Q2", "Q3", "U1", "U2", "U3", "X",
                                     *(f"A{i}" for i in range(1, 11)))}
    redis.Redis(port=stack["redis"], db=10).sadd(f"{c['C']}:{c['C']}:leafnodes", c["I"], c["Q1"], c["Q2"], c["Q3"])
    redis.Redis(port=stack["redis"], db=5).set(c["Q1"], json.dumps({"identifier": c["Q1"], "totalQuestions": 2}))
    requests.post(f"{EMULATOR}/__emulator/seed", timeout=10, json={"contents": {
        c["Q2"]: {"identifier": c["Q2"], "objectType": "Content", "totalQuestions": 3}}}).raise_for_status()
    return c


def question(qid, ets, score, maxscore=1, answer="1", **item):
    return {"eid": "ASSESS", "ets": ets, "ver": "3.1", "mid": f"ASSESS:{qid}:{ets}",
            "actor": {"id": "someone", "type": "User"}, "object": {"id": "x", "type": "Content"},
            "edata": {"item": {"id": qid, "maxscore": maxscore, "type": "mcq", "title": f"What is {qid}?\n",
                               "desc": "", "params": [{"1": '{"text":"Yes\\n"}'}, {"answer": {"correct": ["1"]}}],
                               **item},
                      "index": 1, "pass": "Yes", "score": score, "resvalues": [{answer: f'{{"text":"{answer}"}}'}],
                      "duration": 14}}


def attempt(c, user, content, attempt_id, ts, questions, **top):
    ev = {"assessmentTs": ts, "batchId": c["B"], "courseId": c["C"], "userId": c[user], "attemptId": c[attempt_id],
          "contentId": c[content] if content in c else content, "events": questions}
    ev.update(top)
    return {k: v for k, v in ev.items() if v is not ...}


def recompute(c, user, **top):
    ev = {"batchId": c["B"], "courseId": c["C"], "userId": c[user], "contentId": c["Q1"]}
    ev.update(top)
    return {k: v for k, v in ev.items() if v is not ...}


def run(tmp_path: Path, name: str, lines: list, *extra: str) -> tuple[dict, Path]:
    return run_job(assessment, tmp_path, name, lines, *extra, extra_groups=(assessment.AssessmentOptions,),
                   keep_namespace=True)


def metric(totals: dict, name: str, score: bool = False) -> int:
    ns = assessment.SCORE_NAMESPACE if score else assessment.JOB_NAME
    return totals.get(f"{ns}:{name}", 0)


def read(out: Path, topic: str) -> list[dict]:
    return read_topic(out, topic)


def attempt_rows(cql, c, user) -> dict:
    rows = cql.execute("SELECT * FROM assessment_aggregator WHERE user_id=%s AND course_id=%s", (c[user], c["C"]))
    return {(r.content_id, r.attempt_id): r for r in rows}


def agg_row(cql, c, user, course="C"):
    return cql.execute("SELECT aggregates, agg_details, agg_last_updated, agg FROM user_activity_agg WHERE "
                       "activity_type='Course' AND activity_id=%s AND user_id=%s AND context_id=%s",
                       (c[course], c[user], f"cb:{c['B']}")).one()


def udt(q) -> dict:
    return {"id": q.id, "assess_ts": ms(q.assess_ts), "max_score": q.max_score, "score": q.score, "type": q.type,
            "title": q.title, "description": q.description, "duration": q.duration,
            "resvalues": [dict(m) for m in q.resvalues], "params": [dict(m) for m in q.params]}


PARAMS = [{"1": '{"text":"Yes\\n"}'}, {"answer": '{"correct":["1"]}'}]


def expected_cert(c, user, attempt_id):
    return {"eid": "BE_JOB_REQUEST", "actor": {"id": "Course Certificate Generator", "type": "System"},
            "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
            "object": {"id": f"{c['B']}_{c['C']}", "type": "CourseCertificateGeneration"},
            "edata": {"userIds": [c[user]], "action": "issue-certificate", "iteration": 1, "trigger": "auto-issue",
                      "batchId": c["B"], "reIssue": False, "courseId": c["C"], "attemptId": attempt_id}}


def journey(c) -> list:
    return [
        # U1, Q1, attempt A1: qa answered wrong then right; the latest answer per question counts.
        attempt(c, "U1", "Q1", "A1", T0 + 1_000, [question("qa", T0 + 100, 0), question("qb", T0 + 200, 0.5),
                                                  question("qa", T0 + 300, 1, answer="2")]),
        # U1, Q1, attempt A2: the better attempt.
        attempt(c, "U1", "Q1", "A2", T0 + 5_000, [question("qa", T0 + 4_000, 1), question("qb", T0 + 4_100, 1)]),
        # U1, Q2, attempt A3: scores whose float sum needs an exact, deterministic format.
        attempt(c, "U1", "Q2", "A3", T0 + 3_000, [question("qc", T0 + 2_000, 0.1), question("qd", T0 + 2_001, 0.2),
                                                  question("qe", T0 + 2_002, 0.33)]),
        # U2, Q2, A4, then a recompute request for U2; U3 asks for a recompute without any attempt.
        attempt(c, "U2", "Q2", "A4", T0 + 7_000, [question("qc", T0 + 6_000, 1, 2)]),
        recompute(c, "U2"),
        recompute(c, "U3"),
    ]


def test_attempts_rows_aggregates_and_cert_events(cql, course, tmp_path):
    c = course
    # activity-aggregate-updater's completedCount is already there and must survive the map merge.
    cql.execute("UPDATE user_activity_agg SET aggregates = aggregates + {'completedCount': 1.0} WHERE "
                "activity_type='Course' AND activity_id=%s AND user_id=%s AND context_id=%s",
                (c["C"], c["U1"], f"cb:{c['B']}"))
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    totals, out = run(tmp_path, "journey", journey(c))

    rows = attempt_rows(cql, c, "U1")
    assert sorted(rows) == [(c["Q1"], c["A1"]), (c["Q1"], c["A2"]), (c["Q2"], c["A3"])]
    a1 = rows[(c["Q1"], c["A1"])]
    assert (a1.user_id, a1.course_id, a1.batch_id) == (c["U1"], c["C"], c["B"])
    assert (a1.total_score, a1.total_max_score, a1.grand_total) == (1.5, 2.0, "1.5/2.0")
    assert ms(a1.last_attempted_on) == T0 + 1_000
    assert a1.created_on == a1.updated_on and a1.created_on >= before
    assert [udt(q) for q in a1.question] == [
        {"id": "qb", "assess_ts": T0 + 200, "max_score": 1.0, "score": 0.5, "type": "mcq", "title": "What is qb?\n",
         "description": "", "duration": Decimal("14.0"), "resvalues": [{"1": '{"text":"1"}'}], "params": PARAMS},
        {"id": "qa", "assess_ts": T0 + 300, "max_score": 1.0, "score": 1.0, "type": "mcq", "title": "What is qa?\n",
         "description": "", "duration": Decimal("14.0"), "resvalues": [{"2": '{"text":"2"}'}], "params": PARAMS}]
    a2 = rows[(c["Q1"], c["A2"])]
    assert (a2.total_score, a2.total_max_score, a2.grand_total, ms(a2.last_attempted_on)) == \
        (2.0, 2.0, "2.0/2.0", T0 + 5_000)
    assert [(q.id, q.score) for q in a2.question] == [("qa", 1.0), ("qb", 1.0)]
    a3 = rows[(c["Q2"], c["A3"])]
    assert (a3.total_score, a3.total_max_score, a3.grand_total) == (0.1 + 0.2 + 0.33, 3.0, "0.63/3.0")
    assert [q.id for q in a3.question] == ["qc", "qd", "qe"]
    a4 = attempt_rows(cql, c, "U2")[(c["Q2"], c["A4"])]
    assert (a4.total_score, a4.total_max_score, a4.grand_total) == (1.0, 2.0, "1.0/2.0")

    agg = agg_row(cql, c, "U1")
    assert dict(agg.aggregates) == {
        "completedCount": 1.0, f"score:{c['Q1']}": 2.0, f"max_score:{c['Q1']}": 2.0,
        f"attempts_count:{c['Q1']}": 2.0, f"score:{c['Q2']}": 0.1 + 0.2 + 0.33, f"max_score:{c['Q2']}": 3.0,
        f"attempts_count:{c['Q2']}": 1.0}
    assert list(agg.agg_details) == [
        f'{{"attempt_id":"{c["A1"]}","last_attempted_on":"Nov 14, 2023, 10:13:21 PM","score":1.5,'
        f'"content_id":"{c["Q1"]}","max_score":2.0,"type":"attempt_metrics"}}',
        f'{{"attempt_id":"{c["A2"]}","last_attempted_on":"Nov 14, 2023, 10:13:25 PM","score":2.0,'
        f'"content_id":"{c["Q1"]}","max_score":2.0,"type":"attempt_metrics"}}',
        f'{{"attempt_id":"{c["A3"]}","last_attempted_on":"Nov 14, 2023, 10:13:23 PM","score":0.6300000000000001,'
        f'"content_id":"{c["Q2"]}","max_score":3.0,"type":"attempt_metrics"}}']
    assert set(agg.agg_last_updated) == set(agg.aggregates) - {"completedCount"} and agg.agg is None
    assert agg.agg_last_updated[f"score:{c['Q1']}"] >= before
    agg2 = agg_row(cql, c, "U2")
    assert dict(agg2.aggregates) == {f"score:{c['Q2']}": 1.0, f"max_score:{c['Q2']}": 2.0,
                                     f"attempts_count:{c['Q2']}": 1.0}
    assert agg_row(cql, c, "U3") is None, "no attempts: nothing to write"

    certs = read(out, "issue.certificate.request")
    by_user = sorted((x["edata"]["userIds"][0], x["edata"]["attemptId"]) for x in certs)
    assert by_user == sorted([(c["U1"], ""), (c["U1"], ""), (c["U1"], ""),  # two contents: no latest attempt
                              (c["U2"], c["A4"]), (c["U2"], c["A4"]),  # the attempt and the recompute
                              (c["U3"], "")])  # a recompute always asks (reference), even with no rows
    for cert in certs:
        user, attempt_id = cert["edata"]["userIds"][0], cert["edata"]["attemptId"]
        key = next(k for k in ("U1", "U2", "U3") if c[k] == user)
        ets, mid = cert.pop("ets"), cert.pop("mid")
        assert cert == expected_cert(c, key, attempt_id)
        assert mid.startswith(f"LP.{ets}.") and len(mid) == len(f"LP.{ets}.") + 36 and abs(ets - ms(before)) < 120_000
    assert read(out, "telemetry.assess.failed") == []

    assert metric(totals, "total-events-count") == 6
    assert metric(totals, "batch-success-event-count") == 4 and metric(totals, "db-update-count") == 4
    assert metric(totals, "recompute-agg-event-count") == 2 and metric(totals, "cache-hit-count") == 6
    assert metric(totals, "db-score-read-count", score=True) == 6
    assert metric(totals, "db-score-update-count", score=True) == 5
    assert metric(totals, "cert-issue-events-count", score=True) == 6
    assert metric(totals, "failed-event-count") == 0 and metric(totals, "skipped-event-count") == 0


def test_replay_changes_nothing_and_only_newer_attempts_are_written(cql, course, tmp_path):
    c = course
    lines = journey(c)[:4]
    run(tmp_path, "first", lines)
    before = {u: attempt_rows(cql, c, u) for u in ("U1", "U2")}
    aggs = {u: agg_row(cql, c, u) for u in ("U1", "U2")}

    totals, out = run(tmp_path, "replay", lines)
    assert {u: attempt_rows(cql, c, u) for u in ("U1", "U2")} == before
    assert {u: agg_row(cql, c, u) for u in ("U1", "U2")} == aggs
    assert read(out, "issue.certificate.request") == [], "no second certificate request"
    assert metric(totals, "skipped-event-count") == 4 and metric(totals, "db-read-count") == 4
    assert metric(totals, "db-update-count") == 0

    # A newer version of A1 is written (created_on kept); an older version of A2 is skipped; and in one
    # input, a newer A4 followed by an older A4 keeps the newer one.
    a1 = attempt(c, "U1", "Q1", "A1", T0 + 9_000, [question("qa", T0 + 8_000, 0), question("qb", T0 + 8_100, 0)])
    a2_old = attempt(c, "U1", "Q1", "A2", T0 + 4_000, [question("qa", T0 + 3_000, 0)])
    a4_new = attempt(c, "U2", "Q2", "A4", T0 + 9_000, [question("qz", T0 + 8_500, 2, 2)])
    a4_old = attempt(c, "U2", "Q2", "A4", T0 + 8_000, [question("qc", T0 + 7_500, 0, 2)])
    totals, out = run(tmp_path, "newer", [a1, a2_old, a4_new, a4_old])
    rows = attempt_rows(cql, c, "U1")
    new_a1, old_a1 = rows[(c["Q1"], c["A1"])], before["U1"][(c["Q1"], c["A1"])]
    assert (new_a1.grand_total, ms(new_a1.last_attempted_on)) == ("0.0/2.0", T0 + 9_000)
    assert new_a1.created_on == old_a1.created_on and new_a1.updated_on > old_a1.updated_on
    assert rows[(c["Q1"], c["A2"])] == before["U1"][(c["Q1"], c["A2"])]
    a4 = attempt_rows(cql, c, "U2")[(c["Q2"], c["A4"])]
    assert (a4.grand_total, [q.id for q in a4.question]) == ("2.0/2.0", ["qz"])
    assert dict(agg_row(cql, c, "U2").aggregates)[f"score:{c['Q2']}"] == 2.0
    assert metric(totals, "batch-success-event-count") == 2 and metric(totals, "skipped-event-count") == 2
    assert sorted(x["edata"]["userIds"][0] for x in read(out, "issue.certificate.request")) == [c["U1"], c["U2"]]


def test_bad_input_goes_to_failed_with_reasons_and_counts_add_up(cql, course, tmp_path, run_id):
    c = course
    # The content read API fails twice for Q2 before answering: retried, not dead-lettered.
    requests.post(f"{EMULATOR}/__emulator/faults", timeout=10, json={
        "path_prefix": f"/api/content/v1/read/{c['Q2']}", "status": 503, "times": 2}).raise_for_status()
    good = attempt(c, "U1", "Q1", "A1", T0 + 1_000, [question("qa", T0 + 1, 1), question("qb", T0 + 2, 1)])
    bad_score = attempt(c, "U1", "Q1", "A5", T0, [question("qa", T0, "lots")])
    lines = [
        good,
        good,  # the same attempt again: skipped (stale guard), not failed
        attempt(c, "U2", "Q2", "A2", T0 + 2_000, [question(q, T0 + i, 1) for i, q in enumerate(("x", "y", "z"))]),
        recompute(c, "U3"),
        "{not json",
        "[1, 2]",
        attempt(c, "U1", "Q1", "A3", T0, [question("qa", T0, 1)], courseId=...),
        attempt(c, "U1", "Q1", "A4", "yesterday", [question("qa", T0, 1)]),
        bad_score,
        recompute(c, "U1", userId=...),
        attempt(c, "U1", f"{run_id}-NOT-IN-COURSE", "A6", T0, [question("qa", T0, 1)]),
        attempt(c, "U1", "Q1", "A7", T0, [question("qa", T0, 1)], courseId=c["X"]),  # unknown course
        attempt(c, "U2", "Q1", "A8", T0, [question(q, T0, 1) for q in ("a", "b", "c")]),  # 3 > totalQuestions 2
        attempt(c, "U2", "Q1", "A9", T0, [question("a", T0, 1)]),  # 1 < 2: partial attempt
        attempt(c, "U2", "Q3", "A10", T0, [question("a", T0, 1)]),  # content read API: not found
        # Cassandra rejects this row (clustering key > 64 KiB): it fails alone, the batch is written.
        attempt(c, "U1", "Q1", "A1", T0, [question("qa", T0, 1), question("qb", T0, 1)], attemptId="x" * 70_000),
    ]
    totals, out = run(tmp_path, "bad", lines, "--assessment_skip_missingrecords=true",
                      "--assessment_strict_course_check=true")

    failed = read(out, "telemetry.assess.failed")
    reasons = sorted(re.sub(r"Key length of \d+", "Key length of N", f["failInfo"]["error"]) for f in failed)
    assert reasons == sorted([
        "courseId is missing or not a non-empty string",
        "assessmentTs must be an integral epoch time in ms, got 'yesterday'",
        "events[0].edata.score must be a number, got 'lots'",
        "userId is missing or not a non-empty string",
        f"content {run_id}-NOT-IN-COURSE is not a leaf node of course {c['C']}",
        f"course {c['X']} has no leaf nodes in the relation cache (unknown course; strict course check is on)",
        "attempt has 3 unique questions but the content has totalQuestions=2",
        "attempt has 1 unique questions but the content has totalQuestions=2 (partial attempt)",
        f"Failed to fetch the content meta for the content ID: {c['Q3']} (HTTP 404, responseCode "
        "'RESOURCE_NOT_FOUND')",
        "event must be a JSON object, got list",
        "malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        'assessment_aggregator write failed: Error from server: code=2200 [Invalid query] message="Key length '
        'of N is longer than maximum of 65535"',
    ])
    for f in failed:
        reason = f["failInfo"]["error"]
        assert f["jobName"] == "AssessmentAggregatorJob" and f["flags"] == {}
        assert f["metadata"] == {"validation_error": reason, "src": "AssessmentAggregator"}
    originals = [{k: v for k, v in f.items() if k not in DECORATION} for f in failed]
    dicts = [x for x in lines if isinstance(x, dict)]
    for o in originals:
        assert o in dicts or o.get("raw") in ("{not json", "[1, 2]"), "the original event is kept whole"
    assert bad_score in originals

    # The good attempt, the one counted through the API (after two 503s), and the recompute went through.
    assert sorted(attempt_rows(cql, c, "U1")) == [(c["Q1"], c["A1"])]
    assert sorted(attempt_rows(cql, c, "U2")) == [(c["Q2"], c["A2"])]
    reads = requests.get(f"{EMULATOR}/__emulator/requests", timeout=10,
                         params={"path_prefix": "/api/content/v1/read/"}).json()
    assert [r["status"] for r in reads if r["path"].endswith(c["Q2"])] == [503, 503, 200]
    assert [r["status"] for r in reads if r["path"].endswith(c["Q3"])] == [404]
    assert not [r for r in reads if r["path"].endswith(c["Q1"])], "Q1's count came from the content cache"
    certs = read(out, "issue.certificate.request")
    assert sorted(x["edata"]["userIds"][0] for x in certs) == sorted([c["U1"], c["U2"], c["U3"]])

    processed = metric(totals, "batch-success-event-count") + metric(totals, "recompute-agg-event-count")
    skipped = metric(totals, "skipped-event-count")
    failed_n = metric(totals, "failed-event-count") + metric(totals, "ignored-event-count")
    assert (processed, skipped, failed_n) == (3, 1, 12)
    assert processed + skipped + failed_n == len(lines)
    assert len(failed) == failed_n + metric(totals, "failed-event-count", score=True)
    assert metric(totals, "ignored-event-count") == 2 and metric(totals, "unknown-course-event-count") == 1
    assert metric(totals, "api-hit-success-count") == 1 and metric(totals, "api-hit-failed-count") == 1
    assert metric(totals, "total-events-count") == len(lines) - 2


def test_unknown_course_is_accepted_and_counted_by_default(cql, course, tmp_path):
    c = course
    ev = attempt(c, "U1", "Q1", "A1", T0, [question("qa", T0, 1)], courseId=c["X"])
    totals, out = run(tmp_path, "unknown", [ev])
    assert metric(totals, "unknown-course-event-count") == 1 and metric(totals, "cache-hit-miss-count") == 1
    assert metric(totals, "batch-success-event-count") == 1
    row = cql.execute("SELECT grand_total FROM assessment_aggregator WHERE user_id=%s AND course_id=%s",
                      (c["U1"], c["X"])).one()
    assert row.grand_total == "1.0/1.0"
    assert [x["edata"]["courseId"] for x in read(out, "issue.certificate.request")] == [c["X"]]


def test_db_read_count_counts_rows_written_earlier_in_the_same_batch(cql, course, tmp_path):
    """Issue 12, the reference's own test: an attempt, an older copy of it, then a newer one, in one
    run. The reference reads the stored row event by event, so the older copy and the newer one
    both find the row the first wrote: ``db-read-count`` 2 (its spec expects 2; we said 0)."""
    c = course
    first = attempt(c, "U1", "Q1", "A1", T0 + 2_000, [question("qa", T0 + 1_900, 1)])
    older = attempt(c, "U1", "Q1", "A1", T0 + 1_000, [question("qa", T0 + 900, 0)])
    latest = attempt(c, "U1", "Q1", "A1", T0 + 3_000, [question("qa", T0 + 2_900, 0.5)])
    totals, _ = run(tmp_path, "same-batch", [first, older, latest])
    assert metric(totals, "db-read-count") == 2
    assert metric(totals, "skipped-event-count") == 1 and metric(totals, "db-update-count") == 2
    assert metric(totals, "batch-success-event-count") == 2
    row = attempt_rows(cql, c, "U1")[(c["Q1"], c["A1"])]
    assert (row.grand_total, ms(row.last_attempted_on)) == ("0.5/1.0", T0 + 3_000)


def test_the_composites_validate_store_and_score_against_the_real_stores(cql, course, run_id):
    """``ValidateAttempts`` and ``AggregateScores`` on their own (``TestPipeline`` +
    ``assert_that``): a valid attempt is stored and scored and asks for its certificate; an
    invalid event and a content outside the course each fail alone, with the reference's src."""
    c = course
    settings = AssessmentSettings(
        cassandra=CassandraConfig(hosts=("127.0.0.1",), keyspace="sunbird_courses", consistency="ONE"),
        relation_cache=RedisConfig(db=10), content_cache=RedisConfig(db=5))
    good = attempt(c, "U1", "Q1", "A1", T0 + 1_000, [question("qa", T0 + 100, 1), question("qb", T0 + 200, 0)])
    outside = attempt(c, "U2", f"{run_id}-ELSEWHERE", "A2", T0, [question("qa", T0, 1)])
    invalid = attempt(c, "U3", "Q1", "A3", "yesterday", [question("qa", T0, 1)])
    with TestPipeline() as p:
        attempts, invalid_out = p | beam.Create([good, outside, invalid]) | ValidateAttempts()
        certs, failed = attempts | AggregateScores(settings, shards=1, batch_size=10, max_buffering_secs=None)
        assert_that(certs | "CertKeys" >> beam.Map(lambda e: (e["edata"]["userIds"], e["edata"]["attemptId"])),
                    equal_to([([c["U1"]], c["A1"])]), label="certs")
        assert_that(failed | "Failed" >> beam.Map(lambda f: (f["userId"], f["failInfo"]["stage"],
                                                             f["metadata"]["src"])),
                    equal_to([(c["U2"], "content-check", "AssessmentAggregator")]), label="failed")
        assert_that(invalid_out | "Invalid" >> beam.Map(lambda f: (f["userId"], f["failInfo"]["error"])),
                    equal_to([(c["U3"], "assessmentTs must be an integral epoch time in ms, got 'yesterday'")]),
                    label="invalid")
    row = attempt_rows(cql, c, "U1")[(c["Q1"], c["A1"])]
    assert (row.grand_total, ms(row.last_attempted_on)) == ("1.0/2.0", T0 + 1_000)
    assert dict(agg_row(cql, c, "U1").aggregates)[f"score:{c['Q1']}"] == 1.0
    assert attempt_rows(cql, c, "U2") == {}


def adversarial_events(run_id: str, n: int = 230) -> list:
    """``n`` generated inputs: wrong types, missing/empty/huge fields, unicode, injection strings,
    out-of-range numbers, broken ASSESS events, unparsable records."""
    rnd = random.Random(3)
    odd = [None, "", " ", 7, 1.5, True, [], {}, ["a"], {"a": 1}, "x" * 70_000, "é中😀", "a'b\"c",
           "'; DROP TABLE assessment_aggregator; --", "\x00", 10**40, -1, "{}", "null", 2**63, 1e308,
           "1700000000000"]

    def pick(good):
        return good if rnd.random() < 0.7 else rnd.choice(odd)

    def assess(i):
        item = {"id": pick(f"q{i}"), "maxscore": pick(1), "type": "mcq", "title": "t", "desc": "",
                "params": pick([])}
        edata = {"item": pick(item), "score": pick(1), "resvalues": pick([{"1": "a"}]), "duration": pick(1)}
        return {"eid": "ASSESS", "ets": pick(T0), "edata": pick(edata)}

    lines: list = []
    for i in range(n):
        ev = {"assessmentTs": T0 + i, "batchId": f"{run_id}-B", "courseId": f"{run_id}-C",
              "userId": f"{run_id}-U{i % 7}", "attemptId": f"{run_id}-A{i % 11}", "contentId": f"{run_id}-Q",
              "events": [assess(j) for j in range(rnd.randrange(0, 4))]}
        kind = rnd.randrange(4)
        if kind == 0:
            ev[rnd.choice(list(ev))] = rnd.choice(odd)
        elif kind == 1:
            ev.pop(rnd.choice(list(ev)))
        elif kind == 2:
            ev = rnd.choice(["{bad", "[1]", "1", "null", "", "{" * 100 + "}" * 100])
        lines.append(ev)
    return lines


def test_an_adversarial_corpus_never_crashes_and_every_input_ends_once(tmp_path, run_id):
    """Issue 12: whatever the input, no crash, strict JSON out, and every input ends in exactly
    one of: certificate requested (processed), skipped (stale), or one failed record."""
    lines = adversarial_events(run_id)
    totals, out = run(tmp_path, "adversarial", lines)
    failed = read(out, "telemetry.assess.failed")
    certs = read(out, "issue.certificate.request")
    processed = metric(totals, "cert-issue-events-count", score=True)
    assert processed == len(certs)
    assert processed + metric(totals, "skipped-event-count") + len(failed) == len(lines)
    assert len(failed) == (metric(totals, "failed-event-count") + metric(totals, "ignored-event-count")
                           + metric(totals, "failed-event-count", score=True))
    assert all(f["failInfo"]["error"] and f["metadata"]["src"] == "AssessmentAggregator" for f in failed)
    for topic in ("telemetry.assess.failed", "issue.certificate.request"):
        path = out / f"local.{topic}.jsonl"
        for text in path.read_text().splitlines() if path.exists() else []:
            json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
