"""Recompute on republish: a course with N enrolments is republished with a changed tree (issue 13).

    .venv/bin/python bench/republish.py --size 100000
    .venv/bin/python bench/republish.py --size 20000 --runner flink

A course of 20 leaves in 4 units plus one optional content, published once (caches only,
``--recompute_enabled=false``); ``--size`` learners enrolled in it (one batch), each with 1-5
completed leaves and the optional content in ``user_content_consumption`` and an enrolment row
with the progress of the first tree. Then the course is republished with the optional content
made required, which changes every in-progress learner's progress by one, and the two steps an
operator would otherwise run by hand are timed, each as its own process under the sampler of
bench/backfill.py (peak summed RSS of the process tree, CPU seconds):

1. ``pipelines.relation_cache --input publish.jsonl``: the rewrite detects the change and sends a
   ``user-enrolment-sync`` request per enrolment (here to a JSONL file);
2. ``pipelines.enrolment_sync --input requests.jsonl``: every enrolment recomputed.

Afterwards every enrolment row is read back and checked against the progress the new tree gives
(``recomputed_ok`` must equal ``size``). Runs in its own keyspace, ``bench_republish`` (dropped
and recreated from local/schema.cql), with a course id of its own. Prints one JSON line. Needs
``make up``; only one benchmark should use the stack at a time.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from backfill import insert, run_job, schema_statements  # noqa: E402
from cassandra.cluster import Cluster  # noqa: E402

KEYSPACE = "bench_republish"
TABLES = ("user_content_consumption", "user_activity_agg", "user_enrolments", "consumption_events_applied",
          "course_batch")
LEAVES, UNITS = 20, 4
COLLECTION = "application/vnd.ekstep.content-collection"


def runner_args(a) -> list[str]:
    """Runner flags of the enrolment_sync step."""
    if a.runner == "flink":
        return ["--runner=FlinkRunner", "--flink_master=[local]", f"--parallelism={a.parallelism}"]
    if a.runner == "direct-mp":
        return ["--direct_running_mode=multi_processing", f"--direct_num_workers={a.workers}"]
    return []


def hierarchy(course: str, opt_required: bool) -> dict:
    """The course tree: 4 units of 5 leaves; the last unit also holds ``<course>-opt``, optional in
    the first version and required in the republished one."""
    leaves = [f"{course}-c{j:02d}" for j in range(LEAVES)]
    per = LEAVES // UNITS
    units = []
    for u in range(UNITS):
        kids = [{"identifier": c, "mimeType": "video/mp4"} for c in leaves[u * per:(u + 1) * per]]
        if u == UNITS - 1:
            opt = {"identifier": f"{course}-opt", "mimeType": "video/mp4"}
            if not opt_required:
                opt["relationalMetadata"] = {"optional": True}
            kids.append(opt)
        units.append({"identifier": f"{course}-U{u}", "mimeType": COLLECTION, "visibility": "Parent",
                      "children": kids})
    return {"identifier": course, "mimeType": COLLECTION, "contentType": "Course", "children": units}


def publish_event(course: str, mid: str) -> str:
    return json.dumps({"eid": "BE_JOB_REQUEST", "mid": mid, "edata": {
        "action": "post-publish-process", "iteration": 1, "identifier": course, "mimeType": COLLECTION,
        "contentType": "Course"}}) + "\n"


def seed(session, course: str, batch: str, n: int, rnd: random.Random) -> dict[str, int]:
    """``n`` learners of the course; returns each learner's progress under the republished tree."""
    leaves = [f"{course}-c{j:02d}" for j in range(LEAVES)]
    session.execute(f"INSERT INTO {KEYSPACE}.course_batch (courseid, batchid, status) VALUES (%s, %s, 1)",
                    (course, batch))
    done = {f"{course}-L{i}": rnd.sample(leaves, rnd.randint(1, 5)) for i in range(n)}
    insert(session, f"INSERT INTO {KEYSPACE}.user_enrolments (userid, courseid, batchid, status, progress, "
                    "contentstatus, active) VALUES (?, ?, ?, 1, ?, ?, true)",
           ((u, course, batch, len(cs), {c: 2 for c in [*cs, f"{course}-opt"]}) for u, cs in done.items()))
    insert(session, f"INSERT INTO {KEYSPACE}.user_content_consumption (userid, courseid, batchid, contentid, "
                    "status, viewcount, completedcount) VALUES (?, ?, ?, ?, 2, 1, 1)",
           ((u, course, batch, c) for u, cs in done.items() for c in [*cs, f"{course}-opt"]))
    return {u: len(cs) + 1 for u, cs in done.items()}


