"""merge-user-courses on DirectRunner against the real Cassandra and Redis.

Each test seeds its own two accounts (ids prefixed with ``run_id``) in every table the merge
touches, runs the job over JSONL, and asserts every row of both accounts and every output event.
"""

from __future__ import annotations

import json
import random
from collections import namedtuple
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import apache_beam as beam
import pytest
import redis
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import enrolment_sync, merge_courses
from pipelines.domain import merge as M
from pipelines.io.cassandra import CassandraConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.options.merge import MergeSettings
from pipelines.transforms.merge import ENROLMENT_SYNC_TAG, FAILED_TAG, SYNC_TAG, MergeCourses
from tests.batch_runs import read_topic, run_job
from tests.progress_data import seed_course

Question = namedtuple("Question", "id assess_ts max_score score type title resvalues params description duration")
TABLES = ("user_content_consumption", "user_activity_agg", "user_enrolments", "assessment_aggregator")
OUT = {"sync": "coursebatch.job.request", "enrolment_sync": "batch.enrolment.sync.request",
       "assessment": "telemetry.assess", "failed": "learning.events.failed"}


def ts(*args) -> datetime:
    return datetime(*args)


@pytest.fixture
def markers(stack):
    return redis.Redis(port=stack["redis"], db=3)


def insert(cql, table: str, row: dict) -> None:
    cols = [k for k, v in row.items() if v is not None]
    stmt = cql.prepare(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})")
    cql.execute(stmt, [row[c] for c in cols])


def plain(v):
    """Driver values -> plain Python (maps, UDTs, sets) for comparing rows as dicts."""
    if hasattr(v, "_asdict"):
        return {k: plain(x) for k, x in v._asdict().items()}
    if hasattr(v, "items"):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    return v


def rows(cql, table: str, user: str, courses=()) -> list[dict]:
    if table == "user_activity_agg":
        found = [r for c in courses for r in cql.execute(
            "SELECT * FROM user_activity_agg WHERE activity_type='Course' AND activity_id=%s AND user_id=%s",
            (c, user))]
    elif table == "assessment_aggregator":
        found = [r for c in courses for r in cql.execute(
            "SELECT * FROM assessment_aggregator WHERE user_id=%s AND course_id=%s", (user, c))]
    else:
        found = list(cql.execute(f"SELECT * FROM {table} WHERE userid=%s", (user,)))
    return [{k: v for k, v in plain(r).items() if v is not None} for r in found]


def snapshot(cql, s: dict) -> dict:
    courses = (s["C1"], s["C2"], s["C3"], s["C9"])
    return {(t, u): rows(cql, t, u, courses) for t in TABLES for u in (s["F"], s["T"])}


def run(module, tmp_path: Path, name: str, lines: list | None, *extra: str) -> tuple[dict, Path]:
    groups = merge_courses.EXTRA_GROUPS if module is merge_courses else ()
    return run_job(module, tmp_path, name, lines, *extra, extra_groups=groups)


def read(out: Path, topic: str) -> list[dict]:
    return read_topic(out, topic, missing_ok=True)


def merge_request(s: dict, mid: str, **edata) -> dict:
    body = {"action": M.MERGE_ACTION, "fromAccountId": s["F"], "toAccountId": s["T"], "rootOrgId": "org1",
            "iteration": 1}
    body.update(edata)
    return {"eid": "BE_JOB_REQUEST", "ets": 1648720639981, "mid": mid,
            "actor": {"id": "Merge User Courses and Cert", "type": "System"},
            "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}, "channel": "ch", "env": "test"},
            "object": {"type": "MergeUserCoursesAndCert", "id": s["T"]}, "edata": body}


# ------------------------------------------------------------------------------------ seeding

