"""activity-aggregate-updater and enrolment-reconciliation on DirectRunner against the real stack.

Each test builds its own course (ids prefixed with ``run_id``) in the relation cache (Redis db 10)
and its own enrolments in Cassandra, runs the job over JSONL and asserts every row and event.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import requests

from pipelines import activity, enrolment_sync
from pipelines.domain.progress import EnrolmentKey, dedup_checksum
from tests.batch_runs import read_topic, run_job
from tests.progress_data import seed_course, update

EMULATOR = "http://127.0.0.1:9000"


@pytest.fixture
def course(stack, cql, run_id):
    return seed_course(stack["redis"], cql, run_id)


def run(module, tmp_path: Path, name: str, lines: list, *extra: str) -> tuple[dict, Path]:
    return run_job(module, tmp_path, name, lines, *extra)


def read(out: Path, topic: str) -> list[dict]:
    return read_topic(out, topic)


def tables(cql, c) -> dict:
    key = (c["user"], c["course"], c["batch"])
    enrol = cql.execute("SELECT status, progress, contentstatus, completedon, datetime FROM user_enrolments "
                        "WHERE userid=%s AND courseid=%s AND batchid=%s", key).one()
    consumption = {r.contentid: (r.status, r.viewcount, r.completedcount) for r in cql.execute(
        "SELECT contentid, status, viewcount, completedcount FROM user_content_consumption "
        "WHERE userid=%s AND courseid=%s AND batchid=%s", key)}
    aggs = {}
    for activity_id in (c["course"], c["u1"], c["u2"]):
        row = cql.execute("SELECT aggregates, agg_last_updated FROM user_activity_agg WHERE activity_type='Course' "
                          "AND activity_id=%s AND user_id=%s AND context_id=%s",
                          (activity_id, c["user"], f"cb:{c['batch']}")).one()
        aggs[activity_id] = (dict(row.aggregates), dict(row.agg_last_updated)) if row else None
    return {"enrolment": tuple(enrol) if enrol else None, "consumption": consumption, "aggs": aggs}


def test_completion_journey_rows_and_events(cql, course, tmp_path, run_id):
    c = course
    lines = [update(c, f"{run_id}-1", [("c1", 2), ("c2", 1)]),
             update(c, f"{run_id}-2", [("c2", 2), ("c3", 2)])]
    totals, out = run(activity, tmp_path, "journey", lines)

    t = tables(cql, c)
    assert t["consumption"] == {"c1": (2, 1, 1), "c2": (2, 1, 1), "c3": (2, 1, 1)}
    status, progress, contentstatus, completedon, _ = t["enrolment"]
    assert (status, progress, dict(contentstatus)) == (2, 3, {"c1": 2, "c2": 2, "c3": 2})
    assert completedon is not None
    assert {k: v[0] for k, v in t["aggs"].items()} == {
        c["course"]: {"completedCount": 3.0}, c["u1"]: {"completedCount": 2.0}, c["u2"]: {"completedCount": 1.0}}

    certs = read(out, "issue.certificate.request")
    assert len(certs) == 1
    cert = certs[0]
    assert cert["edata"] == {"userIds": [c["user"]], "action": "issue-certificate", "iteration": 1,
                             "trigger": "auto-issue", "batchId": c["batch"], "reIssue": False,
                             "courseId": c["course"]}
    assert cert["object"] == {"id": f"{c['batch']}_{c['course']}", "type": "CourseCertificateGeneration"}
    assert cert["eid"] == "BE_JOB_REQUEST" and cert["mid"].startswith(f"LP.{cert['ets']}.")

    audit = read(out, "telemetry.raw")
    by_type = sorted((a["edata"]["type"], a["object"]["id"]) for a in audit)
    assert by_type == [("complete", "c1"), ("complete", "c2"), ("complete", "c3"), ("enrol-complete", c["user"]),
                       ("start", "c1"), ("start", "c2"), ("start", "c3")]
    for a in audit:
        assert a["eid"] == "AUDIT" and a["actor"] == {"id": c["user"], "type": "User"}
        assert a["object"]["rollup"] == {"l1": c["course"]} and a["mid"].startswith("LP.AUDIT.")
    assert read(out, "activity.agg.failed") == []
    assert totals["batch-enrolment-update-count"] == 2 and totals["enrolment-complete-count"] == 1
    assert totals["cert-issue-events-count"] == 1 and totals["unique-event-count"] == 3

    dedup = redis.Redis(port=6379, db=3)
    from pipelines.domain.progress import EnrolmentKey, dedup_checksum
    k = EnrolmentKey(c["user"], c["course"], c["batch"])
    assert all(dedup.exists(dedup_checksum(k, cid, 2)) for cid in ("c1", "c2", "c3"))


def test_replay_changes_nothing_and_issues_no_second_certificate(cql, course, tmp_path, run_id):
    c = course
    lines = [update(c, f"{run_id}-1", [("c1", 2), ("c2", 2)]), update(c, f"{run_id}-2", [("c3", 2)])]
    run(activity, tmp_path, "first", lines)
    before = tables(cql, c)
    assert before["enrolment"][0] == 2

    totals, out = run(activity, tmp_path, "replay", lines)
    assert tables(cql, c) == before
    assert read(out, "issue.certificate.request") == [] and read(out, "telemetry.raw") == []
    assert totals["duplicate-event-count"] == 3 and totals.get("unique-event-count", 0) == 0

    # Even with the dedup store bypassed, a recompute from the same statuses completes nothing twice.
    totals, out = run(activity, tmp_path, "nodedup", lines, "--activity_input_dedup_enabled=false")
    assert read(out, "issue.certificate.request") == []
    after = tables(cql, c)
    assert after["enrolment"] == before["enrolment"] and after["aggs"].keys() == before["aggs"].keys()
    assert {k: v[0] for k, v in after["aggs"].items()} == {k: v[0] for k, v in before["aggs"].items()}


def test_partial_progress_and_status_never_goes_down(cql, course, tmp_path, run_id):
    c = course
    run(activity, tmp_path, "one", [update(c, f"{run_id}-1", [("c1", 2)])])
    t = tables(cql, c)
    assert t["enrolment"][:3] == (1, 1, {"c1": 2})
    assert t["aggs"][c["course"]][0] == {"completedCount": 1.0}
    # An older in-progress report of c1 arrives late: status stays 2, no event is produced.
    totals, out = run(activity, tmp_path, "late", [update(c, f"{run_id}-2", [("c1", 1)])])
    assert tables(cql, c)["consumption"]["c1"][0] == 2
    assert totals["skipped-events-count"] == 1 and read(out, "telemetry.raw") == []


def test_bad_input_goes_to_failed_with_reasons_and_counts_add_up(course, tmp_path, run_id):
    c = course
    good = update(c, f"{run_id}-ok", [("c1", 2)])
    lines = [
        good,
        "{not json",
        update(c, f"{run_id}-nouser", [("c1", 2)], userId=None),
        update(c, f"{run_id}-nocourse", [("c1", 2)], courseId=""),
        update(c, f"{run_id}-nobatch", [("c1", 2)], batchId=42),
        {"mid": f"{run_id}-list", "edata": {**good["edata"], "contents": "c1"}},
        {"mid": f"{run_id}-other", "edata": {"action": "something-else"}},
        [1, 2],
    ]
    totals, out = run(activity, tmp_path, "bad", lines)
    failed = read(out, "activity.agg.failed")
    reasons = sorted(f["failInfo"]["error"].split(":")[0] for f in failed)
    assert reasons == ["edata.batchId is missing or not a non-empty string",
                       "edata.contents is not a list",
                       "edata.courseId is missing or not a non-empty string",
                       "edata.userId is missing or not a non-empty string",
                       "event must be a JSON object, got list",
                       "malformed JSON"]
    assert all(f["jobName"] == "activity-aggregate-updater" and f["metadata"]["validation_error"] for f in failed)
    assert any(f.get("edata", {}).get("contents") == "c1" for f in failed), "original event kept whole"
    # processed + skipped + failed = input
    parse_failed = 2
    assert totals["total-events-count"] + parse_failed == len(lines)
    assert totals["batch-enrolment-update-count"] + totals["skipped-events-count"] + totals["failed-events-count"] \
        == len(lines)
    assert totals["batch-enrolment-update-count"] == 1 and totals["skipped-events-count"] == 1
    assert totals["processed-enrolment-count"] == 1


def test_missing_leaf_nodes_fail_for_a_live_course_and_skip_a_retired_one(stack, cql, tmp_path, run_id):
    live, retired = f"{run_id}-LIVE", f"{run_id}-RETIRED"
    requests.post(f"{EMULATOR}/__emulator/seed", json={"contents": {
        live: {"objectType": "Collection", "status": "Live"},
        retired: {"objectType": "Collection", "status": "Retired"}}}, timeout=10).raise_for_status()
    user, batch = f"{run_id}-L", f"{run_id}-B"
    lines = [{"mid": f"{run_id}-{i}", "edata": {"action": "batch-enrolment-update", "userId": user,
                                                 "courseId": cid, "batchId": batch,
                                                 "contents": [{"contentId": "x", "status": 2}]}}
             for i, cid in enumerate((live, retired))]
    totals, out = run(activity, tmp_path, "leafless", lines)
    failed = read(out, "activity.agg.failed")
    assert len(failed) == 1 and failed[0]["edata"]["courseId"] == live
    assert failed[0]["failInfo"] == {"error": f"leaf nodes are not available for a published collection: {live} "
                                              "(status Live)", "stage": "relation-cache"}
    assert totals["retired-consumption-events-count"] == 1
    searched = requests.get(f"{EMULATOR}/__emulator/requests", params={"path_prefix": "/v3/search"}, timeout=10).json()
    bodies = [r["body"]["request"]["filters"] for r in searched if r["body"]["request"]["filters"]["identifier"]
              in (live, retired)]
    assert {b["identifier"] for b in bodies} == {live, retired}
    assert all(b["status"] == ["Live", "Unlisted", "Retired"] and b["objectType"] == "Collection" for b in bodies)


def test_backfill_from_cassandra_after_republish_completes_once(stack, cql, course, tmp_path, run_id):
    c = course
    run(activity, tmp_path, "partial", [update(c, f"{run_id}-1", [("c1", 2), ("c2", 2)])])
    assert tables(cql, c)["enrolment"][:2] == (1, 2)

    # Republish: c3 leaves the course (and U2), so c1 and c2 are now the whole course.
    r = redis.Redis(port=stack["redis"], db=10)
    C = c["course"]
    r.srem(f"{C}:{C}:leafnodes", "c3")
    r.srem(f"{C}:{c['u2']}:leafnodes", "c3")

    totals, out = run(enrolment_sync, tmp_path, "backfill", None, "--from_cassandra", f"--course_id={C}",
                      f"--batch_id={c['batch']}")
    assert totals["scanned-enrolment-count"] == 1
    status, progress, contentstatus, completedon, _ = tables(cql, c)["enrolment"]
    assert (status, progress, dict(contentstatus)) == (2, 2, {"c1": 2, "c2": 2}) and completedon is not None
    certs = read(out, "issue.certificate.request")
    assert [x["edata"]["userIds"] for x in certs] == [[c["user"]]]
    assert [a["edata"]["type"] for a in read(out, "telemetry.raw")] == ["enrol-complete"]

    totals, out = run(enrolment_sync, tmp_path, "again", None, "--from_cassandra", f"--course_id={C}",
                      f"--user_id={c['user']}")
    assert totals["scanned-enrolment-count"] == 1
    assert read(out, "issue.certificate.request") == [], "completed once only"


def test_sync_requests_from_jsonl_with_bad_input(cql, course, tmp_path, run_id):
    c = course
    run(activity, tmp_path, "seed", [update(c, f"{run_id}-1", [("c1", 2)])])
    cql.execute("UPDATE user_enrolments SET progress = 0 WHERE userid=%s AND courseid=%s AND batchid=%s",
                (c["user"], c["course"], c["batch"]))
    ok = {"eid": "BE_JOB_REQUEST", "edata": {"action": "user-enrolment-sync", "userId": c["user"],
                                             "courseId": c["course"], "batchId": c["batch"]}}
    lines = [ok, {"edata": {"action": "user-enrolment-sync", "courseId": c["course"]}},
             {"edata": {"action": "batch-enrolment-update"}}, "nope"]
    totals, out = run(enrolment_sync, tmp_path, "sync", lines)
    assert tables(cql, c)["enrolment"][:2] == (1, 1), "progress recomputed from stored consumption"
    failed = read(out, "enrolment.reconciliation.failed")
    assert sorted(f["failInfo"]["error"].split(":")[0] for f in failed) == [
        "edata.userId is missing or not a non-empty string", "malformed JSON"]
    assert totals["total-events-count"] == 3 and totals["skipped-events-count"] == 1
    assert totals["processed-enrolment-count"] == 1


def flush_dedup_keys(c) -> None:
    """Loses the dedup store's marks for this course, as a flushed or replaced Redis would."""
    k = EnrolmentKey(c["user"], c["course"], c["batch"])
    redis.Redis(port=6379, db=3).delete(*[dedup_checksum(k, cid, 2) for cid in c["leaves"]])