def check(session, course: str, expected: dict[str, int]) -> int:
    """How many enrolments of the course have the progress of the republished tree."""
    ok = 0
    rows = session.execute(f"SELECT userid, progress FROM {KEYSPACE}.user_enrolments WHERE courseid = %s "
                           "ALLOW FILTERING", (course,))
    for r in rows:
        ok += int(expected.get(r.userid) == r.progress)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=20000, help="enrolments of the course")
    ap.add_argument("--runner", choices=("direct", "direct-mp", "flink"), default="direct",
                    help="runner of the enrolment_sync step (relation_cache always runs on DirectRunner)")
    ap.add_argument("--workers", type=int, default=2, help="--direct_num_workers (direct-mp)")
    ap.add_argument("--parallelism", type=int, default=2, help="Flink parallelism (flink)")
    ap.add_argument("--shards", type=int, default=8, help="task.window.shards")
    ap.add_argument("--batch_size", type=int, default=1000, help="threshold.batch.read.size")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None, help="also append the result line to this file")
    a = ap.parse_args()

    run = uuid.uuid4().hex[:8]
    course, batch = f"do_rp_{run}", f"rp-{run}-B"
    work = Path(tempfile.mkdtemp(prefix=f"republish-{run}-"))
    cluster = Cluster(["127.0.0.1"])
    session = cluster.connect()
    t0 = time.monotonic()
    session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
    for stmt in schema_statements(KEYSPACE, TABLES):
        session.execute(stmt, timeout=120)
    expected = seed(session, course, batch, a.size, random.Random(a.seed))
    put = session.prepare("INSERT INTO dev_hierarchy_store.content_hierarchy (identifier, hierarchy) VALUES (?, ?)")
    session.execute(put, (course, json.dumps(hierarchy(course, opt_required=False))))
    (work / "publish.jsonl").write_text(publish_event(course, f"{run}-v1"))
    common = [f"--recompute_cassandra_keyspace={KEYSPACE}"]
    rc, *_ = run_job("relation_cache", ["--input", str(work / "publish.jsonl"), f"--output_dir={work / 'v1'}",
                                        "--recompute_enabled=false", *common], work / "v1.log")
    assert rc == 0, f"first publish failed: see {work / 'v1.log'}"
    seed_s = time.monotonic() - t0
    print(f"seeded {a.size} enrolments in {seed_s:.0f}s; republishing {course}", file=sys.stderr, flush=True)

    session.execute(put, (course, json.dumps(hierarchy(course, opt_required=True))))
    (work / "republish.jsonl").write_text(publish_event(course, f"{run}-v2"))
    rc1, s1, rss1, cpu1, c1 = run_job("relation_cache", [
        "--input", str(work / "republish.jsonl"), f"--output_dir={work / 'v2'}", *common], work / "v2.log")
    requests = work / "v2" / "local.batch.enrolment.sync.request.jsonl"
    rc2, s2, rss2, cpu2, c2 = run_job("enrolment_sync", [
        "--input", str(requests), f"--output_dir={work / 'sync'}", f"--lms_cassandra_keyspace={KEYSPACE}",
        f"--threshold_batch_read_size={a.batch_size}", f"--task_window_shards={a.shards}", *runner_args(a)],
        work / "sync.log")
    ok = check(session, course, expected)
    cluster.shutdown()
    res = {"size": a.size, "runner": a.runner, "rc": [rc1, rc2], "recomputed_ok": ok,
           "seconds_total": round(s1 + s2, 1), "per_sec": round(a.size / (s1 + s2)),
           "relation_cache": {"seconds": round(s1, 1), "peak_rss_mib": round(rss1 / 2**20), "cpu_s": round(cpu1, 1),
                              "requests": c1.get("recompute-request-count", 0)},
           "enrolment_sync": {"seconds": round(s2, 1), "peak_rss_mib": round(rss2 / 2**20), "cpu_s": round(cpu2, 1),
                              "processed": c2.get("processed-enrolment-count", 0)},
           "seed_s": round(seed_s), "work": str(work)}
    line = json.dumps(res)
    print(line, flush=True)
    if a.out:
        with open(a.out, "a") as f:
            f.write(line + "\n")
    return 0 if ok == a.size and rc1 == rc2 == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