def seed(cql, run_id: str) -> dict:
    """Two accounts with overlapping and distinct history in all four tables."""
    s = {"F": f"{run_id}-F", "T": f"{run_id}-T", **{k: f"{run_id}-{k}" for k in
                                                   ("C1", "C2", "C3", "C9", "B1", "B2", "B3", "B9")}}
    F, T, C1, C2, C3, C9, B1, B2, B3, B9 = (s[k] for k in ("F", "T", "C1", "C2", "C3", "C9", "B1", "B2", "B3", "B9"))

    def cons(user, course, batch, content, **cols):
        return {"userid": user, "courseid": course, "batchid": batch, "contentid": content, **cols}

    s["cons_f"] = [
        cons(F, C1, B1, "c1", status=2, progress=100, viewcount=3, completedcount=1, datetime=ts(2022, 3, 1),
             last_access_time=ts(2022, 1, 1), last_updated_time=ts(2022, 5, 1),
             lastaccesstime="2022-02-21 05:54:43:853+0000", lastcompletedtime="not a date",
             lastupdatedtime="2022-01-01 00:00:00:000+0000"),
        cons(F, C1, B1, "DO_X", status=1, progress=10, viewcount=1),
        cons(F, C2, B2, "c9", status=2, progress=100, viewcount=4, completedcount=2, datetime=ts(2022, 2, 2),
             last_completed_time=ts(2022, 2, 2), lastcompletedtime="2022-02-02 10:00:00:000+0000"),
    ]
    s["cons_t"] = [
        cons(T, C1, B1, "c1", status=1, progress=40, viewcount=2, completedcount=0, datetime=ts(2022, 2, 1),
             last_access_time=ts(2022, 6, 1), last_completed_time=ts(2022, 4, 1),
             lastaccesstime="2022-02-21 11:24:43:852+0530", lastcompletedtime="2021-01-01 00:00:00:000+0000",
             lastupdatedtime="also not a date"),
        cons(T, C1, B1, "do_x", status=2, progress=100, viewcount=5, completedcount=1),
        cons(T, C3, B3, "c7", status=1, viewcount=1),
    ]

    def agg(user, course, batch, **cols):
        return {"activity_type": "Course", "activity_id": course, "user_id": user, "context_id": f"cb:{batch}",
                **cols}

    s["agg_f"] = [
        agg(F, C1, B1, aggregates={"completedCount": 2.0, "score:x": 9.0}, agg={"completedCount": 2, "n": 1},
            agg_details=["f-detail"], agg_last_updated={"completedCount": ts(2022, 1, 1)}),
        agg(F, C2, B2, aggregates={"completedCount": 1.0}),
        agg(F, C9, B9, aggregates={"completedCount": 5.0}),  # F is not enrolled in C9: ignored
    ]
    s["agg_t"] = [
        agg(T, C1, B1, aggregates={"completedCount": 3.0, "score:a1": 4.0, "max_score:a1": 5.0,
                                   "attempts_count:a1": 1.0},
            agg={"completedCount": 1, "other": 7}, agg_details=["t-detail"],
            agg_last_updated={"completedCount": ts(2021, 1, 1), "score:a1": ts(2021, 1, 2)}),
        agg(T, C3, B3, aggregates={"completedCount": 1.0}),
    ]
    certs = [{"name": "Course completion", "id": f"{run_id}-cert", "token": "tk"}]
    s["enrol_f"] = [
        {"userid": F, "courseid": C1, "batchid": B1, "status": 1, "progress": 2, "active": True},
        {"userid": F, "courseid": C2, "batchid": B2, "status": 2, "progress": 1, "active": True, "addedby": "admin",
         "completionpercentage": 100, "contentstatus": {"c9": 2}, "completedon": ts(2022, 2, 2),
         "datetime": ts(2022, 2, 2), "enrolleddate": "2022-01-01 00:00:00:000+0000", "lastreadcontentid": "c9",
         "lastreadcontentstatus": 2, "issued_certificates": certs, "certificates": certs},
    ]
    s["enrol_t"] = [
        {"userid": T, "courseid": C1, "batchid": B1, "status": 1, "progress": 1, "active": True},
        {"userid": T, "courseid": C3, "batchid": B3, "status": 1, "active": True},
    ]
    q = Question("q1", ts(2022, 1, 2), 5.0, 3.0, "mcq", "Q1", [{"1": '{"text":"A"}'}], [{"answer": "1"}], "d",
                 Decimal("2.0"))

    def attempt(user, course, batch, content, attempt_id, **cols):
        return {"user_id": user, "course_id": course, "batch_id": batch, "content_id": content,
                "attempt_id": attempt_id, **cols}

    s["att_f"] = [
        attempt(F, C1, B1, "a1", "att1", last_attempted_on=ts(2022, 1, 2), created_on=ts(2022, 1, 2),
                updated_on=ts(2022, 1, 2), total_score=3.0, total_max_score=5.0, grand_total="3.0/5.0", question=[q]),
        attempt(F, C1, B1, "a1", "att2", last_attempted_on=ts(2022, 1, 5), created_on=ts(2022, 1, 5),
                total_score=5.0, total_max_score=5.0, grand_total="5.0/5.0"),
        attempt(F, C2, B2, "a2", "att3", last_attempted_on=ts(2022, 1, 6), total_score=1.0, total_max_score=2.0),
    ]
    s["att_t"] = [
        attempt(T, C1, B1, "a1", "att2", last_attempted_on=ts(2022, 1, 3), created_on=ts(2021, 12, 31),
                updated_on=ts(2022, 1, 3), total_score=2.0, total_max_score=5.0, grand_total="2.0/5.0",
                question=[q]),  # replaced whole by F's newer attempt: its questions and updated_on go
        attempt(T, C1, B1, "a1", "att0", last_attempted_on=ts(2021, 6, 1), total_score=1.0, total_max_score=5.0),
    ]
    for table, key in (("user_content_consumption", "cons"), ("user_activity_agg", "agg"),
                       ("user_enrolments", "enrol"), ("assessment_aggregator", "att")):
        for r in s[f"{key}_f"] + s[f"{key}_t"]:
            insert(cql, table, r)
    return s


