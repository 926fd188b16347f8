"""assessment-aggregator on FlinkRunner: batch-assess events on a real input topic -> attempt rows and
best scores in Cassandra, certificate requests and failed events on their real topics."""

from __future__ import annotations

import json

import pytest
import redis
from cassandra.cluster import Cluster

from pipelines import assessment, job
from tests.e2e.kafka_helpers import consume_all, create_topics, produce

T0 = 1_700_000_000_000


def question(qid: str, ets: int, score: float, maxscore: float = 1) -> dict:
    return {"eid": "ASSESS", "ets": ets, "edata": {
        "item": {"id": qid, "maxscore": maxscore, "type": "mcq", "title": qid, "desc": "", "params": []},
        "score": score, "resvalues": [{"0": '{"text":"a"}'}], "duration": 2}}


@pytest.mark.flink
def test_assessment_on_flink_writes_attempts_scores_and_events(stack, run_id):
    c = {k: f"{run_id}-{k}" for k in ("C", "B", "Q1", "U1", "A1", "A2")}
    redis.Redis(port=stack["redis"], db=10).sadd(f"{c['C']}:{c['C']}:leafnodes", c["Q1"])
    base = {"batchId": c["B"], "courseId": c["C"], "userId": c["U1"], "contentId": c["Q1"]}
    events = [
        {**base, "attemptId": c["A1"], "assessmentTs": T0 + 1_000,
         "events": [question("q1", T0 + 10, 1), question("q2", T0 + 20, 0), question("q2", T0 + 30, 1, 2)]},
        {**base, "attemptId": c["A2"], "assessmentTs": T0 + 9_000,
         "events": [question("q1", T0 + 8_000, 0.5), question("q2", T0 + 8_010, 0, 2)]},
        {**base, "attemptId": c["A1"], "assessmentTs": T0 + 500, "events": [question("q1", T0, 0)]},  # stale
        {**base, "contentId": f"{run_id}-ELSEWHERE", "attemptId": c["A2"], "assessmentTs": T0,
         "events": [question("q1", T0, 1)]},  # not a leaf of the course
    ]
    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "cert", "failed")}
    create_topics(*topics.values())
    produce(topics["in"], [json.dumps(e).encode() for e in events] + [b"{broken"])

    totals = job.run(assessment.build, [
        "--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1",
        f"--kafka_input_topic={topics['in']}", f"--kafka_output_certissue_topic={topics['cert']}",
        f"--kafka_failed_topic={topics['failed']}", f"--kafka_groupid={run_id}", "--kafka_auto_offset_reset=earliest",
        "--max_num_records=5",
    ], assessment.defaults, extra_groups=(assessment.AssessmentOptions,))

    cluster = Cluster(["127.0.0.1"], port=stack["cassandra"])
    try:
        cql = cluster.connect("sunbird_courses")
        rows = {r.attempt_id: r for r in cql.execute(
            "SELECT attempt_id, grand_total, total_score, question FROM assessment_aggregator WHERE user_id=%s "
            "AND course_id=%s", (c["U1"], c["C"]))}
        assert {a: (r.grand_total, [(q.id, q.score) for q in r.question]) for a, r in rows.items()} == {
            c["A1"]: ("2.0/3.0", [("q1", 1.0), ("q2", 1.0)]), c["A2"]: ("0.5/3.0", [("q1", 0.5), ("q2", 0.0)])}
        agg = cql.execute("SELECT aggregates, agg_details FROM user_activity_agg WHERE activity_type='Course' AND "
                          "activity_id=%s AND user_id=%s AND context_id=%s",
                          (c["C"], c["U1"], f"cb:{c['B']}")).one()
        assert dict(agg.aggregates) == {f"score:{c['Q1']}": 2.0, f"max_score:{c['Q1']}": 3.0,
                                        f"attempts_count:{c['Q1']}": 2.0}
        assert [json.loads(d)["attempt_id"] for d in agg.agg_details] == [c["A1"], c["A2"]]
    finally:
        cluster.shutdown()

    certs = [json.loads(v) for _, v in consume_all(topics["cert"], expected=2)]
    assert len(certs) == 2
    assert all(x["edata"]["userIds"] == [c["U1"]] and x["edata"]["courseId"] == c["C"] for x in certs)
    # One content: the latest attempt at the time of each aggregation (A2 once it is written).
    attempt_ids = {x["edata"]["attemptId"] for x in certs}
    assert c["A2"] in attempt_ids and attempt_ids <= {c["A1"], c["A2"]}
    failed = [json.loads(v) for _, v in consume_all(topics["failed"], expected=2)]
    assert sorted(f["failInfo"]["error"].split(":")[0] for f in failed) == [
        f"content {run_id}-ELSEWHERE is not a leaf node of course {c['C']}", "malformed JSON"]
    assert all(f["metadata"]["src"] == "AssessmentAggregator" for f in failed)
    ns = assessment.JOB_NAME
    assert totals[f"{ns}:skipped-event-count"] == 1 and totals[f"{ns}:batch-success-event-count"] == 2
