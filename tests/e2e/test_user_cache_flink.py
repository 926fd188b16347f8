"""user-cache-updater-2.0 on FlinkRunner: user AUDIT events on a real Kafka topic -> hashes in Redis db 12,
an unknown user and a broken record on the real failed topic."""

from __future__ import annotations

import json

import pytest
import redis

from pipelines import job, user_cache
from tests.e2e.kafka_helpers import consume_all, create_topics, produce
from tests.pipeline.test_user_cache_job import audit, seed


@pytest.mark.flink
def test_user_cache_on_flink_writes_the_hashes(stack, run_id, tmp_path):
    seed(run_id)
    store = redis.Redis(port=stack["redis"], db=12, decode_responses=True)
    u1, u2 = f"{run_id}-u1", f"{run_id}-u2"
    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "failed")}
    create_topics(*topics.values())
    events = [audit(u1, cdata=[{"id": "self", "type": "SignupType"}]), audit(u2, state="Create"),
              audit(f"{run_id}-ghost"), audit(u1, state="Logout")]
    produce(topics["in"], [json.dumps(e).encode() for e in events] + [b"[1"])
    # A reference-style conf with list-valued keys: Beam puts options into the pipeline proto,
    # where a tuple value failed every submission (issue 12).
    conf = tmp_path / "user-cache-updater-v2.conf"
    conf.write_text('user.self.signin.types = ["google","self"]\nuser.validated.types = ["sso"]\n'
                    'user.read.api.error = ["CLIENT_ERROR"]\nredis-meta { database { userstore.id = 12 } }\n')
    try:
        totals = job.run(user_cache.build, [
            "--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1",
            f"--kafka_input_topic={topics['in']}", f"--kafka_output_failed_topic={topics['failed']}",
            f"--kafka_groupid={run_id}", "--kafka_auto_offset_reset=earliest", "--max_num_records=5",
        ], user_cache.defaults, extra_groups=(user_cache.UserCacheOptions,))

        h1 = store.hgetall(f"user:{u1}")
        assert h1["usersignintype"] == "Self-Signed-In" and h1["firstname"] == "Asha"
        assert h1["framework_board"] == '["CBSE"]' and h1["schoolname"] == "Govt School" and h1["userid"] == u1
        assert store.hgetall(f"user:{u2}")["firstname"] == "Ben"
        assert not store.exists(f"user:{run_id}-ghost")
    finally:
        keys = list(store.scan_iter(f"user:{run_id}*"))
        if keys:
            store.delete(*keys)
    failed = [json.loads(v) for _, v in consume_all(topics["failed"], expected=2)]
    assert sorted(f.get("raw") or f["object"]["id"] for f in failed) == sorted(["[1", f"{run_id}-ghost"])
    t = {k.split(":", 1)[1]: v for k, v in totals.items()}
    assert t["success-message-count"] == 2 and t["skipped-message-count"] == 1