def expected_q() -> dict:
    return {"id": "q1", "assess_ts": ts(2022, 1, 2), "max_score": 5.0, "score": 3.0, "type": "mcq", "title": "Q1",
            "resvalues": [{"1": '{"text":"A"}'}], "params": [{"answer": "1"}], "description": "d",
            "duration": Decimal("2.0")}


def as_stored(r: dict) -> dict:
    out = dict(r)
    if "question" in out:
        out["question"] = [expected_q()]
    return out


# -------------------------------------------------------------------------------------- tests

def test_merge_writes_every_row_of_the_target_and_leaves_the_source_alone(cql, markers, tmp_path, run_id):
    s = seed(cql, run_id)
    F, T, C1, C2, C3, B1, B2, B3 = (s[k] for k in ("F", "T", "C1", "C2", "C3", "B1", "B2", "B3"))
    before = snapshot(cql, s)
    totals, out = run(merge_courses, tmp_path, "merge", [merge_request(s, f"{run_id}-m1")])
    after = snapshot(cql, s)

    # The source account is never modified: the merge is a copy.
    for t in TABLES:
        assert after[(t, F)] == before[(t, F)], t

    journal = M.Journal.loads(markers.get(M.marker_keys(F, T)[0]))
    started = datetime.fromtimestamp(journal.started_ms / 1000, tz=UTC).replace(tzinfo=None)
    assert sorted(map(M.writable, journal.to_consumption), key=lambda r: r["contentid"]) == \
        sorted(before[("user_content_consumption", T)], key=lambda r: r["contentid"]), "T's rows before the merge"

    # Step 1: consumption. c1 merged by the §3.3 table, do_x matched case-insensitively, c9 copied, c7 untouched.
    cf, ct = s["cons_f"], s["cons_t"]
    assert sorted(after[("user_content_consumption", T)], key=lambda r: (r["courseid"], r["contentid"])) == [
        {"userid": T, "courseid": C1, "batchid": B1, "contentid": "c1", "status": 2, "progress": 100, "viewcount": 5,
         "completedcount": 1, "datetime": ts(2022, 3, 1), "last_access_time": ts(2022, 6, 1),
         "last_completed_time": ts(2022, 4, 1), "last_updated_time": ts(2022, 5, 1),
         "lastaccesstime": "2022-02-21 05:54:43:853+0000", "lastcompletedtime": "2021-01-01 00:00:00:000+0000",
         "lastupdatedtime": "2022-01-01 00:00:00:000+0000"},
        {"userid": T, "courseid": C1, "batchid": B1, "contentid": "do_x", "status": 2, "progress": 100,
         "viewcount": 6, "completedcount": 1},
        {**cf[2], "userid": T},
        ct[2],
    ]

    # Step 2: completedCount = max(F, T) from T's own row; T's score keys, agg_details and other agg keys survive.
    assert sorted(after[("user_activity_agg", T)], key=lambda r: r["activity_id"]) == [
        {"activity_type": "Course", "activity_id": C1, "user_id": T, "context_id": f"cb:{B1}",
         "aggregates": {"attempts_count:a1": 1.0, "completedCount": 3.0, "max_score:a1": 5.0, "score:a1": 4.0},
         "agg": {"completedCount": 2, "n": 1, "other": 7}, "agg_details": ["t-detail"],
         "agg_last_updated": {"completedCount": started, "score:a1": ts(2021, 1, 2)}},
        {"activity_type": "Course", "activity_id": C2, "user_id": T, "context_id": f"cb:{B2}",
         "aggregates": {"completedCount": 1.0}, "agg_last_updated": {"completedCount": started}},
        s["agg_t"][1],
    ]

    # Step 3: the batch only F is in is migrated whole (certificates included); shared batches are left alone.
    assert sorted(after[("user_enrolments", T)], key=lambda r: r["courseid"]) == [
        s["enrol_t"][0], {**s["enrol_f"][1], "userid": T}, s["enrol_t"][1]]

    # Assessment attempts: new ones copied, the newer copy of a shared attempt wins (T's created_on kept).
    af, at = s["att_f"], s["att_t"]
    assert sorted(after[("assessment_aggregator", T)], key=lambda r: (r["course_id"], r["attempt_id"])) == [
        at[1], as_stored({**af[0], "user_id": T}), {**af[1], "user_id": T, "created_on": ts(2021, 12, 31)},
        {**af[2], "user_id": T}]

    # Outputs: the reference sync event and a user-enrolment-sync request per enrolment of T, field by field.
    syncs = read(out, OUT["sync"])
    for ev in syncs:
        assert ev["mid"].startswith(f"LP.{ev['ets']}.") and len(ev["mid"].split(".", 2)[2]) == 36
    assert [{k: v for k, v in ev.items() if k not in ("ets", "mid")} for ev in syncs] == [
        {"actor": {"id": "Course Batch Updater", "type": "System"}, "eid": "BE_JOB_REQUEST",
         "edata": {"action": "batch-enrolment-sync", "iteration": 1, "batchId": b, "userId": T, "courseId": c,
                   "reset": ["completionPercentage", "status", "progress"]},
         "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
         "object": {"id": f"{b}_{T}", "type": "CourseBatchEnrolment"}}
        for c, b in ((C1, B1), (C2, B2), (C3, B3))]
    assert read(out, OUT["enrolment_sync"]) == [
        {"eid": "BE_JOB_REQUEST", "edata": {"action": "user-enrolment-sync", "userId": T, "courseId": c,
                                            "batchId": b}} for c, b in ((C1, B1), (C2, B2), (C3, B3))]
    assess = read(out, OUT["assessment"])
    assert [{k: v for k, v in ev.items() if k != "assessmentTs"} for ev in assess] == [
        {"batchId": B1, "courseId": C1, "userId": T, "contentId": "a1", "events": []},
        {"batchId": B2, "courseId": C2, "userId": T, "contentId": "a2", "events": []}]
    assert all(isinstance(ev["assessmentTs"], int) for ev in assess)
    assert read(out, OUT["failed"]) == []

    assert json.loads(markers.get(M.marker_keys(F, T)[1]))["mid"] == f"{run_id}-m1"
    assert totals == {
        "input-record-count": 1,  # lern-beam's own accounting, every job
        "parsed-event-count": 1, "total-events-count": 1, "merge-action-count": 1, "success-events-count": 1,
        "db-update-user-course-batch": 3, "enrolment-sync-request-count": 3, "assessment-recompute-request-count": 2,
        "consumption-merged-count": 2, "consumption-copied-count": 1, "case-insensitive-match-count": 1,
        "activity-agg-updated-count": 2, "enrolment-migrated-count": 1, "assessment-attempt-copied-count": 3,
        "db-read-count": 13, "db-update-count": 9}