def test_replay_without_the_dedup_store_counts_nothing_twice(cql, course, tmp_path, run_id):
    c = course
    lines = [update(c, f"{run_id}-1", [("c1", 2)]), update(c, f"{run_id}-2", [("c2", 2)])]
    run(activity, tmp_path, "first", lines)
    before = tables(cql, c)
    assert before["consumption"] == {"c1": (2, 1, 1), "c2": (2, 1, 1)}

    flush_dedup_keys(c)
    totals, out = run(activity, tmp_path, "replay", lines)
    assert totals.get("duplicate-event-count", 0) == 0, "the dedup store had nothing"
    assert totals["replayed-content-count"] == 2
    assert tables(cql, c) == before, "identical rows, counters and timestamps"
    assert read(out, "telemetry.raw") == [] and read(out, "issue.certificate.request") == []

    # Dedup disabled: another event reporting the same completion is the same completion.
    totals, out = run(activity, tmp_path, "copy", [update(c, f"{run_id}-3", [("c1", 2)])],
                      "--activity_input_dedup_enabled=false")
    assert tables(cql, c) == before


def test_dedup_store_down_is_an_optimisation_lost_not_a_crash(cql, course, tmp_path, run_id):
    c = course
    lines = [update(c, f"{run_id}-1", [("c1", 2)])]
    totals, out = run(activity, tmp_path, "nodedup", lines, "--dedup_redis_port=1")
    assert totals["dedup-unavailable-count"] == 1 and totals["processed-enrolment-count"] == 1
    assert read(out, "activity.agg.failed") == []
    assert tables(cql, c)["consumption"] == {"c1": (2, 1, 1)}
    totals, out = run(activity, tmp_path, "again", lines, "--dedup_redis_port=1")
    assert tables(cql, c)["consumption"] == {"c1": (2, 1, 1)}, "the applied record still counts it once"


