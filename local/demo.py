"""make demo: the learner journey so far, on sample data, against the real local stack.

1. relation-cache-updater: a published sample course (local/sample/relation-cache) -> Redis;
2. activity-aggregate-updater, batch: learners' consumption events -> progress, completion,
   certificate requests;
3. activity-aggregate-updater, streaming: one learner's last completions through Kafka and the
   embedded Flink -> that learner completes too;
4. assessment-aggregator, batch: the course quiz -> attempts and best scores;
5. collection-cert-pre-processor -> collection-certificate-generator, batch: the certificate
   requests of steps 2-4 against the batch's template (completed and quiz score >= 50 %) ->
   certificates issued through the Sunbird RC emulator, recorded on the enrolments;
6. everything replayed: nothing changes, no second certificate.

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
import requests  # noqa: E402
from cassandra.cluster import Cluster  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from load import sample_hierarchies  # noqa: E402

from pipelines import activity, assessment, cert_generate, cert_preprocess, job, relation_cache  # noqa: E402

BOOTSTRAP = "127.0.0.1:9092"
EMULATOR = "http://127.0.0.1:9000"
QUIZ_SCORES = {"asha": (2, 2), "ravi": (1, 2), "meera": (0, 2)}  # learner -> (score, max) on the quiz res_e
WORK = ROOT / ".stack" / "demo"
LEARNERS = {  # learner -> contents completed in the batch part (res_b is optional)
    "asha": ["res_a", "res_c", "res_d", "res_e"],
    "ravi": ["res_a", "res_c"],
    "meera": ["res_a", "res_b", "res_c", "res_d", "res_e"],
    "john": ["res_b"],
}


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 74 - len(text)), flush=True)


def cert_extra_groups(module) -> tuple:
    from pipelines.options.certificates import CertOptions

    return (CertOptions,)


def quiet_run(build, argv, defaults, extra_groups=()) -> dict[str, int]:
    """Runs a job; the demo prints its own summary instead of the full metric table."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        totals = job.run(build, argv, defaults, extra_groups)
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


def journey_table(cql, course: str, batch: str, users: dict[str, str], required: int, quiz: str) -> None:
    print(f"{'learner':<8} {'progress':>9}  {'status':<12} {'quiz':>5}  certificate")
    for name, user in users.items():
        row = cql.execute("SELECT status, progress, issued_certificates FROM user_enrolments WHERE userid=%s AND "
                          "courseid=%s AND batchid=%s", (user, course, batch)).one()
        agg = cql.execute("SELECT aggregates FROM user_activity_agg WHERE activity_type='Course' AND activity_id=%s "
                          "AND user_id=%s AND context_id=%s", (course, user, f"cb:{batch}")).one()
        aggs = dict(agg.aggregates or {}) if agg else {}
        score = aggs.get(f"score:{quiz}")
        pct = None if score is None else 100.0 * score / (aggs.get(f"max_score:{quiz}") or 1.0)
        status = {1: "in progress", 2: "COMPLETED"}.get(row.status, str(row.status))
        certs = row.issued_certificates or []
        if certs:
            cert = ", ".join(f"{c.get('name')} (id {c.get('identifier')})" for c in certs)
        elif row.status != 2:
            cert = "not issued: course not completed"
        elif pct is None:
            cert = "not issued: quiz not attempted"
        elif pct < 50:
            cert = f"not issued: quiz score {pct:.0f}% < 50%"
        else:
            cert = "not issued yet"
        quiz_text = "-" if pct is None else f"{pct:.0f}%"
        print(f"{name:<8} {row.progress or 0:>4} / {required:<2}  {status:<12} {quiz_text:>5}  {cert}")


def quiz_attempt(user: str, course: str, batch: str, quiz: str, score: int, maxscore: int, ts: int) -> dict:
    events = [{"eid": "ASSESS", "ets": ts - 1000 * (maxscore - q), "ver": "3.1", "mid": f"ASSESS:{user}:{q}",
               "actor": {"id": user, "type": "User"},
               "context": {"channel": "demo", "env": "contentplayer", "pdata": {"id": "demo", "pid": "player"},
                           "cdata": [{"id": course, "type": "course"}, {"id": batch, "type": "batch"}]},
               "object": {"id": quiz, "type": "Content"},
               "edata": {"item": {"id": f"q{q}", "maxscore": 1, "type": "mcq", "title": f"Question {q}",
                                  "params": [], "desc": ""},
                         "score": 1 if q < score else 0, "resvalues": [{"1": "Option A"}], "duration": 5}}
              for q in range(maxscore)]
    return {"assessmentTs": ts, "batchId": batch, "courseId": course, "userId": user,
            "attemptId": f"{user}-{quiz}-1", "contentId": quiz, "events": events}