def test_replay_changes_nothing_and_a_crash_before_the_marker_rewrites_the_same_values(cql, markers, tmp_path,
                                                                                          run_id):
    s = seed(cql, run_id)
    first_totals, _ = run(merge_courses, tmp_path, "first", [merge_request(s, f"{run_id}-m1")])
    merged = snapshot(cql, s)

    # The same request again, and a new request for the same pair (another mid): no table changes,
    # no counter summed twice; the requests are re-emitted (at-least-once).
    totals, out = run(merge_courses, tmp_path, "replay",
                      [merge_request(s, f"{run_id}-m1"), merge_request(s, f"{run_id}-m2")])
    assert snapshot(cql, s) == merged
    assert totals["already-merged-event-count"] == 2 and totals["success-events-count"] == 2
    assert "consumption-merged-count" not in totals and "db-update-count" not in totals
    assert len(read(out, OUT["sync"])) == 6 and len(read(out, OUT["enrolment_sync"])) == 6
    assert len(read(out, OUT["assessment"])) == 4

    # A crash after the writes and before the done-marker: the re-run merges from the journal's
    # snapshot of T's pre-merge rows and its start time, so every value is written identically.
    markers.delete(M.marker_keys(s["F"], s["T"])[1])
    totals, _ = run(merge_courses, tmp_path, "rerun", [merge_request(s, f"{run_id}-m1")])
    assert totals.get("already-merged-event-count", 0) == 0 and totals["consumption-merged-count"] == 2
    assert snapshot(cql, s) == merged
    assert first_totals["assessment-attempt-copied-count"] == 3 and totals.get("assessment-attempt-copied-count",
                                                                               0) == 0
    assert markers.exists(M.marker_keys(s["F"], s["T"])[1])


