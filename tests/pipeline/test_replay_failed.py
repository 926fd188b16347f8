"""replay-failed on DirectRunner: a job's failures re-driven into its input once the cause is gone."""

from __future__ import annotations

import redis
import requests

from pipelines import activity, replay_failed
from tests.batch_runs import read_topic, run_job
from tests.progress_data import update

EMULATOR = "http://127.0.0.1:9000"


def test_failures_of_a_missing_relation_cache_are_replayed_after_it_is_published(stack, cql, tmp_path, run_id):
    course, user, batch = f"{run_id}-C", f"{run_id}-L", f"{run_id}-B"
    requests.post(f"{EMULATOR}/__emulator/seed", json={"contents": {
        course: {"objectType": "Collection", "status": "Live"}}}, timeout=10).raise_for_status()
    cql.execute("INSERT INTO user_enrolments (userid, courseid, batchid, status, active) VALUES (%s, %s, %s, 1, true)",
                (user, course, batch))
    c = {"user": user, "course": course, "batch": batch}
    lines = [update(c, f"{run_id}-1", [("c1", 2)]), update(c, f"{run_id}-2", [("c2", 2)]), "{not json",
             {"mid": f"{run_id}-bad", "edata": {"action": "batch-enrolment-update", "userId": user}}]
    totals, out = run_job(activity, tmp_path, "first", lines)
    failed_file = out / "local.activity.agg.failed.jsonl"
    stages = sorted(f["failInfo"]["stage"] for f in read_topic(out, "activity.agg.failed"))
    assert stages == ["parse", "relation-cache", "relation-cache", "validate"]

    # The course gets published: its relation cache appears.
    r = redis.Redis(port=stack["redis"], db=10)
    r.sadd(f"{course}:{course}:leafnodes", "c1", "c2")
    for leaf in ("c1", "c2"):
        r.sadd(f"{course}:{leaf}:ancestors", course)

    totals, replay = run_job(replay_failed, tmp_path, "replay", None, "--input", str(failed_file),
                             "--to_topic", "local.coursebatch.job.request", "--stages", "relation-cache",
                             extra_groups=(replay_failed.ReplayOptions,))
    events = read_topic(replay, "coursebatch.job.request")
    assert sorted(events, key=lambda e: e["mid"]) == lines[:2], "exactly the original events, decoration gone"
    assert totals["replayed-record-count"] == 2 and totals["left-out-record-count"] == 2

    totals, out = run_job(activity, tmp_path, "rerun", events)
    assert read_topic(out, "activity.agg.failed", missing_ok=True) == []
    row = cql.execute("SELECT status, progress FROM user_enrolments WHERE userid=%s AND courseid=%s AND batchid=%s",
                      (user, course, batch)).one()
    assert (row.status, row.progress) == (2, 2), "the replayed completions completed the course"


def test_a_batch_run_that_fails_too_much_exits_non_zero_with_a_summary(tmp_path, capsys, run_id):
    from pipelines.job import failure_check
    from tests.batch_runs import write_jsonl

    assert failure_check({"lern-beam:input-record-count": 10, "lern-beam:failed-record-count": 1}, 0.1) is None
    assert "2 of 10 input records failed" in failure_check(
        {"lern-beam:input-record-count": 10, "lern-beam:failed-record-count": 2}, 0.1)

    lines = ["{broken", "[]", {"mid": f"{run_id}-x", "edata": {"action": "batch-enrolment-update"}}]
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    rc = activity.main(["--input", str(path), "--output_dir", str(tmp_path / "out")])
    assert rc == 3
    err = capsys.readouterr().err
    assert "3 of 3 input records failed (100.0%), more than --max_failed_fraction=0.1" in err
    assert len(read_topic(tmp_path / "out", "activity.agg.failed")) == 3, "the outputs are written all the same"
    assert activity.main(["--input", str(path), "--output_dir", str(tmp_path / "out2"),
                          "--max_failed_fraction=1"]) == 0