def test_a_completion_lost_in_a_crash_is_re_emitted_with_the_same_ids(cql, course, tmp_path, run_id):
    c = course
    lines = [update(c, f"{run_id}-1", [("c1", 2), ("c2", 2), ("c3", 2)])]
    _, out = run(activity, tmp_path, "first", lines)
    [cert] = read(out, "issue.certificate.request")
    [audit] = [a for a in read(out, "telemetry.raw") if a["edata"]["type"] == "enrol-complete"]
    key = (c["user"], c["course"], c["batch"])
    flags = cql.execute("SELECT completes, confirmed FROM consumption_events_applied WHERE userid=%s "
                        "AND courseid=%s AND batchid=%s", key)
    assert [(r.completes, r.confirmed) for r in flags] == [(True, True)] * 3, "confirmed once the outputs left"

    # A crash after the completion but before its confirmation: not confirmed yet.
    cql.execute("UPDATE consumption_events_applied SET confirmed = false WHERE userid=%s AND courseid=%s "
                "AND batchid=%s AND contentid='c3' AND eventid=%s",
                (*key, dedup_checksum(EnrolmentKey(*key), "c3", 2)))
    flush_dedup_keys(c)
    totals, out = run(activity, tmp_path, "replay", lines)
    assert totals["completion-reemitted-count"] == 1
    assert read(out, "issue.certificate.request") == [cert], "byte-identical: same mid and ets"
    assert [a for a in read(out, "telemetry.raw") if a["edata"]["type"] == "enrol-complete"] == [audit]

    flush_dedup_keys(c)
    totals, out = run(activity, tmp_path, "again", lines)
    assert read(out, "issue.certificate.request") == [], "confirmed by the replay: nothing more"