def test_sync_requests_complete_the_target_enrolment_and_issue_its_certificate(stack, cql, tmp_path, run_id):
    """The reason for user-enrolment-sync: after the merge, enrolment-reconciliation completes T's enrolment."""
    c = seed_course(stack["redis"], cql, run_id)  # course C (required c1, c2, c3), learner L enrolled in batch B
    T, F, C, B = c["user"], f"{run_id}-F", c["course"], c["batch"]
    insert(cql, "user_enrolments", {"userid": F, "courseid": C, "batchid": B, "status": 1, "progress": 2,
                                    "active": True})
    for user, content, status in ((T, "c1", 2), (T, "c2", 1), (F, "c2", 2), (F, "c3", 2)):
        insert(cql, "user_content_consumption", {"userid": user, "courseid": C, "batchid": B, "contentid": content,
                                                 "status": status, "viewcount": 1,
                                                 "completedcount": 1 if status == 2 else 0})
    req = {"eid": "BE_JOB_REQUEST", "mid": f"{run_id}-m", "edata": {"action": M.MERGE_ACTION, "fromAccountId": F,
                                                                   "toAccountId": T}}
    _, out = run(merge_courses, tmp_path, "merge", [req])
    requests = read(out, OUT["enrolment_sync"])
    assert requests == [{"eid": "BE_JOB_REQUEST", "edata": {"action": "user-enrolment-sync", "userId": T,
                                                            "courseId": C, "batchId": B}}]

    sync_input = out / f"local.{OUT['enrolment_sync']}.jsonl"
    totals, sync_out = run(enrolment_sync, tmp_path, "sync", None, "--input", str(sync_input))
    enrol = cql.execute("SELECT status, progress, contentstatus, completedon FROM user_enrolments WHERE userid=%s "
                        "AND courseid=%s AND batchid=%s", (T, C, B)).one()
    assert (enrol.status, enrol.progress, dict(enrol.contentstatus)) == (2, 3, {"c1": 2, "c2": 2, "c3": 2})
    assert enrol.completedon is not None
    certs = read(sync_out, "issue.certificate.request")
    assert [(x["edata"]["userIds"], x["edata"]["courseId"], x["edata"]["batchId"]) for x in certs] == [([T], C, B)]
    assert totals["enrolment-complete-count"] == 1
    f_enrol = cql.execute("SELECT status FROM user_enrolments WHERE userid=%s AND courseid=%s AND batchid=%s",
                          (F, C, B)).one()
    assert f_enrol.status == 1, "the source account is not recomputed"


