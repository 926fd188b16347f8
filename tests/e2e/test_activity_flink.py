"""activity-aggregate-updater on FlinkRunner: consumption events on a real input topic ->
rows in Cassandra, and the cert-issue and audit events on their real topics."""

from __future__ import annotations

import json

import pytest
from cassandra.cluster import Cluster

from pipelines import activity, job
from tests.e2e.kafka_helpers import consume_all, create_topics, produce
from tests.progress_data import seed_course, update


@pytest.mark.flink
def test_activity_on_flink_completes_the_enrolment_once(stack, run_id):
    cluster = Cluster(["127.0.0.1"], port=stack["cassandra"])
    try:
        cql = cluster.connect("sunbird_courses")
        c = seed_course(stack["redis"], cql, run_id)
        topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "audit", "cert", "failed")}
        create_topics(*topics.values())
        events = [update(c, f"{run_id}-1", [("c1", 2), ("c2", 1)]),
                  update(c, f"{run_id}-2", [("c2", 2), ("c3", 2)]),
                  update(c, f"{run_id}-3", [("c3", 2)])]  # a repeat completion: a duplicate
        produce(topics["in"], [json.dumps(e).encode() for e in events] + [b"{broken"])

        totals = job.run(activity.build, [
            "--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1",
            f"--kafka_input_topic={topics['in']}", f"--kafka_output_audit_topic={topics['audit']}",
            f"--kafka_output_certissue_topic={topics['cert']}", f"--kafka_output_failed_topic={topics['failed']}",
            f"--kafka_groupid={run_id}", "--kafka_auto_offset_reset=earliest", "--max_num_records=4",
        ], activity.defaults)

        enrol = cql.execute("SELECT status, progress, contentstatus FROM user_enrolments WHERE userid=%s AND "
                            "courseid=%s AND batchid=%s", (c["user"], c["course"], c["batch"])).one()
        assert (enrol.status, enrol.progress, dict(enrol.contentstatus)) == (2, 3, {"c1": 2, "c2": 2, "c3": 2})
        agg = cql.execute("SELECT aggregates FROM user_activity_agg WHERE activity_type='Course' AND activity_id=%s "
                          "AND user_id=%s AND context_id=%s", (c["course"], c["user"], f"cb:{c['batch']}")).one()
        assert dict(agg.aggregates) == {"completedCount": 3.0}
    finally:
        cluster.shutdown()

    certs = [json.loads(v) for _, v in consume_all(topics["cert"], expected=1)]
    assert len(certs) == 1
    assert certs[0]["edata"]["userIds"] == [c["user"]] and certs[0]["edata"]["courseId"] == c["course"]
    audit = [json.loads(v) for _, v in consume_all(topics["audit"], expected=7)]
    assert sorted(a["edata"]["type"] for a in audit) == ["complete"] * 3 + ["enrol-complete"] + ["start"] * 3
    failed = [json.loads(v) for _, v in consume_all(topics["failed"], expected=1)]
    assert [f["raw"] for f in failed] == ["{broken"]
    assert totals["activity-aggregate-updater:duplicate-event-count"] == 1
