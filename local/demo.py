"""make demo: the learner journey so far, on sample data, against the real local stack.

1. relation-cache-updater: a published sample course (local/sample/relation-cache) -> Redis;
2. activity-aggregate-updater, batch: learners' consumption events -> progress, completion,
   certificate requests;
3. activity-aggregate-updater, streaming: one learner's last completions through Kafka and the
   embedded Flink -> that learner completes too;
4. the batch file replayed: nothing changes, no second certificate request.

Ids get a fresh prefix every run, so the demo can be repeated on the same stack.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "local" / "sample" / "relation-cache"))

import redis  # noqa: E402
from cassandra.cluster import Cluster  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from load import sample_hierarchies  # noqa: E402

from pipelines import activity, job, relation_cache  # noqa: E402

BOOTSTRAP = "127.0.0.1:9092"
WORK = ROOT / ".stack" / "demo"
LEARNERS = {  # learner -> contents completed in the batch part (res_b is optional)
    "asha": ["res_a", "res_c", "res_d", "res_e"],
    "ravi": ["res_a", "res_c"],
    "meera": ["res_a", "res_b", "res_c", "res_d", "res_e"],
    "john": ["res_b"],
}


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 74 - len(text)), flush=True)


def quiet_run(build, argv, defaults) -> dict[str, int]:
    """Runs a job; the demo prints its own summary instead of the full metric table."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        totals = job.run(build, argv, defaults)
    return {k.split(":", 1)[1]: v for k, v in totals.items()}


