"""Streaming on the stack's real Flink session cluster, and crashes of its processes.

Each test submits a job exactly as README "Running a job on the cluster" shows (the job's console
script with ``--flink_master=localhost:8081``: a kilobyte jar through Flink's REST API, Python SDK
workers as PROCESS workers started by the TaskManager with Beam's boot program). The crash tests
feed ``pipelines.activity`` a course's consumption in three phases and kill processes with SIGKILL
in the middle of the second:

(a) the TaskManager (its JVM and its Python workers): Flink restores the job from its latest
    checkpoint on the restarted TaskManager;
(b) the submitting process and the JobManager (no HA: the job is gone): the stack restarts the
    JobManager and the same command resubmits the job, which resumes from the newest retained
    checkpoint (``--resume=auto``);
(c) poison records on the input topic (a lone surrogate, a 5,000-digit integer, NaN, invalid
    UTF-8): dead-lettered with a reason while the job keeps running;
(d) Redis (the dedup store and the relation cache) stopped for 15 s: the job waits it out.

Afterwards the tables must equal a batch recompute of the same events under fresh ids (DirectRunner,
``--input``): enrolment status, progress and content status, consumption status, progress and
counters (viewcount/completedcount, counted once per completion whatever is replayed), the course
aggregate; and every completion's cert-issue request must be on the topic with one id (a copy
re-emitted after a crash carries the same mid).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cassandra.cluster import Cluster

from pipelines import activity, job
from tests.e2e import cluster_helpers as fl
from tests.e2e.kafka_helpers import committed_offset, consume_all, create_topics, produce
from tests.progress_data import seed_course, update

LEARNERS = 45


@pytest.fixture(scope="module")
def cluster(stack):
    if not fl.cluster_up():
        pytest.fail("Flink session cluster not answering on localhost:8081: run `make up`", pytrace=False)
    return fl.MASTER


@pytest.fixture(scope="module")
def cql(stack):
    c = Cluster(["127.0.0.1"], port=stack["cassandra"])
    yield c.connect("sunbird_courses")
    c.shutdown()


# --------------------------------------------------------------------------------- scenario


def learners_of(c: dict, n: int) -> list[dict]:
    return [{**c, "user": f"{c['user']}{i}"} for i in range(n)]


def enrol(cql, c: dict, n: int) -> list[dict]:
    out = learners_of(c, n)
    for lc in out:
        cql.execute("INSERT INTO user_enrolments (userid, courseid, batchid, status, active) VALUES (%s, %s, %s, 1, "
                    "true)", (lc["user"], lc["course"], lc["batch"]))
    return out


def phases(learners: list[dict], prefix: str) -> list[list[dict]]:
    """Three phases of events; learner i completes the course unless i % 3 == 0.

    The optional content (i % 4 == 0) is completed in phase 1, which is processed and checkpointed
    before phase 2 is sent. After its completion an enrolment is frozen, as in the reference
    (``activity.filter.processed.enrolments``), so an optional completion reaching the job in a
    later batch than the completing one would leave its content status out, where a batch run,
    which sees both in one batch, keeps it: that depends on batching, not on the crash.
    """
    p1, p2, p3 = [], [], []
    for i, lc in enumerate(learners):
        p1.append(update(lc, f"{prefix}-{i}-a", [("c1", 1)] + ([("opt", 2)] if i % 4 == 0 else [])))
        p1.append(update(lc, f"{prefix}-{i}-b", [("c1", 2), ("c2", 1)]))
        p2.append(update(lc, f"{prefix}-{i}-c", [("c2", 2)]))
        p2.append(update(lc, f"{prefix}-{i}-d", [("opt", 1)]))
        if i % 3:
            p3.append(update(lc, f"{prefix}-{i}-e", [("c3", 2)]))
    return [p1, p2, p3]


def encode(events: list[dict]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]


def tables(cql, learners: list[dict]) -> dict[int, dict]:
    """Per learner index: what the job wrote, without the run's ids."""
    out = {}
    key = "WHERE userid=%s AND courseid=%s AND batchid=%s"
    for i, lc in enumerate(learners):
        ids = (lc["user"], lc["course"], lc["batch"])
        e = cql.execute(f"SELECT status, progress, contentstatus, completionpercentage FROM user_enrolments {key}",
                        ids).one()
        rows = list(cql.execute(
            f"SELECT contentid, status, progress, viewcount, completedcount FROM user_content_consumption {key}", ids))
        agg = cql.execute("SELECT aggregates FROM user_activity_agg WHERE activity_type='Course' AND activity_id=%s "
                          "AND user_id=%s AND context_id=%s", (lc["course"], lc["user"], f"cb:{lc['batch']}")).one()
        out[i] = {
            "enrolment": (e.status, e.progress, dict(e.contentstatus or {}), e.completionpercentage),
            "consumption": {r.contentid: (r.status, r.progress) for r in rows},
            "aggregates": dict(agg.aggregates or {}) if agg else {},
            "counters": {r.contentid: (r.viewcount, r.completedcount) for r in rows},
        }
    return out