def test_bad_input_goes_to_the_failed_topic_with_reasons_and_counts_add_up(cql, tmp_path, run_id):
    s = {"F": f"{run_id}-F", "T": f"{run_id}-T"}
    insert(cql, "user_enrolments", {"userid": s["T"], "courseid": f"{run_id}-C", "batchid": f"{run_id}-B",
                                    "status": 1})
    good = merge_request(s, f"{run_id}-ok")
    lines = [
        good,
        "{not json",
        [1, 2],
        {"mid": f"{run_id}-noedata"},
        {"mid": f"{run_id}-empty", "edata": {}},
        merge_request(s, f"{run_id}-nofrom", fromAccountId=None),
        merge_request(s, f"{run_id}-noto", toAccountId=""),
        merge_request(s, f"{run_id}-int", toAccountId=7),
        merge_request(s, f"{run_id}-same", toAccountId=s["F"]),
        merge_request(s, f"{run_id}-action", action="delete-user"),
    ]
    totals, out = run(merge_courses, tmp_path, "bad", lines, "--merge_action_strict=true")
    failed = read(out, OUT["failed"])
    by_mid = {f.get("mid", f.get("raw")): f["failInfo"]["error"] for f in failed}
    # Skipped requests (empty edata, an id missing or empty: the reference's skipped-event-count)
    # are counted, not failed: the failed topic holds exactly one record per failed event.
    assert by_mid == {
        "[1, 2]": "event must be a JSON object, got list",
        f"{run_id}-noedata": "edata is missing or not an object",
        f"{run_id}-int": "edata.toAccountId is not a string: 7",
        f"{run_id}-same": f"fromAccountId and toAccountId are the same account: {s['F']}",
        f"{run_id}-action": f"unknown action 'delete-user': expected {M.MERGE_ACTION}",
        "{not json": by_mid.get("{not json", ""),
    }
    assert by_mid["{not json"].startswith("malformed JSON")
    for f in failed:
        assert f["jobName"] == "MergeUserCourses" and f["failInfo"]["errorCode"] == "DATA_ERROR"
        assert f["metadata"]["validation_error"] == f["failInfo"]["error"]
    assert next(f for f in failed if f.get("mid") == f"{run_id}-action")["edata"]["action"] == "delete-user", \
        "the original event is kept whole"
    # processed + skipped + failed = input
    assert totals["success-events-count"] + totals["skipped-event-count"] + totals["failed-events-count"] == len(lines)
    assert (totals["success-events-count"], totals["skipped-event-count"], totals["failed-events-count"]) == (1, 3, 6)
    assert len(failed) == totals["failed-events-count"], "one failed record per failed event"
    assert totals["total-events-count"] == len(lines) - 2, "parse failures never reach the merge"
    assert totals["unknown-action-count"] == 1
    assert len(read(out, OUT["sync"])) == 1


def test_the_references_own_requests_without_an_action_are_merged_with_default_flags(cql, tmp_path, run_id):
    """Issue 12: the reference reads no ``edata.action`` and its own requests (its test fixture's
    shape) carry none; with default flags such a request must be merged, not failed."""
    s = {"F": f"{run_id}-F", "T": f"{run_id}-T"}
    insert(cql, "user_enrolments", {"userid": s["F"], "courseid": f"{run_id}-C", "batchid": f"{run_id}-B",
                                    "status": 1})
    reference_request = {"eid": "BE_JOB_REQUEST", "ets": 1563788371969, "mid": f"LMS.{run_id}",
                         "edata": {"fromAccountId": s["F"], "toAccountId": s["T"]}}
    totals, out = run(merge_courses, tmp_path, "reference", [reference_request])
    assert read(out, OUT["failed"]) == []
    assert totals["success-events-count"] == 1 and totals.get("failed-events-count", 0) == 0
    assert [(e["userid"], e["batchid"]) for e in rows(cql, "user_enrolments", s["T"])] == [(s["T"], f"{run_id}-B")]
    assert [e["edata"]["userId"] for e in read(out, OUT["sync"])] == [s["T"]]
    # Strictness is opt-in.
    totals, out = run(merge_courses, tmp_path, "strict", [{**reference_request, "mid": f"LMS.{run_id}.2"}],
                      "--merge_action_strict=true")
    assert [f["failInfo"]["error"] for f in read(out, OUT["failed"])] == [
        f"unknown action None: expected {M.MERGE_ACTION}"]
    assert totals["failed-events-count"] == 1


