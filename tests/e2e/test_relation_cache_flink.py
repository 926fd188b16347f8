"""relation-cache-updater streaming for real: a Kafka topic -> ReadFromKafka on FlinkRunner ->
Cassandra hierarchy read -> Redis relation and collection caches, failures to a Kafka topic."""

from __future__ import annotations

import json

import pytest

from pipelines import job, relation_cache
from tests.e2e.test_smoke_flink import consume_all, create_topics, produce
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
    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "failed")}
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
