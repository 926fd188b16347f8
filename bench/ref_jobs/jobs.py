"""The two benchmarked jobs: for each, the generated events, the seeding, the one reference HOCON
conf file both systems read, the output count to wait for, and the correctness check.

Everything a run touches carries ids prefixed ``perf_<tag>_`` (fresh per run), so runs never share
rows, cache keys, RC records or dedup state with each other or with other users of the stack.
"""

from __future__ import annotations

import json
import random
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime

import redis
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

KS = "sunbird_courses"
EMULATOR = "http://127.0.0.1:9000"  # the stack's; compare.py --emulator private* points it at its own
T0 = 1_700_000_000_000  # event times (ms): longs, as the reference's Event readers need

# Keys every reference job's BaseJobConfig reads; the job-specific blocks are appended.
BASE_CONF = """
kafka {{
  broker-servers = "127.0.0.1:9092"
  zookeeper = "127.0.0.1:2181"
  groupId = "{group}"
  auto.offset.reset = "earliest"
{kafka}
}}
job {{ env = "local", enable.distributed.checkpointing = false }}
task {{
  checkpointing.compressed = true
  checkpointing.pause.between.seconds = 30000
  checkpointing.interval = 60000
  parallelism = 1
  consumer.parallelism = 1
  restart-strategy.attempts = 0
  restart-strategy.delay = 1000
{task}
}}
redis {{
  host = "127.0.0.1"
  port = 6379
  connection {{
    max = 2, idle.min = 1, idle.max = 2
    minEvictableIdleTimeSeconds = 120, timeBetweenEvictionRunsSeconds = 300
  }}
  database {{ relationCache.id = 10, contentCache.id = 5 }}
}}
redis-meta {{ host = "127.0.0.1", port = 6379 }}
lms-cassandra {{
  host = "127.0.0.1"
  port = 9042
  isMultiDCEnabled = false
  keyspace = "{ks}"
{cassandra}
}}
{rest}
"""


