"""Benchmark of the course progress path (activity-aggregate-updater) against the local stack.

    .venv/bin/python bench/progress.py --events 10000 [--leaves 40 --units 5 --learners 2000]
    .venv/bin/python bench/progress.py --events 10000 --flink

Generates a synthetic course in the relation cache (Redis db 10) and its enrolments in
Cassandra, writes ``batch-enrolment-update`` events (each completing one to three contents of
a random learner), runs the activity job over them (batch on DirectRunner, or ``--flink``:
streaming on the embedded Flink, reading a fresh Kafka topic, bounded by ``--max_num_records``)
and prints events/s, completions/s and peak memory. Every run uses fresh ids, so runs never
see each other's dedup keys or rows. Needs ``make up``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from cassandra.cluster import Cluster  # noqa: E402
from cassandra.concurrent import execute_concurrent_with_args  # noqa: E402

from pipelines import activity, job  # noqa: E402


def synthetic_course(run: str, leaves: int, units: int) -> tuple[str, dict[str, list[str]]]:
    course = f"bench-{run}-C"
    contents = [f"bench-{run}-c{i}" for i in range(leaves)]
    per_unit = max(1, leaves // units)
    tree = {f"bench-{run}-U{u}": contents[u * per_unit:(u + 1) * per_unit] for u in range(units)}
    leftover = contents[units * per_unit:]
    if leftover:
        tree[f"bench-{run}-U{units - 1}"] += leftover
    return course, tree


def seed(course: str, tree: dict[str, list[str]], learners: list[str], batch: str) -> None:
    r = redis.Redis(port=6379, db=10)
    pipe = r.pipeline(transaction=False)
    all_leaves = [c for cs in tree.values() for c in cs]
    pipe.sadd(f"{course}:{course}:leafnodes", *all_leaves)
    for unit, cs in tree.items():
        pipe.sadd(f"{course}:{unit}:leafnodes", *cs)
        for c in cs:
            pipe.sadd(f"{course}:{c}:ancestors", course, unit)
    pipe.execute()
    cluster = Cluster(["127.0.0.1"])
    try:
        session = cluster.connect("sunbird_courses")
        stmt = session.prepare("INSERT INTO user_enrolments (userid, courseid, batchid, status, active) "
                               "VALUES (?, ?, ?, 1, true)")
        execute_concurrent_with_args(session, stmt, [(u, course, batch) for u in learners], concurrency=100)
    finally:
        cluster.shutdown()


def events(course: str, tree: dict[str, list[str]], learners: list[str], batch: str, n: int, rnd: random.Random):
    leaves = [c for cs in tree.values() for c in cs]
    for i in range(n):
        user = rnd.choice(learners)
        contents = [{"contentId": c, "status": 2} for c in rnd.sample(leaves, rnd.randint(1, 3))]
        yield {"eid": "BE_JOB_REQUEST", "ets": 0, "mid": f"LMS.bench.{i}",
               "actor": {"type": "System", "id": "Course Batch Updater"},
               "edata": {"action": "batch-enrolment-update", "iteration": 1, "userId": user, "courseId": course,
                         "batchId": batch, "contents": contents}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--leaves", type=int, default=40)
    ap.add_argument("--units", type=int, default=5)
    ap.add_argument("--learners", type=int, default=2000)
    ap.add_argument("--batch_size", type=int, default=1000, help="threshold.batch.read.size")
    ap.add_argument("--shards", type=int, default=8, help="task.window.shards")
    ap.add_argument("--flink", action="store_true", help="streaming on FlinkRunner over Kafka instead of batch")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    run = uuid.uuid4().hex[:8]
    rnd = random.Random(a.seed)
    course, tree = synthetic_course(run, a.leaves, a.units)
    learners = [f"bench-{run}-L{i}" for i in range(a.learners)]
    batch = f"bench-{run}-B"
    t0 = time.monotonic()
    seed(course, tree, learners, batch)
    evs = list(events(course, tree, learners, batch, a.events, rnd))
    completions = sum(len(e["edata"]["contents"]) for e in evs)
    print(f"seeded {a.learners} enrolments and a {a.leaves}-leaf/{a.units}-unit course in "
          f"{time.monotonic() - t0:.1f}s; {a.events} events, {completions} completions")

    common = [f"--threshold_batch_read_size={a.batch_size}", f"--task_window_shards={a.shards}"]
    with tempfile.TemporaryDirectory() as tmp:
        if a.flink:
            from tests.e2e.kafka_helpers import create_topics, produce
            topic = f"bench.{run}.in"
            create_topics(topic, f"bench.{run}.out")
            produce(topic, [json.dumps(e).encode() for e in evs])
            argv = ["--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=2",
                    f"--kafka_input_topic={topic}", f"--kafka_output_audit_topic=bench.{run}.out",
                    f"--kafka_output_certissue_topic=bench.{run}.out", f"--kafka_output_failed_topic=bench.{run}.out",
                    f"--kafka_groupid=bench-{run}", "--kafka_auto_offset_reset=earliest",
                    f"--max_num_records={a.events}", *common]
        else:
            path = Path(tmp) / "events.jsonl"
            path.write_text("".join(json.dumps(e) + "\n" for e in evs))
            argv = ["--input", str(path), "--output_dir", str(Path(tmp) / "out"), *common]
        t0 = time.monotonic()
        totals = job.run(activity.build, argv, activity.defaults)
        secs = time.monotonic() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ns = activity.JOB_NAME
    mode = "flink-streaming" if a.flink else "direct-batch"
    print(json.dumps({
        "mode": mode, "events": a.events, "completions": completions, "seconds": round(secs, 1),
        "events_per_sec": round(a.events / secs), "completions_per_sec": round(completions / secs),
        "peak_rss_mib_submitting_process": round(peak_mib),
        "processed_enrolment_batches": totals.get(f"{ns}:processed-enrolment-count"),
        "enrolments_completed": totals.get(f"{ns}:enrolment-complete-count", 0),
        "db_updates": totals.get(f"{ns}:db-update-count"),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