def test_lenient_action_and_disabled_recompute_outputs(cql, tmp_path, run_id):
    s = {"F": f"{run_id}-F", "T": f"{run_id}-T"}
    insert(cql, "user_enrolments", {"userid": s["F"], "courseid": f"{run_id}-C", "batchid": f"{run_id}-B",
                                    "status": 1})
    totals, out = run(merge_courses, tmp_path, "lenient", [merge_request(s, f"{run_id}-x", action="other")],
                      "--merge_action_strict=false", "--merge_enrolment_sync_enabled=false",
                      "--merge_assessment_enabled=false")
    assert totals["success-events-count"] == 1 and totals["unknown-action-count"] == 1
    assert totals["enrolment-migrated-count"] == 1
    assert [e["edata"]["userId"] for e in read(out, OUT["sync"])] == [s["T"]]
    assert not (out / f"local.{OUT['enrolment_sync']}.jsonl").exists()
    assert not (out / f"local.{OUT['assessment']}.jsonl").exists()


def test_a_store_failure_is_dead_lettered_and_the_retried_merge_writes_each_value_once(cql, markers, tmp_path,
                                                                                          run_id):
    """Weakness 3.8.1: the reference rethrew, restarting the job until it died. Here a step that
    still fails after the retries dead-letters the request with the step and the reason; the steps
    before it are written, the done-marker is not, so re-running the request finishes the merge
    from the journal without adding any counter twice."""
    s = seed(cql, run_id)
    F, T = s["F"], s["T"]
    req = merge_request(s, f"{run_id}-m1")
    totals, out = run(merge_courses, tmp_path, "broken", [req],
                      "--lms_cassandra_assessment_aggregator_table=no_such_table")
    failed = read(out, OUT["failed"])
    assert len(failed) == 1 and failed[0]["edata"] == req["edata"] and failed[0]["failInfo"]["stage"] == "assessment"
    assert failed[0]["failInfo"]["error"].startswith("merge failed at step assessment: ")
    assert "no_such_table" in failed[0]["failInfo"]["error"]
    assert totals["failed-events-count"] == 1 and "success-events-count" not in totals
    assert read(out, OUT["sync"]) == [] and not markers.exists(M.marker_keys(F, T)[1])
    partial = {r["contentid"]: r["viewcount"] for r in rows(cql, "user_content_consumption", T)}
    assert partial == {"c1": 5, "do_x": 6, "c9": 4, "c7": 1}, "steps before the failure were written"

    # The failed record, replayed as it is, completes the merge.
    totals, out = run(merge_courses, tmp_path, "retry", [failed[0]])
    assert totals["success-events-count"] == 1 and markers.exists(M.marker_keys(F, T)[1])
    assert {r["contentid"]: r["viewcount"] for r in rows(cql, "user_content_consumption", T)} == partial
    assert sorted(r["attempt_id"] for r in rows(cql, "assessment_aggregator", T, (s["C1"], s["C2"]))) == \
        ["att0", "att1", "att2", "att3"]
    assert len(read(out, OUT["sync"])) == 3


def test_an_unreachable_marker_store_is_dead_lettered_after_retries(cql, tmp_path, run_id):
    s = {"F": f"{run_id}-F", "T": f"{run_id}-T"}
    insert(cql, "user_enrolments", {"userid": s["F"], "courseid": f"{run_id}-C", "batchid": f"{run_id}-B"})
    totals, out = run(merge_courses, tmp_path, "noredis", [merge_request(s, f"{run_id}-m")], "--dedup_redis_port=1")
    failed = read(out, OUT["failed"])
    assert [f["failInfo"]["stage"] for f in failed] == ["marker"]
    assert totals["failed-events-count"] == 1
    assert rows(cql, "user_enrolments", s["T"]) == [], "nothing is written without the guard"


# ------------------------------------------------------------------------ the composite itself

