"""relation-cache-updater streaming for real: a Kafka topic -> ReadFromKafka on FlinkRunner ->
Cassandra hierarchy read -> Redis relation and collection caches, failures to a Kafka topic; and a
republish that changes a course -> recompute requests on a Kafka topic -> enrolment-reconciliation
on Flink -> the one completion it causes."""

from __future__ import annotations

import json

import pytest

from pipelines import enrolment_sync, job, relation_cache
from pipelines.domain.cache_keys import recompute_pending_key
from tests.e2e.test_smoke_flink import consume_all, create_topics, produce
from tests.pipeline.test_course_changes import Course, republish
from tests.pipeline.test_relation_cache import (
    Stores,
    compact,
    expected_relation_keys,
    find_unit,
    redis_snapshot,
    request,
    sample_course,
)

JOB = relation_cache.JOB_NAME


@pytest.fixture
def stores(stack, run_id):
    s = Stores(stack["cassandra"], stack["redis"])
    s.prefixes.append(run_id)
    yield s
    s.cleanup()


@pytest.mark.flink
def test_kafka_to_redis_relation_cache_on_flink(stores, run_id):
    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "failed", "sync")}
    create_topics(*topics.values())
    course, hierarchy = sample_course(run_id)
    stores.put(course, hierarchy)
    events = [
        json.dumps(request(course, mid="ok")).encode(),
        json.dumps(request(f"{run_id}_do_rc_res_a", mime="application/pdf", mid="skip")).encode(),
        b"{not json",
        json.dumps(request(f"{run_id}_do_missing", mid="missing")).encode(),
    ]
    produce(topics["in"], events)

    totals = job.run(relation_cache.build, [
        "--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1",
        f"--kafka_input_topic={topics['in']}", f"--kafka_output_failed_topic={topics['failed']}",
        f"--kafka_output_recompute_topic={topics['sync']}",
        f"--kafka_groupid={run_id}", "--kafka_auto_offset_reset=earliest", f"--max_num_records={len(events)}",
    ], relation_cache.defaults())

    snap = redis_snapshot(stores.relation, run_id)
    expected = expected_relation_keys(course, run_id)
    assert snap == {**{k: ("set", v, -1) for k, v in expected.items()},
                    f"{relation_cache.KEY_INDEX_PREFIX}{course}": ("set", sorted(expected), -1)}
    units = redis_snapshot(stores.collection, run_id)
    names = [f"{run_id}_do_rc_unit_1", f"{run_id}_do_rc_unit_1_1", f"{run_id}_do_rc_unit_2"]
    assert units == {n: ("string", compact(find_unit(hierarchy, n)), -1) for n in names}

    failed = [json.loads(v) for _, v in consume_all(topics["failed"], expected=2)]
    assert sorted(f["failInfo"]["stage"] for f in failed) == ["parse", "read"]
    assert any(f.get("raw") == "{not json" for f in failed)
    assert any(f.get("mid") == "missing" and f["failInfo"]["error"].startswith("hierarchy not found") for f in failed)

    # Counters come back from Flink under the reference's names.
    assert totals.get(f"{JOB}:total-events-count") == 4
    assert totals.get(f"{JOB}:success-events-count") == 1
    assert totals.get(f"{JOB}:skipped-event-count") == 1
    assert totals.get(f"{JOB}:failed-events-count") == 2
    assert totals.get(f"{JOB}:cache-write-count") == len(expected) + len(names)


FLINK = ["--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1", "--kafka_auto_offset_reset=earliest"]


@pytest.mark.flink
def test_a_republish_on_flink_recomputes_the_course_and_completes_a_learner_once(stores, cql, run_id, tmp_path):
    """Streaming both ways: the republish that drops the last content a learner missed sends one
    request per enrolment to Kafka; enrolment-reconciliation on Flink reads them and issues one
    certificate request for each learner it completes (one per batch here), and none for the others."""
    c = Course(stores, cql, run_id)
    c.v1()
    republish(tmp_path, "v1", c, "--recompute_enabled=false")  # the cache as it was, no requests
    c.publish({c.u1: ["c1", "c2"], c.u2: ["opt*"]})
    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "failed", "sync", "audit", "cert", "sync-failed")}
    create_topics(*topics.values())
    produce(topics["in"], [json.dumps(request(c.id, mid="republish")).encode()])

    totals = job.run(relation_cache.build, [
        *FLINK, f"--kafka_input_topic={topics['in']}", f"--kafka_output_failed_topic={topics['failed']}",
        f"--kafka_output_recompute_topic={topics['sync']}", f"--kafka_groupid={run_id}", "--max_num_records=1",
    ], relation_cache.defaults())
    sent = [json.loads(v) for _, v in consume_all(topics["sync"], expected=4)]
    assert sorted(sent, key=lambda r: r["edata"]["userId"]) == c.requests()
    assert totals.get(f"{JOB}:course-changed-count") == 1 and totals.get(f"{JOB}:recompute-request-count") == 4
    assert stores.relation.get(recompute_pending_key(c.id)) is None, "cleared after the requests were written"

    job.run(enrolment_sync.build, [
        *FLINK, f"--kafka_input_topic={topics['sync']}", f"--kafka_output_audit_topic={topics['audit']}",
        f"--kafka_output_certissue_topic={topics['cert']}", f"--kafka_output_failed_topic={topics['sync-failed']}",
        f"--kafka_groupid={run_id}-sync", "--max_num_records=4",
    ], enrolment_sync.defaults)
    certs = [json.loads(v) for _, v in consume_all(topics["cert"], expected=2)]
    assert sorted((e["edata"]["userIds"], e["edata"]["batchId"]) for e in certs) == \
        [([c.users[n]], c.batches[n]) for n in ("almost", "almost2")]
    almost, almost2, partial, done = (c.enrolment(n) for n in ("almost", "almost2", "partial", "done"))
    assert (almost.status, almost.progress) == (almost2.status, almost2.progress) == (2, 2)
    assert partial.status == 1 and (done.status, done.progress) == (2, 3)
