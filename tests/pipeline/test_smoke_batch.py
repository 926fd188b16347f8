"""The smoke job in batch mode (JSONL in, JSONL out) against the real Redis and Cassandra."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from cassandra.cluster import Cluster

from pipelines import job, smoke
from tests.batch_runs import read_topic, run_job, write_jsonl

JOB = smoke.JOB_NAME


@pytest.fixture(scope="module")
def cql(stack):
    cluster = Cluster(["127.0.0.1"], port=stack["cassandra"])
    session = cluster.connect("lern_beam")
    yield session
    cluster.shutdown()


def rows_by_mid(cql, mids: list[str]) -> dict:
    stmt = cql.prepare("SELECT mid, payload, shard, processed_on FROM smoke_event WHERE mid IN ?")
    return {r.mid: r for r in cql.execute(stmt, [mids])}


def run_batch(tmp_path: Path, name: str, lines: list) -> tuple[dict[str, int], Path]:
    return run_job(smoke, tmp_path, name, lines, keep_namespace=True)


def test_batch_run_writes_rows_outputs_and_failures(stack, cql, tmp_path, run_id):
    lines = [
        {"mid": f"{run_id}-1", "v": 1},
        {"mid": f"{run_id}-2", "v": 2},
        {"mid": f"{run_id}-1", "v": 1},          # duplicate inside the run
        "not json at all",
        {"v": "no mid"},
        [1, 2, 3],
    ]
    totals, out = run_batch(tmp_path, "first", lines)

    outputs = read_topic(out, "lern.smoke.output")
    assert sorted(o["mid"] for o in outputs) == [f"{run_id}-1", f"{run_id}-2"]
    by_mid = {o["mid"]: o for o in outputs}
    assert by_mid[f"{run_id}-2"]["edata"] == {"mid": f"{run_id}-2", "v": 2}
    assert by_mid[f"{run_id}-2"]["eid"] == "LERN_BEAM_SMOKE"

    failed = read_topic(out, "lern.smoke.failed")
    reasons = sorted((f["failInfo"]["stage"], f["failInfo"]["error"].split(":")[0]) for f in failed)
    assert reasons == [("parse", "event must be a JSON object, got list"), ("parse", "malformed JSON"),
                       ("validate", "missing or non-string mid")]
    assert {f.get("raw") for f in failed} >= {"not json at all", "[1, 2, 3]"}, "raw payload kept whole"
    assert any(f.get("v") == "no mid" for f in failed), "parsed-but-invalid event kept whole"

    rows = rows_by_mid(cql, [f"{run_id}-1", f"{run_id}-2"])
    assert set(rows) == {f"{run_id}-1", f"{run_id}-2"}
    assert json.loads(rows[f"{run_id}-1"].payload) == {"mid": f"{run_id}-1", "v": 1}

    # Every input line ends in exactly one place: processed, skipped as duplicate, or failed.
    assert totals[f"{JOB}:db-write-count"] == 2
    assert totals[f"{JOB}:duplicate-event-count"] == 1
    assert totals[f"{JOB}:failed-event-count"] == 3
    assert len(outputs) + totals[f"{JOB}:duplicate-event-count"] + len(failed) == len(lines)

    dedup = redis.Redis(port=stack["redis"], db=3)
    assert dedup.exists(f"{run_id}-1") and dedup.exists(f"{run_id}-2")
    assert 0 < dedup.ttl(f"{run_id}-1") <= 604800


def test_replaying_the_same_input_changes_nothing(stack, cql, tmp_path, run_id):
    lines = [{"mid": f"{run_id}-a", "v": 1}, {"mid": f"{run_id}-b", "v": 2}]
    run_batch(tmp_path, "first", lines)
    before = rows_by_mid(cql, [f"{run_id}-a", f"{run_id}-b"])
    assert len(before) == 2

    totals, out = run_batch(tmp_path, "replay", lines)
    assert read_topic(out, "lern.smoke.output") == []
    assert totals[f"{JOB}:duplicate-event-count"] == 2
    assert totals.get(f"{JOB}:db-write-count", 0) == 0
    after = rows_by_mid(cql, [f"{run_id}-a", f"{run_id}-b"])
    assert after == before, "a replay must not rewrite rows"


def test_redis_down_dead_letters_the_batch_with_a_reason(stack, tmp_path, run_id):
    inp = write_jsonl(tmp_path / "in.jsonl", [{"mid": f"{run_id}-x"}])
    out = tmp_path / "out"
    # Nothing listens on port 1: every dedup check fails after its retries.
    totals = job.run(smoke.build, ["--input", str(inp), "--output_dir", str(out), "--dedup_redis_port", "1"],
                     smoke.defaults())
    failed = read_topic(out, "lern.smoke.failed")
    assert len(failed) == 1 and failed[0]["mid"] == f"{run_id}-x"
    assert failed[0]["failInfo"]["stage"] == "dedup"
    assert "dedup store unavailable" in failed[0]["failInfo"]["error"]
    assert read_topic(out, "lern.smoke.output") == []
    assert totals[f"{JOB}:failed-event-count"] == 1