def test_merge_courses_composite_merges_against_the_real_stores(cql, markers, run_id):
    """``MergeCourses`` on its own (``TestPipeline`` + ``assert_that``, as Beam tests its
    composites): a merge migrates F's enrolment and emits the target's requests; a repeat of the
    same request in the same input is a no-op that only re-emits them."""
    F, T, C, B = (f"{run_id}-{k}" for k in ("F", "T", "C", "B"))
    insert(cql, "user_enrolments", {"userid": F, "courseid": C, "batchid": B, "status": 1})
    settings = MergeSettings(
        cassandra=CassandraConfig(hosts=("127.0.0.1",), keyspace="sunbird_courses", consistency="ONE"),
        markers=RedisConfig(port=6379, db=3),
        tables={"consumption": "user_content_consumption", "enrolments": "user_enrolments",
                "activity_agg": "user_activity_agg", "assessment": "assessment_aggregator"})
    event = {"mid": f"{run_id}-m", "edata": {"fromAccountId": F, "toAccountId": T}}
    work = M.parse_merge_work(event)[0]
    with TestPipeline() as p:
        out = p | beam.Create([work, work]) | MergeCourses(settings, shards=1, batch_size=10, max_buffering_secs=None)
        assert_that(out[SYNC_TAG] | "SyncKeys" >> beam.Map(
            lambda e: (e["edata"]["action"], e["edata"]["userId"], e["edata"]["courseId"], e["edata"]["batchId"])),
            equal_to([("batch-enrolment-sync", T, C, B)] * 2), label="sync")
        assert_that(out[ENROLMENT_SYNC_TAG], equal_to([M.enrolment_sync_request(B, T, C)] * 2), label="enrolment")
        assert_that(out[FAILED_TAG], equal_to([]), label="failed")
    assert [(e["userid"], e["courseid"], e["batchid"]) for e in rows(cql, "user_enrolments", T)] == [(T, C, B)]
    assert markers.exists(M.marker_keys(F, T)[1])


def adversarial_requests(run_id: str, n: int = 220) -> list:
    """``n`` generated inputs: wrong types, missing/empty/huge fields, unicode, injection strings."""
    rnd = random.Random(12)
    odd = [None, "", " ", 7, 1.5, True, [], {}, ["a"], {"a": 1}, "x" * 70_000, "é中😀", "a'b\"c",
           "'; DROP TABLE user_enrolments; --", "\x00", 10**40, -1, "{}", "null", {"$ne": 1}]
    lines: list = []
    for i in range(n):
        kind = i % 7
        ids = {"fromAccountId": f"{run_id}-F{i}", "toAccountId": f"{run_id}-T{i}"}
        if kind == 0:
            lines.append({"mid": f"{run_id}-{i}", "edata": {**ids, "fromAccountId": rnd.choice(odd)}})
        elif kind == 1:
            lines.append({"mid": f"{run_id}-{i}", "edata": {**ids, "toAccountId": rnd.choice(odd)}})
        elif kind == 2:
            lines.append({"mid": f"{run_id}-{i}", "edata": rnd.choice(odd)})
        elif kind == 3:
            lines.append({"mid": rnd.choice(odd), "edata": {**ids, "action": rnd.choice(odd)}})
        elif kind == 4:
            lines.append(rnd.choice(["{bad", "[1]", "1", '"s"', "null", "", "{" * 100 + "}" * 100]))
        elif kind == 5:
            deep: dict = {"v": 1}
            for _ in range(rnd.randrange(1, 80)):
                deep = {"d": deep}
            lines.append({"mid": f"{run_id}-{i}", "edata": {**ids, "extra": deep}})
        else:
            lines.append({"mid": f"{run_id}-{i}", "edata": ids})
    return lines


def test_an_adversarial_corpus_never_crashes_and_every_input_is_counted_once(tmp_path, run_id):
    """Issue 12: processed + skipped + failed = input, exactly one failed record per failed event,
    strict JSON out, whatever the input."""
    lines = adversarial_requests(run_id)
    totals, out = run(merge_courses, tmp_path, "adversarial", lines)
    failed = read(out, OUT["failed"])
    outcome = (totals.get("success-events-count", 0), totals.get("skipped-event-count", 0),
               totals.get("failed-events-count", 0))
    # A blank JSONL line is an input record too: it fails to parse, with a reason.
    assert sum(outcome) == len(lines), outcome
    assert len(failed) == totals["failed-events-count"], "one failed record per failed event"
    assert all(f["failInfo"]["error"] and f["jobName"] == "MergeUserCourses" for f in failed)
    for topic in OUT.values():
        path = out / f"local.{topic}.jsonl"
        if path.exists():
            for text in path.read_text().splitlines():
                json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