def test_a_huge_id_fails_alone_and_the_rest_of_the_batch_is_processed(cql, course, tmp_path, run_id):
    c = course
    huge = "x" * 200_000
    ok = {"eid": "BE_JOB_REQUEST", "edata": {"action": "user-enrolment-sync", "userId": c["user"],
                                             "courseId": c["course"], "batchId": c["batch"]}}
    bad = {"eid": "BE_JOB_REQUEST", "edata": {"action": "user-enrolment-sync", "userId": huge,
                                              "courseId": c["course"], "batchId": c["batch"]}}
    totals, out = run(enrolment_sync, tmp_path, "huge", [ok, bad, ok])
    failed = read(out, "enrolment.reconciliation.failed")
    assert len(failed) == 1 and failed[0]["edata"]["userId"] == huge, "original event kept whole"
    assert failed[0]["failInfo"]["error"] == "edata.userId is longer than 1024 characters (200000)"
    assert totals["processed-enrolment-count"] == 1 and totals["failed-events-count"] == 1


def test_in_streaming_a_replay_within_the_window_re_emits_a_confirmed_completion(cql, course, tmp_path, run_id):
    """After a crash, Flink replays events whose outputs may be lost even though their completion
    was confirmed (the confirmation races the Kafka flush): within the replay window they go again."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.domain.progress import update_work
    from pipelines.io.cassandra import CassandraConfig
    from pipelines.io.redis_store import RedisConfig
    from pipelines.options.progress import ProgressSettings
    from pipelines.transforms.compute_progress import CERT_TAG, ComputeProgress

    c = course
    event = update(c, f"{run_id}-1", [("c1", 2), ("c2", 2), ("c3", 2)])
    _, out = run(activity, tmp_path, "first", [event])
    [cert] = read(out, "issue.certificate.request")
    works, _ = update_work(event)

    def replay(window_secs: float) -> None:
        settings = ProgressSettings(
            job_name=activity.JOB_NAME, cassandra=CassandraConfig(hosts=("127.0.0.1",), keyspace="sunbird_courses"),
            relation_cache=RedisConfig(db=10), search_base_url=EMULATOR,
            tables={"consumption": "user_content_consumption", "enrolments": "user_enrolments",
                    "activity_agg": "user_activity_agg", "applied": "consumption_events_applied"},
            replay_window_secs=window_secs)
        with TestPipeline() as p:
            certs = p | beam.Create(works) | ComputeProgress(settings, 1, 100, None)
            assert_that(certs[CERT_TAG], equal_to([cert] if window_secs else []))

    replay(0)      # batch (or outside the window): confirmed, nothing again
    replay(600)    # streaming, completed seconds ago: the same request, byte for byte


def test_in_streaming_a_replayed_recompute_re_emits_a_recent_completion(cql, course, tmp_path, run_id):
    """enrolment-reconciliation leaves no applied record to re-emit from: a sync request replayed
    within the window after the enrolment completed sends the same certificate request again."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.domain.progress import sync_work
    from pipelines.io.cassandra import CassandraConfig
    from pipelines.io.redis_store import RedisConfig
    from pipelines.options.progress import ProgressSettings
    from pipelines.transforms.compute_progress import CERT_TAG, ComputeProgress

    c = course
    _, out = run(activity, tmp_path, "complete", [update(c, f"{run_id}-1", [("c1", 2), ("c2", 2), ("c3", 2)])])
    [cert] = read(out, "issue.certificate.request")
    sync = {"eid": "BE_JOB_REQUEST", "edata": {"action": "user-enrolment-sync", "userId": c["user"],
                                               "courseId": c["course"], "batchId": c["batch"]}}

    def recompute(window_secs: float) -> None:
        settings = ProgressSettings(
            job_name="enrolment-reconciliation",
            cassandra=CassandraConfig(hosts=("127.0.0.1",), keyspace="sunbird_courses"),
            relation_cache=RedisConfig(db=10), search_base_url=EMULATOR,
            tables={"consumption": "user_content_consumption", "enrolments": "user_enrolments",
                    "activity_agg": "user_activity_agg", "applied": "consumption_events_applied"},
            write_consumption=False, replay_window_secs=window_secs)
        with TestPipeline() as p:
            certs = p | beam.Create(sync_work(sync)) | ComputeProgress(settings, 1, 100, None)
            assert_that(certs[CERT_TAG], equal_to([cert] if window_secs else []))

    recompute(0)    # batch, or outside the window: completed once, nothing again
    recompute(600)  # streaming, completed seconds ago: the same request, same mid and ets