def seed_certificates(cql, course: str, batch: str, quiz: str, users: dict[str, str], tag: str) -> None:
    """The batch's certificate template and what the Sunbird services know about course, quiz and learners."""
    template = {
        "identifier": f"{tag}_tmpl", "name": "Kitchen Garden Certificate", "url": "CLOUD_BASE_PATH/certs/garden.svg",
        "criteria": json.dumps({"enrollment": {"status": 2}, "assessment": {"score": {">=": 50}}}),
        "issuer": json.dumps({"name": "Demo Board of Learning", "url": "https://board.example"}),
        "signatoryList": json.dumps([{"name": "R. Rao", "id": "sig-1", "designation": "Director",
                                      "image": "https://board.example/sig.png"}]),
    }
    cql.execute("INSERT INTO course_batch (courseid, batchid, name, status, cert_templates) VALUES (%s, %s, %s, 1, %s)",
                (course, batch, "Demo batch", {template["identifier"]: template}))
    seed = {"contents": {course: {"name": "Kitchen Garden Basics", "contentType": "Course", "status": "Live",
                                  "objectType": "Collection"},
                         quiz: {"name": "Garden quiz", "contentType": "SelfAssess", "totalQuestions": 2}},
            "users": {user: {"firstName": name.title(), "lastName": "Demo", "rootOrgId": "org_demo",
                             "email": f"{name}@example.org"} for name, user in users.items()}}
    requests.post(f"{EMULATOR}/__emulator/seed", json=seed, timeout=10).raise_for_status()


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
        cert_requests = read_jsonl(cert_file)
        failed = read_jsonl(out / "batch/local.activity.agg.failed.jsonl")
        quiz = f"{tag}_do_rc_res_e"
        journey_table(cql, course, batch, users, required, quiz)
        print(f"certificate requests: {len(cert_requests)}; events: {t.get('total-events-count', 0)} read, "
              f"{t.get('failed-events-count', 0)} failed "
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
                    cert_requests.append(ev)
        consumer.close()
        print(f"Flink job done in {time.monotonic() - t0:.1f}s; certificate requests so far: {len(cert_requests)}")
        journey_table(cql, course, batch, users, required, quiz)

        banner("4. assessment-aggregator (batch): the course quiz")
        seed_certificates(cql, course, batch, quiz, users, tag)
        now = int(time.time() * 1000)
        attempts = [quiz_attempt(users[n], course, batch, quiz, sc, mx, now) for n, (sc, mx) in QUIZ_SCORES.items()]
        t = quiet_run(assessment.build, ["--input", str(jsonl(out / "assess.jsonl", attempts)),
                                         "--output_dir", str(out / "assess")], assessment.defaults,
                      (assessment.AssessmentOptions,))
        assess_certs = read_jsonl(out / "assess/local.issue.certificate.request.jsonl")
        cert_requests += assess_certs
        print(f"{len(attempts)} attempts stored; {len(assess_certs)} certificate requests")
        journey_table(cql, course, batch, users, required, quiz)

        banner("5. certificates: pre-processor -> generator (Sunbird RC emulator)")
        issue_file = jsonl(out / "issue-requests.jsonl", cert_requests)
        t = quiet_run(cert_preprocess.build, ["--input", str(issue_file), "--output_dir", str(out / "pre")],
                      cert_preprocess.defaults, cert_extra_groups(cert_preprocess))
        generate = out / "pre/local.generate.certificate.request.jsonl"
        print(f"{len(cert_requests)} requests -> {len(read_jsonl(generate))} generate-certificate events")
        t = quiet_run(cert_generate.build, ["--input", str(generate), "--output_dir", str(out / "gen")],
                      cert_generate.defaults, cert_extra_groups(cert_generate))
        created = t.get("rc-create-count", 0)
        print(f"certificates created in RC: {created} (the other {len(read_jsonl(generate)) - created} "
              "generate events were for certificates already issued)")
        journey_table(cql, course, batch, users, required, quiz)

        banner("6. replay everything: idempotent")
        t1 = quiet_run(activity.build, ["--input", str(batch_file), "--output_dir", str(out / "replay")],
                       activity.defaults)
        t2 = quiet_run(cert_generate.build, ["--input", str(generate), "--output_dir", str(out / "gen-replay")],
                       cert_generate.defaults, cert_extra_groups(cert_generate))
        again = read_jsonl(out / "replay/local.issue.certificate.request.jsonl")
        print(f"activity: {t1.get('duplicate-event-count', 0)} completions recognised as duplicates, "
              f"{len(again)} new certificate requests; generator: {t2.get('rc-create-count', 0)} new certificates")
        banner("done")
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