def batch_recompute(stack, cql, run_id: str, tmp_path: Path) -> tuple[dict[int, dict], list[int]]:
    """The same events under fresh ids, through the batch job: the expected tables and completions."""
    rid = f"{run_id}b"
    c = seed_course(stack["redis"], cql, rid)
    learners = enrol(cql, c, LEARNERS)
    events = [e for phase in phases(learners, rid) for e in phase]
    src = tmp_path / "batch.jsonl"
    src.write_text("".join(json.dumps(e) + "\n" for e in events))
    out = tmp_path / "batch-out"
    job.run(activity.build, ["--input", str(src), "--output_dir", str(out)], activity.defaults)
    certs = [json.loads(x) for x in (out / "local.issue.certificate.request.jsonl").read_text().splitlines() if x]
    users = {lc["user"]: i for i, lc in enumerate(learners)}
    return tables(cql, learners), sorted(users[u] for cert in certs for u in cert["edata"]["userIds"])


def run_crash_scenario(stack, cql, run_id: str, tmp_path: Path, crash) -> dict:
    """Feeds the three phases to lern-activity on the cluster, calling ``crash(proc, jid, args, log)``
    in the middle of phase 2; returns what to compare."""
    c = seed_course(stack["redis"], cql, run_id)
    learners = enrol(cql, c, LEARNERS)
    p1, p2, p3 = phases(learners, run_id)
    total = len(p1) + len(p2) + len(p3)
    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "audit", "cert", "failed")}
    create_topics(*topics.values())
    args = [
        "--runner=FlinkRunner", f"--flink_master={fl.MASTER}", f"--kafka_input_topic={topics['in']}",
        f"--kafka_output_audit_topic={topics['audit']}", f"--kafka_output_certissue_topic={topics['cert']}",
        f"--kafka_output_failed_topic={topics['failed']}", f"--kafka_groupid={run_id}",
        "--kafka_auto_offset_reset=earliest", "--task_checkpointing_interval=1000",
        "--task_restart_strategy_delay=10000",
    ]
    log = fl.job_log(run_id)
    proc = fl.submit("lern-activity", args, log)
    try:
        produce(topics["in"], encode(p1))
        jid = fl.running_job(run_id)["jid"]
        deadline = time.monotonic() + 120
        while committed_offset(run_id, topics["in"]) < len(p1):
            assert time.monotonic() < deadline, f"phase 1 not committed: {log.read_text()[-3000:]}"
            time.sleep(0.5)
        produce(topics["in"], encode(p2))
        time.sleep(1.5)  # phase 2 in flight: read, partly processed, not all checkpointed
        proc = crash(proc, jid, args, log) or proc
        produce(topics["in"], encode(p3))
        deadline = time.monotonic() + 240
        while committed_offset(run_id, topics["in"]) < total:
            assert time.monotonic() < deadline, f"input not consumed after the crash: {log.read_text()[-3000:]}"
            time.sleep(1)
        completers = [i for i in range(LEARNERS) if i % 3]
        users = {lc["user"]: i for i, lc in enumerate(learners)}
        certs = [json.loads(v) for _, v in consume_all(topics["cert"], expected=len(completers) + 5, timeout=20)]
        got = tables(cql, learners)
    finally:
        fl.stop_run(run_id, proc)
    # Dedupe-aware: a completion replayed after a crash is re-emitted with the same mid (downstream
    # drops it by mid); two different mids for one learner would be a second certificate request.
    mids: dict[int, set[str]] = {}
    for cert in certs:
        for u in cert["edata"]["userIds"]:
            mids.setdefault(users[u], set()).add(cert["mid"])
    return {"tables": got, "cert_users": sorted(i for i, m in mids.items() for _ in m),
            "cert_events": len(certs), "completers": completers, "log": log}


