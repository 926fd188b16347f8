"""The streaming path for real: Kafka -> ReadFromKafka on FlinkRunner -> Redis dedup ->
GroupIntoBatches -> Cassandra -> WriteToKafka, with the embedded Flink mini-cluster.

Everything runs offline: the Java side of the Kafka transforms runs in the Flink job server's
own JVM (EMBEDDED environment), Python transforms in this process (LOOPBACK). See docs/streaming.md.
"""

from __future__ import annotations

import json
import time

import pytest
import redis
from cassandra.cluster import Cluster

from pipelines import job, smoke
from tests.e2e.kafka_helpers import committed_offset, consume_all, create_topics, produce

JOB = smoke.JOB_NAME


@pytest.mark.flink
def test_kafka_to_cassandra_and_kafka_on_flink(stack, run_id):
    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "out", "failed")}
    create_topics(*topics.values())
    mids = [f"{run_id}-{i}" for i in range(5)]
    payloads = [json.dumps({"mid": m, "n": i}).encode() for i, m in enumerate(mids)]
    payloads += [payloads[0], b"{not json", json.dumps({"no": "mid"}).encode()]
    produce(topics["in"], payloads)

    totals = job.run(smoke.build, [
        "--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1",
        f"--kafka_input_topic={topics['in']}", f"--kafka_output_topic={topics['out']}",
        f"--kafka_output_failed_topic={topics['failed']}", f"--kafka_groupid={run_id}",
        "--kafka_auto_offset_reset=earliest", f"--max_num_records={len(payloads)}",
    ], smoke.defaults())

    out = consume_all(topics["out"], expected=5)
    events = [json.loads(v) for _, v in out]
    assert sorted(e["mid"] for e in events) == mids, "each unique event exactly once"
    assert {k for k, _ in out} == {m.encode() for m in mids}, "record key is the event mid"
    assert all(e["eid"] == "LERN_BEAM_SMOKE" and e["edata"]["mid"] == e["mid"] for e in events)

    failed = [json.loads(v) for _, v in consume_all(topics["failed"], expected=2)]
    assert sorted(f["failInfo"]["stage"] for f in failed) == ["parse", "validate"]
    assert any(f.get("raw") == "{not json" for f in failed)
    assert any(f.get("no") == "mid" for f in failed)

    cluster = Cluster(["127.0.0.1"], port=stack["cassandra"])
    try:
        session = cluster.connect("lern_beam")
        stmt = session.prepare("SELECT mid, payload FROM smoke_event WHERE mid IN ?")
        rows = {r.mid: json.loads(r.payload) for r in session.execute(stmt, [mids])}
    finally:
        cluster.shutdown()
    assert rows == {m: {"mid": m, "n": i} for i, m in enumerate(mids)}

    dedup = redis.Redis(port=stack["redis"], db=3)
    assert all(dedup.exists(m) for m in mids)
    # Counters come back from Flink through the job service, under the reference-style names.
    assert totals.get(f"{JOB}:db-write-count") == 5
    assert totals.get(f"{JOB}:duplicate-event-count") == 1


@pytest.mark.flink
def test_unbounded_stream_flows_and_commits_offsets_on_checkpoints(stack, run_id, tmp_path):
    """No max_num_records: the job runs until stopped, output must flow while it runs
    (GroupIntoBatches flushes on its processing-time timer) and the consumer group's offsets must
    be committed when checkpoints complete, so a restarted job resumes instead of re-reading."""
    import os
    import signal
    import subprocess
    import sys

    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "out", "failed")}
    create_topics(*topics.values())
    log = open(tmp_path / "job.log", "w")
    proc = subprocess.Popen([
        sys.executable, "-m", "pipelines.smoke", "--runner=FlinkRunner", "--flink_master=[local]",
        "--parallelism=1", f"--kafka_input_topic={topics['in']}", f"--kafka_output_topic={topics['out']}",
        f"--kafka_output_failed_topic={topics['failed']}", f"--kafka_groupid={run_id}",
        "--kafka_auto_offset_reset=earliest", "--task_checkpointing_interval=2000",
    ], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        mids = [f"{run_id}-{i}" for i in range(4)]
        produce(topics["in"], [json.dumps({"mid": m}).encode() for m in mids[:2]])
        first = consume_all(topics["out"], expected=2, timeout=120)
        assert sorted(json.loads(v)["mid"] for _, v in first) == mids[:2], (tmp_path / "job.log").read_text()[-3000:]
        # Still running: later events flow too.
        produce(topics["in"], [json.dumps({"mid": m}).encode() for m in mids[2:]])
        out = consume_all(topics["out"], expected=4, timeout=60)
        assert sorted(json.loads(v)["mid"] for _, v in out) == mids
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and committed_offset(run_id, topics["in"]) < 4:
            time.sleep(1)
        assert committed_offset(run_id, topics["in"]) == 4
        assert proc.poll() is None, "the streaming job must still be running"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        log.close()