def _http(method: str, path: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(EMULATOR + path, method=method, data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@dataclass
class Dataset:
    """Events in production order; ``warmup`` goes first and is not measured."""
    tag: str
    course: str
    batch: str
    events: list[dict]
    warmup: list[dict]
    learners: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- assessment
class Assessment:
    """assessment-aggregator: one batch-assess event per attempt of ``questions`` questions (one
    in five re-answers its first question later, so the latest-answer-per-question rule has
    work), by ``learners`` learners over ``contents`` assessments of one course; the question-count
    check is on (``assessment.skip.missingRecords``) with every content's ``totalQuestions`` in the
    content cache. Each processed attempt gives one issue-certificate request."""

    name = "assessment"
    ref_main = "org.sunbird.job.assessment.task.AssessmentAggregatorStreamTask"
    ref_job = "lms-jobs/assessment-aggregator"
    beam_module = "pipelines.assessment"
    topics = ("in", "cert", "failed")
    out_topic = "cert"

    def __init__(self, events: int, learners: int = 0, contents: int = 10, questions: int = 10, warmup: int = 100):
        self.n, self.contents, self.questions, self.n_warm = events, contents, questions, warmup
        self.n_learners = learners or max(1, events // 5)

    def conf(self, t: dict[str, str], group: str) -> str:
        return BASE_CONF.format(
            group=group, ks=KS,
            kafka=f'  input.topic = "{t["in"]}"\n  failed.topic = "{t["failed"]}"\n'
                  f'  output.certissue.topic = "{t["cert"]}"',
            task="  downstream.parallelism = 1\n  assessaggregator.parallelism = 1\n  scoreaggregator.parallelism = 1",
            cassandra='  table = "assessment_aggregator"\n  questionudttype = "question"\n'
                      '  enrolmentstable = "user_enrolments"\n  activitytable = "user_activity_agg"',
            rest='assessment.skip.missingRecords = true\n'
                 f'content.read.api = "{EMULATOR}/api/content/v1/read/"\n'
                 'user.activity.agg.type = "attempt_metrics"\n')

    def _question(self, rnd: random.Random, qid: str, ets: int) -> dict:
        score = rnd.choice((0, 0.5, 1))
        return {"eid": "ASSESS", "ets": ets, "ver": "3.1", "mid": f"ASSESS:{rnd.getrandbits(64):x}",
                "actor": {"id": "perf", "type": "User"}, "object": {"id": "perf", "type": "Content", "ver": "1"},
                "edata": {"item": {"id": qid, "maxscore": 1, "type": "mcq", "exlength": 0, "uri": "", "mmc": [],
                                   "mc": [], "title": f"Question {qid}?", "desc": "",
                                   "params": [{"1": '{"text":"A"}'}, {"2": '{"text":"B"}'},
                                              {"answer": '{"correct":["1"]}'}]},
                          "index": 1, "pass": "Yes" if score == 1 else "No", "score": score,
                          "resvalues": [{"1": '{"text":"A"}'}], "duration": rnd.randint(1, 60)}}

    def _attempt(self, rnd: random.Random, run: str, i: int, user: str, content: str, ds: Dataset) -> dict:
        ts = T0 + i * 1000
        qs = [self._question(rnd, f"{run}_q{j}", ts - 1000 + j) for j in range(self.questions)]
        if rnd.random() < 0.2:
            qs.append(self._question(rnd, f"{run}_q0", ts - 1))
        return {"assessmentTs": ts, "batchId": ds.batch, "courseId": ds.course, "userId": user,
                "attemptId": f"{run}_a{i}", "contentId": content, "events": qs}

    def dataset(self, tag: str, seed: int = 7) -> Dataset:
        rnd, run = random.Random(seed), f"perf_{tag}"
        ds = Dataset(tag, f"{run}_C", f"{run}_B", [], [])
        self.content_ids = [f"{run}_Q{i}" for i in range(self.contents)]
        ds.learners = [f"{run}_L{i}" for i in range(self.n_learners)]
        ds.warmup = [self._attempt(rnd, run, 10_000_000 + j, f"{run}_W{j}", rnd.choice(self.content_ids), ds)
                     for j in range(self.n_warm)]
        ds.events = [self._attempt(rnd, run, i, rnd.choice(ds.learners), rnd.choice(self.content_ids), ds)
                     for i in range(self.n)]
        return ds

    def seed(self, ds: Dataset) -> None:
        """Relation cache (the contents are the course's leaves) and content cache (``totalQuestions``)."""
        pipe = redis.Redis(host="127.0.0.1", port=6379, db=10).pipeline(transaction=False)
        pipe.sadd(f"{ds.course}:{ds.course}:leafnodes", *self.content_ids)
        pipe.execute()
        pipe = redis.Redis(host="127.0.0.1", port=6379, db=5).pipeline(transaction=False)
        for cid in self.content_ids:
            pipe.set(cid, json.dumps({"identifier": cid, "totalQuestions": self.questions}))
        pipe.execute()

    def expected_out(self, events: list[dict]) -> int:
        return len(events)

    @staticmethod
    def _totals(attempt: dict) -> tuple[float, float, int]:
        """The latest answer per question (by ``ets``), summed: (total_score, total_max_score, questions)."""
        latest: dict[str, dict] = {}
        for q in sorted(attempt["events"], key=lambda e: e["ets"]):
            latest[q["edata"]["item"]["id"]] = q
        return (sum(q["edata"]["score"] for q in latest.values()),
                float(sum(q["edata"]["item"]["maxscore"] for q in latest.values())), len(latest))

    def check(self, ds: Dataset, outputs: list[dict]) -> dict:
        """Every attempt's row (total score, max score, question count), every learner's course
        row in user_activity_agg (best score and attempt count per content), and each learner's last
        issue-certificate request: its ``attemptId`` is the latest attempt when the learner has
        scores of exactly one content, else "" (reference ``UserScoreAggregateFunction``). Earlier
        requests are not compared: which attempts they see depends on batching."""
        want_rows: dict[str, dict[str, tuple]] = {}
        for a in ds.warmup + ds.events:
            want_rows.setdefault(a["userId"], {})[a["attemptId"]] = (a["contentId"], *self._totals(a))
        cluster = Cluster(["127.0.0.1"])
        try:
            s = cluster.connect(KS)
            q_rows = s.prepare("SELECT attempt_id, content_id, total_score, total_max_score, question FROM "
                               "assessment_aggregator WHERE user_id = ? AND course_id = ? AND batch_id = ?")
            q_agg = s.prepare("SELECT aggregates FROM user_activity_agg WHERE activity_type = 'Course' AND "
                              "activity_id = ? AND user_id = ? AND context_id = ?")
            users = list(want_rows)
            rows = execute_concurrent_with_args(s, q_rows, [(u, ds.course, ds.batch) for u in users], concurrency=64)
            aggs = execute_concurrent_with_args(s, q_agg, [(ds.course, u, f"cb:{ds.batch}") for u in users],
                                                concurrency=64)
            bad = {"attempt_rows": 0, "attempt_values": 0, "best_score": 0, "attempts_count": 0, "last_request": 0}
            last = {e["edata"]["userIds"][0]: e for e in outputs}
            examples: list = []
            for u, r, g in zip(users, rows, aggs, strict=True):
                got = {x.attempt_id: (x.content_id, x.total_score, x.total_max_score, len(x.question or []))
                       for x in r.result_or_exc}
                want = want_rows[u]
                errs = []
                if set(got) != set(want):
                    bad["attempt_rows"] += 1
                    errs.append(("rows", len(got), len(want)))
                for aid in set(got) & set(want):
                    if got[aid][0] != want[aid][0] or abs(got[aid][1] - want[aid][1]) > 1e-9 or \
                            got[aid][2] != want[aid][2] or got[aid][3] != want[aid][3]:
                        bad["attempt_values"] += 1
                        errs.append(("attempt", aid, got[aid], want[aid]))
                agg_rows = list(g.result_or_exc)
                agg = (agg_rows[0].aggregates or {}) if agg_rows else {}
                per_content: dict[str, list[float]] = {}
                for cid, score, *_ in want.values():
                    per_content.setdefault(cid, []).append(score)
                for cid, scores in per_content.items():
                    if agg.get(f"score:{cid}") is None or abs(agg[f"score:{cid}"] - max(scores)) > 1e-9:
                        bad["best_score"] += 1
                        errs.append(("best", cid, agg.get(f"score:{cid}"), max(scores)))
                    if agg.get(f"attempts_count:{cid}") != float(len(scores)):
                        bad["attempts_count"] += 1
                        errs.append(("count", cid, agg.get(f"attempts_count:{cid}"), len(scores)))
                latest = max(want, key=lambda aid: int(aid.rsplit("_a", 1)[1])) if len(per_content) == 1 else ""
                e = last.get(u) or {"edata": {}}
                if (e["edata"].get("attemptId"), e["edata"].get("courseId"), e["edata"].get("batchId")) != \
                        (latest, ds.course, ds.batch):
                    bad["last_request"] += 1
                    errs.append(("last request", e["edata"].get("attemptId"), latest))
                if errs and len(examples) < 5:
                    examples.append((u, errs[:3]))
        finally:
            cluster.shutdown()
        return {"learners": len(users), "attempts": sum(len(v) for v in want_rows.values()), "mismatches": bad,
                "examples": examples, "correct": all(v == 0 for v in bad.values())}


# ---------------------------------------------------------------------------------------- certificates
class Certificates:
    """collection-certificate-generator on the RC path: one generate-certificate event per learner
    (as the pre-processor writes it), each learner enrolled and completed in one batch whose
    ``cert_templates`` holds the template with a ``notifyTemplate``, each learner known to the
    emulator's user read. Per certificate both systems read the enrolment, search RC's public key,
    create the RC record, write ``issued_certificates``, emit one AUDIT event, read the user,
    send the notification and create the user feed."""

    name = "certificates"
    ref_main = "org.sunbird.job.certgen.task.CertificateGeneratorStreamTask"
    ref_job = "lms-jobs/credential-generator/collection-certificate-generator"
    beam_module = "pipelines.cert_generate"
    topics = ("in", "audit", "failed")
    out_topic = "audit"
    cert_name = "Perf Completion Certificate"

    def __init__(self, events: int, warmup: int = 20):
        self.n, self.n_warm = events, warmup

    def conf(self, t: dict[str, str], group: str) -> str:
        return BASE_CONF.format(
            group=group, ks=KS,
            kafka=f'  input.topic = "{t["in"]}"\n  output.failed.topic = "{t["failed"]}"\n'
                  f'  output.audit.topic = "{t["audit"]}"',
            task='  notifier.parallelism = 1\n  userfeed.parallelism = 1\n'
                 '  rc.badcharlist = "\\\\x00,\\\\\\\\aaa,\\\\aaa,Ø,Ý"',
            cassandra='  user_enrolments.table = "user_enrolments"\n  course_batch.table = "course_batch"\n'
                      '  sbkeyspace = "sunbird"\n  certreg.table = "cert_registry"',
            rest=f"""es.basePath = "127.0.0.1:9200"
service {{
  certreg.basePath = "{EMULATOR}/certreg"
  learner.basePath = "{EMULATOR}"
  enc.basePath = "{EMULATOR}/enc"
  rc.basePath = "{EMULATOR}/api/v1"
  rc.entity = "TrainingCertificate"
  rc.rcApiKey = "token"
}}
enable.suppress.exception = true
enable.rc.certificate = true
cert_domain_url = "https://dev.sunbirded.org"
cert_cloud_storage_type = "azure"
cert_cloud_storage_key = "perf"
cert_cloud_storage_secret = "perf"
cert_cloud_storage_endpoint = ""
cert_container_name = "perf-certs"
cloud_storage_base_url = "https://sunbirddev.blob.core.windows.net"
cloud_store_base_path_placeholder = "CLOUD_BASE_PATH"
content_cloud_storage_container = "sunbird-content-staging"
cloud_storage_cname_url = "https://obj.dev.sunbirded.org"
sunbird_instance_name = "Sunbird"
""")

    def _template(self, ds: Dataset) -> dict[str, str]:
        return {"identifier": f"{ds.course}_T", "name": self.cert_name, "url": "CLOUD_BASE_PATH/certs/perf.svg",
                "criteria": json.dumps({"enrollment": {"status": 2}}),
                "issuer": json.dumps({"name": "Perf Board", "url": "https://board.example"}),
                "signatoryList": json.dumps([{"name": "R. Rao", "id": "sig-1", "designation": "Director",
                                              "image": "https://board.example/sig.png"}]),
                "notifyTemplate": json.dumps({"subject": "Your certificate",
                                              "stateImageUrl": "CLOUD_BASE_PATH/logo.png"})}

    def _event(self, ds: Dataset, i: int, user: str) -> dict:
        edata = {"issuedDate": "2026-11-30", "data": [{"recipientName": f"Learner {i} Perf", "recipientId": user}],
                 "criteria": {"narrative": self.cert_name},
                 "svgTemplate": "https://obj.dev.sunbirded.org/sunbird-content-staging/certs/perf.svg",
                 "oldId": "", "templateId": f"{ds.course}_T", "userId": user, "orgId": "perf_org",
                 "issuer": {"name": "Perf Board", "url": "https://board.example"},
                 "signatoryList": [{"name": "R. Rao", "id": "sig-1", "designation": "Director",
                                    "image": "https://board.example/sig.png"}],
                 "courseName": f"Perf course {ds.tag}", "basePath": "https://dev.sunbirded.org/certs",
                 "related": {"batchId": ds.batch, "courseId": ds.course, "type": self.cert_name},
                 "name": self.cert_name, "tag": ds.batch}
        return {"actor": {"id": "Certificate Generator", "type": "System"}, "eid": "BE_JOB_REQUEST",
                "edata": edata, "ets": T0 + i,
                "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform"}},
                "mid": f"LMS.perf.{ds.tag}.{i}", "object": {"id": user, "type": "GenerateCertificate"}}

    def dataset(self, tag: str, seed: int = 7) -> Dataset:
        run = f"perf_{tag}"
        ds = Dataset(tag, f"{run}_C", f"{run}_B", [], [])
        warm = [f"{run}_W{j}" for j in range(self.n_warm)]
        ds.learners = [f"{run}_L{i}" for i in range(self.n)]
        ds.warmup = [self._event(ds, 10_000_000 + j, u) for j, u in enumerate(warm)]
        ds.events = [self._event(ds, i, u) for i, u in enumerate(ds.learners)]
        return ds

    def seed(self, ds: Dataset) -> None:
        """The batch and its template, one completed enrolment per learner, the users in the emulator."""
        users = ds.learners + [e["edata"]["userId"] for e in ds.warmup]
        cluster = Cluster(["127.0.0.1"])
        try:
            s = cluster.connect(KS)
            s.execute("INSERT INTO course_batch (courseid, batchid, name, status, cert_templates) "
                      "VALUES (%s, %s, %s, 1, %s)",
                      (ds.course, ds.batch, "Perf batch", {f"{ds.course}_T": self._template(ds)}))
            enr = s.prepare("INSERT INTO user_enrolments (userid, courseid, batchid, status, active, completedon) "
                            "VALUES (?, ?, ?, 2, true, ?)")
            done = datetime(2026, 11, 1, 9)
            execute_concurrent_with_args(s, enr, [(u, ds.course, ds.batch, done) for u in users], concurrency=64)
        finally:
            cluster.shutdown()
        _http("POST", "/__emulator/seed", {"users": {u: {"firstName": "Perf", "lastName": u, "rootOrgId": "perf_org"}
                                                     for u in users}})

    def expected_out(self, events: list[dict]) -> int:
        return len(events)

    def check(self, ds: Dataset, outputs: list[dict]) -> dict:
        """Per learner exactly one ``issued_certificates`` entry of the template's name with an RC
        id, and one AUDIT event naming that learner and that id; RC holds exactly one record per
        learner of the batch; one notification and one user feed per learner reached the emulator."""
        users = ds.learners + [e["edata"]["userId"] for e in ds.warmup]
        bad = {"issued_certificates": 0, "audit_events": 0, "rc_records": 0, "notifications": 0, "user_feeds": 0}
        examples: list = []
        cluster = Cluster(["127.0.0.1"])
        try:
            s = cluster.connect(KS)
            q = s.prepare("SELECT issued_certificates FROM user_enrolments "
                          "WHERE userid = ? AND courseid = ? AND batchid = ?")
            res = execute_concurrent_with_args(s, q, [(u, ds.course, ds.batch) for u in users], concurrency=64)
            osids: dict[str, str] = {}
            for u, r in zip(users, res, strict=True):
                rows = list(r.result_or_exc)
                certs = [dict(c) for c in (rows[0].issued_certificates or [])] if rows else []
                if len(certs) != 1 or certs[0].get("name") != self.cert_name or not certs[0].get("identifier"):
                    bad["issued_certificates"] += 1
                    if len(examples) < 5:
                        examples.append((u, certs))
                else:
                    osids[u] = certs[0]["identifier"]
        finally:
            cluster.shutdown()
        audits = sorted((e["actor"]["id"], e["object"]["id"]) for e in outputs)
        bad["audit_events"] = len(set(audits) ^ set(osids.items())) + len(audits) - len(set(audits))
        rc = _http("POST", "/api/v1/TrainingCertificate/search",
                   {"filters": {"training.batchId": {"eq": ds.batch}}, "limit": 1_000_000})
        per_user: dict[str, int] = {}
        for rec in rc:
            rid = (rec.get("recipient") or {}).get("id")
            per_user[rid] = per_user.get(rid, 0) + 1
        wanted = set(users)
        bad["rc_records"] = sum(1 for u in users if per_user.get(u) != 1) + sum(1 for u in per_user if u not in wanted)
        notes = _http("GET", "/__emulator/requests?path_prefix=/v2/notification&method=POST")
        feeds = _http("GET", "/__emulator/requests?path_prefix=/private/user/feed/v1/create&method=POST")
        n_notes: dict[str, int] = {}
        for r in notes:
            for u in ((r.get("body") or {}).get("request") or {}).get("recipientUserIds") or []:
                if u in wanted:
                    n_notes[u] = n_notes.get(u, 0) + 1
        n_feeds: dict[str, int] = {}
        for r in feeds:
            u = ((r.get("body") or {}).get("request") or {}).get("userId")
            if u in wanted:
                n_feeds[u] = n_feeds.get(u, 0) + 1
        bad["notifications"] = sum(1 for u in users if n_notes.get(u) != 1)
        bad["user_feeds"] = sum(1 for u in users if n_feeds.get(u) != 1)
        return {"learners": len(users), "rc_records": len(rc), "mismatches": bad, "examples": examples,
                "correct": all(v == 0 for v in bad.values())}


JOBS = {"assessment": Assessment, "certificates": Certificates}
