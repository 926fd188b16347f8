"""merge-user-courses on FlinkRunner: a merge request and a broken record on a real input topic ->
the target's rows in Cassandra, and the sync, recompute and failed events on their real topics."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from cassandra.cluster import Cluster

from pipelines import job, merge_courses
from pipelines.domain import merge as M
from tests.e2e.kafka_helpers import consume_all, create_topics, produce


@pytest.mark.flink
def test_merge_on_flink_merges_once_and_emits_the_requests(stack, run_id):
    F, T, C1, C2, B1, B2 = (f"{run_id}-{k}" for k in ("F", "T", "C1", "C2", "B1", "B2"))
    cluster = Cluster(["127.0.0.1"], port=stack["cassandra"])
    try:
        cql = cluster.connect("sunbird_courses")
        for user, course, batch, status in ((F, C1, B1, 1), (F, C2, B2, 2), (T, C1, B1, 1)):
            cql.execute("INSERT INTO user_enrolments (userid, courseid, batchid, status, progress) "
                        "VALUES (%s, %s, %s, %s, 1)", (user, course, batch, status))
        for user, course, batch, content, status, views in ((F, C1, B1, "c1", 2, 3), (F, C2, B2, "c2", 2, 1),
                                                             (T, C1, B1, "c1", 1, 2)):
            cql.execute("INSERT INTO user_content_consumption (userid, courseid, batchid, contentid, status, "
                        "viewcount, completedcount, lastaccesstime) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (user, course, batch, content, status, views, 1 if status == 2 else 0,
                         f"2022-0{views}-01 00:00:00:000+0000"))
        cql.execute("INSERT INTO assessment_aggregator (user_id, course_id, batch_id, content_id, attempt_id, "
                    "last_attempted_on, total_score, total_max_score) VALUES (%s, %s, %s, 'a1', 'att1', %s, 2, 4)",
                    (F, C1, B1, datetime(2022, 1, 1)))

        topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "sync", "enrolsync", "assess", "failed")}
        create_topics(*topics.values())
        request = {"eid": "BE_JOB_REQUEST", "mid": f"{run_id}-m", "ets": 1648720639981,
                   "edata": {"action": M.MERGE_ACTION, "fromAccountId": F, "toAccountId": T, "iteration": 1}}
        # The same request twice (a duplicate delivery) and a broken record.
        produce(topics["in"], [json.dumps(request).encode(), json.dumps(request).encode(), b"{broken"])

        totals = job.run(merge_courses.build, [
            "--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1",
            f"--kafka_input_topic={topics['in']}", f"--kafka_output_course_batch_updater_topic={topics['sync']}",
            f"--kafka_output_enrolment_sync_topic={topics['enrolsync']}",
            f"--kafka_output_assessment_recompute_topic={topics['assess']}",
            f"--kafka_output_failed_topic={topics['failed']}",
            f"--kafka_groupid={run_id}", "--kafka_auto_offset_reset=earliest", "--max_num_records=3",
        ], merge_courses.defaults, extra_groups=merge_courses.EXTRA_GROUPS)

        cons = {r.contentid: (r.courseid, r.status, r.viewcount, r.completedcount, r.lastaccesstime)
                for r in cql.execute("SELECT * FROM user_content_consumption WHERE userid=%s", (T,))}
        assert cons == {"c1": (C1, 2, 5, 1, "2022-03-01 00:00:00:000+0000"),  # summed once, not twice
                        "c2": (C2, 2, 1, 1, "2022-01-01 00:00:00:000+0000")}
        enrols = {r.batchid: (r.courseid, r.status) for r in
                  cql.execute("SELECT * FROM user_enrolments WHERE userid=%s", (T,))}
        assert enrols == {B1: (C1, 1), B2: (C2, 2)}
        attempts = [(r.attempt_id, r.total_score) for r in cql.execute(
            "SELECT * FROM assessment_aggregator WHERE user_id=%s AND course_id=%s", (T, C1))]
        assert attempts == [("att1", 2.0)]
    finally:
        cluster.shutdown()

    c = "merge-user-courses:"
    assert totals[c + "total-events-count"] == 2 and totals[c + "success-events-count"] == 2
    assert totals[c + "already-merged-event-count"] == 1 and totals[c + merge_courses.FAILED_METRIC] == 1
    # Two deliveries of the request: each emits the requests (the second from the done-marker).
    syncs = [json.loads(v) for _, v in consume_all(topics["sync"], expected=4)]
    assert sorted((e["edata"]["courseId"], e["edata"]["batchId"], e["edata"]["userId"]) for e in syncs) == \
        [(C1, B1, T)] * 2 + [(C2, B2, T)] * 2
    assert all(e["edata"]["action"] == "batch-enrolment-sync" for e in syncs)
    enrol_syncs = [json.loads(v) for _, v in consume_all(topics["enrolsync"], expected=4)]
    assert sorted(json.dumps(e, sort_keys=True) for e in enrol_syncs) == sorted(
        json.dumps(M.enrolment_sync_request(b, T, course), sort_keys=True)
        for course, b in ((C1, B1), (C2, B2)) for _ in range(2))
    assess = [json.loads(v) for _, v in consume_all(topics["assess"], expected=2)]
    assert [(e["courseId"], e["batchId"], e["userId"], e["contentId"], e["events"]) for e in assess] == \
        [(C1, B1, T, "a1", [])] * 2
    failed = [json.loads(v) for _, v in consume_all(topics["failed"], expected=1)]
    assert [(f["raw"], f["jobName"], f["failInfo"]["errorCode"]) for f in failed] == [
        ("{broken", "MergeUserCourses", "DATA_ERROR")]