def assert_same_as_batch(stack, cql, run_id: str, tmp_path: Path, result: dict) -> None:
    expected, expected_certs = batch_recompute(stack, cql, run_id, tmp_path)
    got = result["tables"]
    assert expected_certs == result["completers"], "the batch recompute itself completes the expected learners"
    assert result["cert_users"] == result["completers"], \
        f"one cert-issue event per completion, exactly once: got {result['cert_users']}"
    for part in ("enrolment", "consumption", "aggregates"):
        diff = {i: (got[i][part], expected[i][part]) for i in expected if got[i][part] != expected[i][part]}
        assert not diff, f"{part} differs from the batch recompute (streamed, batch): {diff}"
    counters = {i: (got[i]["counters"], expected[i]["counters"]) for i in expected
                if got[i]["counters"] != expected[i]["counters"]}
    assert not counters, f"consumption counters counted a replayed event twice (streamed, batch): {counters}"
    print(f"\n[crash test] cert-issue events on the topic: {result['cert_events']} for {len(result['completers'])} "
          f"completions (re-emissions with the same mid: {result['cert_events'] - len(result['completers'])})")


# ------------------------------------------------------------------------------------ tests


@pytest.mark.cluster
def test_bounded_smoke_job_on_the_cluster_with_process_workers(cluster, run_id, tmp_path):
    """The smallest cluster run: ``lern-smoke`` reads 5 records and finishes; its DoFns ran in
    PROCESS workers (the pipeline pickles by module name) and the jar shipped is the tiny one."""
    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "out", "failed")}
    create_topics(*topics.values())
    produce(topics["in"], [json.dumps({"mid": f"{run_id}-{i}"}).encode() for i in range(5)])
    log = fl.job_log(run_id)
    proc = fl.submit("lern-smoke", fl.smoke_args(topics, run_id, "--max_num_records=5"), log)
    assert proc.wait(240) == 0, log.read_text()[-3000:]
    out = consume_all(topics["out"], expected=5)
    assert sorted(json.loads(v)["mid"] for _, v in out) == [f"{run_id}-{i}" for i in range(5)]
    assert [j["state"] for j in fl.jobs_named(run_id)] == ["FINISHED"]


@pytest.mark.cluster
def test_activity_survives_a_taskmanager_kill(cluster, stack, cql, run_id, tmp_path):
    def crash(proc, jid, args, log):
        before = fl.completed_checkpoints(jid)
        assert before > 0, "a checkpoint completed before the crash"
        fl.kill9("flink-taskmanager")
        fl.stack("up", "flink-taskmanager")
        deadline = time.monotonic() + 120
        while True:
            cp = fl.rest(f"/jobs/{jid}/checkpoints")
            if (cp.get("latest") or {}).get("restored"):
                break
            assert time.monotonic() < deadline, f"job not restored from a checkpoint: {cp}"
            time.sleep(0.5)
        assert proc.poll() is None, "the submitter keeps following the same job"

    result = run_crash_scenario(stack, cql, run_id, tmp_path, crash)
    assert_same_as_batch(stack, cql, run_id, tmp_path, result)


@pytest.mark.cluster
def test_activity_survives_killing_the_submitter_and_the_jobmanager(cluster, stack, cql, run_id, tmp_path):
    def crash(proc, jid, args, log):
        import os
        import signal
        assert fl.completed_checkpoints(jid) > 0, "a checkpoint completed before the crash"
        os.killpg(proc.pid, signal.SIGKILL)
        fl.kill9("flink-jobmanager")
        fl.stack("up", "flink-jobmanager")
        deadline = time.monotonic() + 120
        while not fl.cluster_up():
            assert time.monotonic() < deadline, "the TaskManager did not re-register"
            time.sleep(0.5)
        # The same command again: it resumes from the newest retained checkpoint of the job.
        again = fl.submit("lern-activity", args, log)
        fl.running_job(run_id)
        assert "resuming from" in log.read_text() and "/chk-" in log.read_text(), log.read_text()[-3000:]
        return again

    result = run_crash_scenario(stack, cql, run_id, tmp_path, crash)
    assert_same_as_batch(stack, cql, run_id, tmp_path, result)


POISON = [b'{"mid":"poison-1","edata":{"userId":"x\\ud800"}}', b'{"mid":"poison-2","n":' + b"9" * 5000 + b"}",
          b'{"mid":"poison-3","score":NaN}', b'\xff\xfe{"mid":"poison-4"}', b'{"mid":"poison-5","x":1e999999}']