def jsonl(path: Path, events: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def update(user: str, course: str, batch: str, contents: list[str], mid: str) -> dict:
    return {"eid": "BE_JOB_REQUEST", "mid": mid, "actor": {"id": "Course Batch Updater", "type": "System"},
            "edata": {"action": "batch-enrolment-update", "iteration": 1, "userId": user, "courseId": course,
                      "batchId": batch, "contents": [{"contentId": c, "status": 2} for c in contents]}}


def progress_table(cql, course: str, batch: str, users: dict[str, str], required: int, certs: dict[str, str]):
    print(f"{'learner':<8} {'progress':>9}  {'status':<12} certificate request")
    for name, user in users.items():
        row = cql.execute("SELECT status, progress FROM user_enrolments WHERE userid=%s AND courseid=%s AND "
                          "batchid=%s", (user, course, batch)).one()
        status = {1: "in progress", 2: "COMPLETED"}.get(row.status, str(row.status))
        print(f"{name:<8} {row.progress or 0:>4} / {required:<2}  {status:<12} {certs.get(user, '-')}")


def main() -> int:
    tag = f"demo{time.strftime('%H%M%S')}"
    ids = sample_hierarchies(tag)
    course = next(i for i in ids if i.endswith("do_rc_course_1"))
    batch = f"{tag}_batch_1"
    users = {name: f"{tag}_{name}" for name in LEARNERS}
    out = WORK / tag
    cluster = Cluster(["127.0.0.1"])
    cql = cluster.connect("sunbird_courses")
    try:
        banner("1. relation-cache-updater: publish the sample course")
        ins = cql.prepare("INSERT INTO dev_hierarchy_store.content_hierarchy (identifier, hierarchy) VALUES (?, ?)")
        for ident, text in ids.items():
            cql.execute(ins, (ident, text))
        publish = {"eid": "BE_JOB_REQUEST", "mid": f"LP.{tag}.publish",
                   "edata": {"action": "post-publish-process", "iteration": 1, "identifier": course,
                             "mimeType": "application/vnd.ekstep.content-collection", "contentType": "Course"}}
        t = quiet_run(relation_cache.build, ["--input", str(jsonl(out / "publish.jsonl", [publish])),
                                             "--output_dir", str(out / "relation-cache")], relation_cache.defaults)
        r = redis.Redis(port=6379, db=10)
        leaves = {m.decode() for m in r.smembers(f"{course}:{course}:leafnodes")}
        optional = {m.decode() for m in r.smembers(f"{course}:{course}:optionalnodes")}
        required = len(leaves - optional)
        print(f"course {course}: {t.get('cache-write-count', 0)} cache keys written; "
              f"{len(leaves)} leaf contents, {len(leaves & optional)} optional -> {required} required")

        banner("2. activity-aggregate-updater (batch): consumption of four learners")
        enrol = cql.prepare("INSERT INTO user_enrolments (userid, courseid, batchid, status, active) "
                            "VALUES (?, ?, ?, 1, true)")
        for user in users.values():
            cql.execute(enrol, (user, course, batch))
        events = [update(users[n], course, batch, [f"{tag}_do_rc_{c}" for c in cs], f"LP.{tag}.{n}")
                  for n, cs in LEARNERS.items()]
        events.append({"mid": f"LP.{tag}.bad", "edata": {"action": "batch-enrolment-update", "userId": "x"}})
        batch_file = jsonl(out / "consumption.jsonl", events)
        t = quiet_run(activity.build, ["--input", str(batch_file), "--output_dir", str(out / "batch")],
                      activity.defaults)
        cert_file = out / "batch/local.issue.certificate.request.jsonl"
        certs = {c["edata"]["userIds"][0]: c["mid"] for c in read_jsonl(cert_file)}
        failed = read_jsonl(out / "batch/local.activity.agg.failed.jsonl")
        progress_table(cql, course, batch, users, required, certs)
        print(f"events: {t.get('total-events-count', 0)} read, {t.get('failed-events-count', 0)} failed "
              f"({'; '.join(f['failInfo']['error'] for f in failed)}); "
              f"{len(read_jsonl(out / 'batch/local.telemetry.raw.jsonl'))} audit events; files in {out / 'batch'}")

        banner("3. activity-aggregate-updater (streaming, Kafka -> Flink): ravi finishes")
        topics = {k: f"local.demo.{tag}.{k}" for k in ("in", "out")}
        producer = Producer({"bootstrap.servers": BOOTSTRAP})
        producer.produce(topics["in"], json.dumps(update(users["ravi"], course, batch,
                                                         [f"{tag}_do_rc_res_d", f"{tag}_do_rc_res_e"],
                                                         f"LP.{tag}.ravi2")).encode())
        producer.flush(30)
        t0 = time.monotonic()
        quiet_run(activity.build, ["--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1",
                                   f"--kafka_input_topic={topics['in']}", f"--kafka_output_audit_topic={topics['out']}",
                                   f"--kafka_output_certissue_topic={topics['out']}",
                                   f"--kafka_output_failed_topic={topics['out']}", f"--kafka_groupid={tag}",
                                   "--kafka_auto_offset_reset=earliest", "--max_num_records=1"], activity.defaults)
        consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"{tag}-{uuid.uuid4().hex}",
                             "auto.offset.reset": "earliest"})
        consumer.subscribe([topics["out"]])
        end = time.monotonic() + 5
        while time.monotonic() < end:
            m = consumer.poll(0.5)
            if m is not None and not m.error():
                ev = json.loads(m.value())
                if ev.get("edata", {}).get("action") == "issue-certificate":
                    certs[ev["edata"]["userIds"][0]] = ev["mid"]
        consumer.close()
        print(f"Flink job done in {time.monotonic() - t0:.1f}s")
        progress_table(cql, course, batch, users, required, certs)

        banner("4. replay the batch file: idempotent")
        t = quiet_run(activity.build, ["--input", str(batch_file), "--output_dir", str(out / "replay")],
                      activity.defaults)
        again = read_jsonl(out / "replay/local.issue.certificate.request.jsonl")
        print(f"{t.get('duplicate-event-count', 0)} completions recognised as duplicates, "
              f"{len(again)} new certificate requests")
        banner("done")
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