@pytest.mark.cluster
def test_poison_records_are_dead_lettered_while_the_job_keeps_running(cluster, stack, cql, run_id, tmp_path):
    failed_topic = f"e2e.{run_id}.failed"

    def crash(proc, jid, args, log):
        produce(f"e2e.{run_id}.in", POISON)
        failed = consume_all(failed_topic, expected=len(POISON), timeout=90)
        assert len(failed) == len(POISON), f"poison not dead-lettered: {failed} {log.read_text()[-3000:]}"
        reasons = [json.loads(v)["failInfo"]["error"] for _, v in failed]
        assert all(r.startswith(("malformed JSON", "not UTF-8")) for r in reasons), reasons
        assert fl.running_job(run_id)["jid"] == jid, "the same job keeps running"

    result = run_crash_scenario(stack, cql, run_id, tmp_path, crash)
    assert_same_as_batch(stack, cql, run_id, tmp_path, result)


@pytest.mark.cluster
def test_redis_stopped_for_15_seconds_is_waited_out(cluster, stack, cql, run_id, tmp_path):
    """SIGSTOP, not a kill: the server keeps its data (the relation cache is not persisted) and
    its clients see what an unreachable Redis looks like, timeouts."""
    import os
    import signal

    def crash(proc, jid, args, log):
        pid = fl.pid_of("redis")
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(15)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert fl.running_job(run_id)["jid"] == jid, "waited out, or restarted from its checkpoint"

    result = run_crash_scenario(stack, cql, run_id, tmp_path, crash)
    failed = consume_all(f"e2e.{run_id}.failed", expected=1, timeout=5)
    assert failed == [], f"good events dead-lettered because a store blinked: {failed[:2]}"
    assert_same_as_batch(stack, cql, run_id, tmp_path, result)


@pytest.mark.cluster
def test_stop_with_savepoint_resume_and_the_no_checkpoint_safety_net(cluster, run_id):
    """``python -m pipelines.runner stop`` takes a savepoint and the same command resumes from it;
    with every checkpoint and savepoint gone, the next run starts before the committed offsets."""
    import shutil
    import subprocess
    import sys

    from pipelines import runner

    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "out", "failed")}
    create_topics(*topics.values())
    args = fl.smoke_args(topics, run_id, "--task_checkpointing_interval=1000")
    log = fl.job_log(run_id)
    mids = [f"{run_id}-{i}" for i in range(10)]

    def send(lo: int, hi: int) -> None:
        produce(topics["in"], [json.dumps({"mid": m}).encode() for m in mids[lo:hi]])

    def out_mids(n: int) -> list[str]:
        return sorted(json.loads(v)["mid"] for _, v in consume_all(topics["out"], expected=n, timeout=90))

    send(0, 5)
    proc = fl.submit("lern-smoke", args, log)
    try:
        jid = fl.running_job(run_id)["jid"]
        assert out_mids(5) == sorted(mids[:5])
        fl.wait_checkpoint_after(jid, fl.completed_checkpoints(jid))
        stop = subprocess.run([sys.executable, "-m", "pipelines.runner", "stop", run_id], capture_output=True,
                              text=True, timeout=180)
        assert stop.returncode == 0 and "savepoint" in stop.stdout, stop.stdout + stop.stderr
        assert proc.wait(60) == 0, "the submitter ends with its job"

        send(5, 8)
        proc = fl.submit("lern-smoke", args, log)
        jid = fl.running_job(run_id)["jid"]
        assert "resuming from" in log.read_text() and "savepoint-" in log.read_text()
        assert out_mids(8) == sorted(mids[:8]), "resumed where the savepoint was: nothing lost, nothing twice"
        fl.wait_checkpoint_after(jid, fl.completed_checkpoints(jid))
        fl.cancel_all(run_id)
        proc.wait(60)

        # Disk lost: no checkpoint, no savepoint. The committed offsets (8) are rewound.
        shutil.rmtree(runner.CHECKPOINTS / run_id)
        shutil.rmtree(runner.SAVEPOINTS / run_id)
        send(8, 10)
        proc = fl.submit("lern-smoke", args, log)
        fl.running_job(run_id)
        got = out_mids(10)
        assert "rewinding" in log.read_text()
        assert sorted(set(got)) == sorted(mids), "everything out (events read again are dropped by their mid)"
    finally:
        fl.stop_run(run_id, proc)
