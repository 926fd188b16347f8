"""collection-cert-pre-processor and collection-certificate-generator on DirectRunner against the
real Cassandra and the Sunbird emulator. Every id is prefixed with ``run_id``; emulator requests are
filtered by those ids, so tests never see each other's calls."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import requests

from pipelines import cert_generate, cert_preprocess
from pipelines.domain import certificates as C
from pipelines.options.certificates import CertOptions, cert_settings
from pipelines.transforms.issue_rc import _IssueFn
from tests.batch_runs import read_topic, run_job

EMULATOR = "http://127.0.0.1:9000"
RC_PATH = "/api/v1/TrainingCertificate"


# ------------------------------------------------------------------------------------ data


def seed(cql, run_id: str, users: dict[str, dict], templates: dict[str, dict] | None = None,
         course_name: str = "Maths <101> & \"More\"") -> dict:
    """A course, a batch with certificate templates, enrolments and users (Cassandra + emulator).

    ``users``: suffix -> {"status": 2, "first": name, "score": pct or None, "seed_user": bool}.
    """
    course, batch = f"{run_id}_course", f"{run_id}_batch"
    assess = f"{run_id}_assess"
    if templates is None:
        templates = {f"{run_id}_tmpl": cert_template(run_id)}
    cql.execute("INSERT INTO course_batch (courseid, batchid, cert_templates, name) VALUES (%s, %s, %s, 'b')",
                (course, batch, templates))
    emu_users = {}
    for suffix, u in users.items():
        uid = f"{run_id}_{suffix}"
        completed = datetime(2024, 5, 6, 10, 0, tzinfo=UTC) if u.get("status", 2) == 2 else None
        cql.execute("INSERT INTO user_enrolments (userid, courseid, batchid, status, active, completedon, "
                    "issued_certificates) VALUES (%s, %s, %s, %s, true, %s, %s)",
                    (uid, course, batch, u.get("status", 2), completed, u.get("issued")))
        if u.get("score") is not None:
            cql.execute("UPDATE user_activity_agg SET aggregates = %s WHERE activity_type = 'Course' AND "
                        "activity_id = %s AND user_id = %s AND context_id = %s",
                        ({f"score:{assess}": float(u["score"]), f"max_score:{assess}": 100.0}, course, uid,
                         f"cb:{batch}"))
        if u.get("seed_user", True):
            emu_users[uid] = {"firstName": u.get("first", "Ada"), "lastName": "Lovelace", "rootOrgId": "org_1",
                              "maskedPhone": "******12", "userLocations": [{"type": "state", "name": "Goa"}]}
    seed_body = {"contents": {course: {"name": course_name, "contentType": "Course", "status": "Live"},
                              assess: {"name": "quiz", "contentType": "SelfAssess", "status": "Live"}},
                 "users": emu_users}
    requests.post(f"{EMULATOR}/__emulator/seed", json=seed_body, timeout=10).raise_for_status()
    return {"course": course, "batch": batch, "tmpl": f"{run_id}_tmpl", "uid": lambda s: f"{run_id}_{s}"}


def cert_template(run_id: str, criteria: dict | None = None, name: str = "Course Completion") -> dict:
    return {"identifier": f"{run_id}_tmpl", "name": name, "url": "CLOUD_BASE_PATH/certs/tmpl.svg",
            "criteria": json.dumps(criteria or {"enrollment": {"status": 2}}),
            "issuer": json.dumps({"name": "Org & Co", "url": "https://org.example"}),
            "signatoryList": json.dumps([{"name": "Sig", "id": "s1", "designation": "CEO",
                                          "image": "https://img.example/s.png"}]),
            "notifyTemplate": json.dumps({"subject": "Certificate", "stateImageUrl": "CLOUD_BASE_PATH/logo.png"}),
            "additionalProps": json.dumps({"user": ["rootOrgId"]})}


def issue_request(c: dict, suffix: str, re_issue: bool = False) -> dict:
    ev = C.issue_request_for(c["uid"](suffix), c["course"], c["batch"], 1700000000000)
    ev["edata"]["reIssue"] = re_issue
    return ev


def run(module, tmp_path: Path, name: str, lines: list | None, *extra: str) -> tuple[dict, Path]:
    return run_job(module, tmp_path, name, lines, *extra, extra_groups=(CertOptions,))


def read(out: Path, topic: str) -> list[dict]:
    return read_topic(out, topic, missing_ok=True)


def emulator_requests(path_prefix: str, method: str | None = None) -> list[dict]:
    params = {"path_prefix": path_prefix, **({"method": method} if method else {})}
    return requests.get(f"{EMULATOR}/__emulator/requests", params=params, timeout=10).json()


def rc_creates(user_id: str) -> list[dict]:
    return [r for r in emulator_requests(RC_PATH, "POST")
            if r["path"] == RC_PATH and isinstance(r["body"], dict)
            and (r["body"].get("recipient") or {}).get("id") == user_id]


def issued(cql, c: dict, suffix: str) -> list[dict]:
    row = cql.execute("SELECT issued_certificates FROM user_enrolments WHERE userid=%s AND courseid=%s AND "
                      "batchid=%s", (c["uid"](suffix), c["course"], c["batch"])).one()
    return [dict(x) for x in (row.issued_certificates or [])]


def preprocess(tmp_path, name, lines, *extra):
    totals, out = run(cert_preprocess, tmp_path, name, lines, *extra)
    return totals, read(out, "generate.certificate.request"), read(out, "issue.certificate.failed")


def generate(tmp_path, name, lines, *extra):
    totals, out = run(cert_generate, tmp_path, name, lines, *extra)
    return totals, read(out, "telemetry.raw"), read(out, "generate.certificate.failed")


# ---------------------------------------------------------------------------- pre-processor


def test_preprocess_criteria_outcomes_and_accounting(cql, tmp_path, run_id):
    crit = {"enrollment": {"status": 2}, "assessment": {"score": {">=": 60}}, "user": {"rootOrgId": "org_1"}}
    c = seed(cql, run_id, {"ok": {"score": 80, "first": "O'Brien <b>"}, "low": {"score": 40},
                           "inprogress": {"status": 1, "score": 90}, "ghost": {"score": 99, "seed_user": False}},
             {f"{run_id}_tmpl": cert_template(run_id, crit), f"{run_id}_pdf": {"url": "x.pdf", "name": "pdf"}})
    lines = [issue_request(c, "ok"), issue_request(c, "low"), issue_request(c, "inprogress"),
             issue_request(c, "ghost"), {"edata": {"action": "other"}}, "{broken"]
    totals, gen, failed = preprocess(tmp_path, "pre", lines)

    assert len(gen) == 1
    e = gen[0]["edata"]
    assert gen[0]["object"] == {"id": c["uid"]("ok"), "type": "GenerateCertificate"}
    assert gen[0]["eid"] == "BE_JOB_REQUEST" and gen[0]["mid"].startswith("LMS.")
    assert e["data"] == [{"recipientName": "O'Brien <b> Lovelace", "recipientId": c["uid"]("ok")}]
    assert e["svgTemplate"] == "https://obj.dev.sunbirded.org/sunbird-content-staging/certs/tmpl.svg"
    assert e["courseName"] == "Maths <101> & \"More\"" and e["issuedDate"] == "2024-05-06"
    assert e["related"] == {"batchId": c["batch"], "courseId": c["course"], "type": "Course Completion",
                            "rootOrgId": "org_1"}
    assert (e["templateId"], e["tag"], e["orgId"], e["oldId"]) == (c["tmpl"], c["batch"], "org_1", "")
    assert e["basePath"] == "https://dev.sunbirded.org/certs"

    reasons = sorted(f["failInfo"]["error"] for f in failed)
    assert len(failed) == 2 and any("user read" in r and "404" in r for r in reasons)
    assert any("malformed JSON" in r for r in reasons)
    assert totals["success-events-count"] == 1 and totals["skipped-event-count"] == 3
    assert totals["failed-events-count"] == 2
    assert totals["total-events-count"] == 5 and totals["parsed-event-count"] == 5
    # user read hits the reference path with the reference query
    reads = emulator_requests(f"/private/user/v1/read/{c['uid']('ok')}")
    assert reads and reads[0]["query_string"] == "organisations,roles,locations,declarations,externalIds"


def test_timestamp_props_are_epoch_millis_in_the_generate_event(cql, tmp_path, run_id):
    """Issue 12: ``related.enrollment.completedOn`` came out as ``"2024-05-06 10:00:00"``."""
    t = {**cert_template(run_id), "additionalProps": json.dumps({"enrollment": ["completedOn", "status"]})}
    c = seed(cql, run_id, {"a": {}}, {f"{run_id}_tmpl": t})
    _, gen, failed = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    assert failed == [] and gen[0]["edata"]["related"]["enrollment"] == {"completedOn": 1714989600000, "status": 2}


def test_preprocess_missing_course_and_bad_template_fail_with_reason(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"a": {}}, {f"{run_id}_tmpl": cert_template(run_id)})
    bad = seed(cql, run_id + "x", {"a": {}}, {f"{run_id}x_tmpl": {**cert_template(run_id), "criteria": "{}"}})
    nocourse = issue_request(c, "a")
    nocourse["edata"]["courseId"] = f"{run_id}_nocourse"
    cql.execute("INSERT INTO course_batch (courseid, batchid, cert_templates) VALUES (%s, %s, %s)",
                (f"{run_id}_nocourse", c["batch"], {"t": cert_template(run_id)}))
    cql.execute("INSERT INTO user_enrolments (userid, courseid, batchid, status, active) VALUES (%s,%s,%s,2,true)",
                (c["uid"]("a"), f"{run_id}_nocourse", c["batch"]))
    notemplates = issue_request(c, "a")
    notemplates["edata"]["batchId"] = f"{run_id}_nobatch"
    totals, gen, failed = preprocess(tmp_path, "pre", [nocourse, issue_request(bad, "a"), notemplates])
    assert gen == []
    reasons = sorted(f["failInfo"]["error"] for f in failed)
    assert any("course" in r and "not found" in r for r in reasons)
    assert any("Invalid template for batch" in r for r in reasons)
    assert totals["failed-events-count"] == 2 and totals["skipped-event-count"] == 1


def test_db_read_count_counts_enrolment_and_score_reads_not_the_template_read(cql, tmp_path, run_id):
    """Issue 12: the reference's ``db-read-count`` counts the enrolment and assessment reads of
    ``IssueCertificateHelper``; its ``fetchTemplates`` (course_batch) is not counted."""
    crit = {"enrollment": {"status": 2}, "assessment": {"score": {">=": 60}}}
    c = seed(cql, run_id, {"a": {"score": 80}}, {f"{run_id}_tmpl": cert_template(run_id, crit)})
    no_templates = issue_request(c, "a")
    no_templates["edata"]["batchId"] = f"{run_id}_nobatch"
    totals, gen, failed = preprocess(tmp_path, "pre", [issue_request(c, "a"), no_templates])
    assert len(gen) == 1 and failed == []
    assert totals["db-read-count"] == 2  # user_enrolments + user_activity_agg of the first request only


# ------------------------------------------------------------------------------- generator


def test_issue_once_with_duplicates_and_replay(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"a": {"first": "Zoë \"Z\" <Q>"}})
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    assert len(gen) == 1
    totals, audit, failed = generate(tmp_path, "gen", [gen[0], gen[0]])
    assert failed == []
    creates = rc_creates(c["uid"]("a"))
    assert len(creates) == 1
    body = creates[0]["body"]
    assert creates[0]["headers"].get("authorization") == "token"
    assert body["recipient"] == {"id": c["uid"]("a"), "name": "Zoë &quot;Z&quot; &lt;Q&gt; Lovelace", "type": None}
    assert body["training"] == {"id": c["course"], "name": "Maths &lt;101&gt; &amp; &quot;More&quot;",
                                "type": "Course", "batchId": c["batch"]}
    assert body["issuer"] == {"url": "https://org.example", "name": "Org &amp; Co",
                              "kid": "1-lern-emu-public-key-0001"}
    assert body["certificateLabel"] == "Course Completion" and body["status"] == "ACTIVE"
    certs = issued(cql, c, "a")
    assert len(certs) == 1
    assert certs[0]["name"] == "Course Completion" and certs[0]["identifier"].startswith("1-")
    assert certs[0]["type"] == "TrainingCertificate" and certs[0]["token"] == ""
    assert [a["object"]["id"] for a in audit] == [certs[0]["identifier"]]
    assert audit[0]["edata"] == {"props": ["certificates"], "type": "certificate-issued-svg"}
    assert totals["success-events-count"] == 1 and totals["skipped-event-count"] == 1
    assert totals["total-events-count"] == 2
    uid = c["uid"]("a")
    notes = [r for r in emulator_requests("/v2/notification", "POST") if r["body"]["request"]["recipientUserIds"]
             == [uid]]
    assert [n["body"]["request"]["body"] for n in notes][0] == "email body" and len(notes) == 2  # email + sms
    assert notes[0]["body"]["request"]["stateImageUrl"] == \
        "https://obj.dev.sunbirded.org/sunbird-content-staging/logo.png"
    feeds = [r for r in emulator_requests("/private/user/feed/v1/create", "POST")
             if r["body"]["request"]["userId"] == uid]
    assert len(feeds) == 1 and feeds[0]["body"]["request"]["data"]["actionData"]["identifier"] == c["course"]

    # Replay: the issued certificate is found (reference check) and the claim says issued.
    totals, audit, failed = generate(tmp_path, "replay", [gen[0]])
    assert audit == [] and failed == [] and totals["skipped-event-count"] == 1
    assert len(rc_creates(uid)) == 1 and len(issued(cql, c, "a")) == 1
    # Even with issued_certificates wiped (the read check passes), the claim blocks a second create.
    cql.execute("UPDATE user_enrolments SET issued_certificates = null WHERE userid=%s AND courseid=%s AND "
                "batchid=%s", (uid, c["course"], c["batch"]))
    totals, audit, _ = generate(tmp_path, "wiped", [gen[0]])
    assert audit == [] and totals["duplicate-issue-count"] == 1 and len(rc_creates(uid)) == 1


def test_bad_chars_cleaned_from_values_so_rc_gets_valid_json(cql, tmp_path, run_id):
    """Issue 12: a name ending in the text ``\\x00`` used to reach RC as ``"...\\"`` (invalid JSON)."""
    c = seed(cql, run_id, {"a": {}})
    uid = c["uid"]("a")
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    ev = gen[0]
    ev["edata"]["data"][0]["recipientName"] = "Ada\\x00"
    ev["edata"]["courseName"] = "Maths\x00 101"
    totals, audit, failed = generate(tmp_path, "gen", [ev])
    assert failed == [] and len(audit) == 1
    creates = rc_creates(uid)
    assert len(creates) == 1 and creates[0]["status"] == 200
    assert creates[0]["body"]["recipient"]["name"] == "Ada" and creates[0]["body"]["training"]["name"] == "Maths 101"


def _settings():
    from pipelines.options import parse_job_options

    opts = parse_job_options(["--input=x"], extra_groups=(CertOptions,),
                             defaults=cert_generate.defaults("local"))
    return cert_settings(opts, "collection-certificate-generator")


def test_concurrent_requests_issue_one_certificate(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"a": {}})
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    fns = [_IssueFn(_settings()) for _ in range(4)]
    req = C.validate_generate_request(gen[0], True)
    for fn in fns:
        fn.setup()
    barrier, results = threading.Barrier(len(fns)), []

    def worker(fn):
        barrier.wait()
        results.append(list(fn.process([req, req, req])))  # also concurrent inside one worker's pool

    threads = [threading.Thread(target=worker, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for fn in fns:
        fn.teardown()
    outputs = [o for r in results for o in r]
    assert len(results) == 4
    assert [o.tag for o in outputs].count("audit") == 1 and not [o for o in outputs if o.tag == "failed"]
    assert len(rc_creates(c["uid"]("a"))) == 1 and len(issued(cql, c, "a")) == 1


def test_rc_failure_recovers_then_fails_then_replay_issues_once(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"a": {}, "b": {}})
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a"), issue_request(c, "b")])
    by_user = {g["edata"]["userId"]: g for g in gen}
    ga, gb = by_user[c["uid"]("a")], by_user[c["uid"]("b")]
    fault = {"path_prefix": RC_PATH, "method": "POST", "status": 500}
    try:
        # Two 500s: retried inside the call, then RC recovers.
        requests.post(f"{EMULATOR}/__emulator/faults", json={**fault, "times": 2}, timeout=5).raise_for_status()
        totals, audit, failed = generate(tmp_path, "flaky", [ga])
        assert failed == [] and len(audit) == 1 and len(issued(cql, c, "a")) == 1
        # RC down for longer than the retries: a failed event with the reason, nothing recorded.
        requests.post(f"{EMULATOR}/__emulator/faults", json={**fault, "times": 50}, timeout=5).raise_for_status()
        bad_user = {**gb, "edata": {**gb["edata"], "data": []}}
        totals, audit, failed = generate(tmp_path, "down", [gb, bad_user, ga], "--http_retries=1")
        assert audit == [] and len(failed) == 2
        reasons = sorted(f["failInfo"]["error"] for f in failed)
        assert "500" in reasons[1] and "edata.data is missing" in reasons[0]
        assert issued(cql, c, "b") == []
        assert totals.get("success-events-count", 0) + totals["skipped-event-count"] + \
            totals["failed-events-count"] == totals["total-events-count"] == 3
    finally:
        requests.delete(f"{EMULATOR}/__emulator/faults", timeout=5)
    # Recovered: the failed event replayed takes the released claim over and issues once.
    totals, audit, failed = generate(tmp_path, "replay", [gb, gb])
    assert failed == [] and len(audit) == 1 and totals["claim-takeover-count"] == 1
    assert len(issued(cql, c, "b")) == 1
    ok_creates = [r for r in rc_creates(c["uid"]("b")) if r["status"] == 200]
    assert len(ok_creates) == 1


def test_reissue_replaces_old_certificate_once(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"a": {}})
    uid = c["uid"]("a")
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    generate(tmp_path, "gen", gen)
    old = issued(cql, c, "a")[0]["identifier"]
    # A plain request now is skipped (already issued); a re-issue request carries the old id.
    totals, gen2, _ = preprocess(tmp_path, "pre2", [issue_request(c, "a"), issue_request(c, "a", re_issue=True)])
    assert len(gen2) == 1 and gen2[0]["edata"]["oldId"] == old and totals["skipped-event-count"] == 1
    totals, audit, failed = generate(tmp_path, "reissue", [gen2[0], gen2[0]])
    assert failed == [] and len(audit) == 1
    certs = issued(cql, c, "a")
    assert len(certs) == 1 and certs[0]["identifier"] != old
    deletes = emulator_requests(f"{RC_PATH}/{old}", "DELETE")
    assert len(deletes) == 1 and deletes[0]["status"] == 200
    creates = rc_creates(uid)
    assert len(creates) == 2 and creates[1]["body"]["oldId"] == old


def test_altered_copies_of_a_request_issue_nothing_more(cql, tmp_path, run_id):
    """Issue 12: nine copies of one generate request with other templateIds or oldIds created nine
    RC certificates for one learner. Each must fail with a reason; the real re-issue still works
    once, and its replay after the old certificate is gone is a duplicate, not a failure."""
    c = seed(cql, run_id, {"a": {}})
    uid = c["uid"]("a")
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    generate(tmp_path, "gen", gen)
    first = issued(cql, c, "a")[0]["identifier"]

    def copy(**edata):
        return {**gen[0], "edata": {**gen[0]["edata"], **edata}}

    forged = ([copy(templateId=f"{run_id}_t{i}") for i in range(4)] + [copy(oldId=f"1-forged-{i}") for i in range(4)]
              + [copy(oldId=first, data=[*gen[0]["edata"]["data"], {"recipientName": "X", "recipientId": "u-x"}])])
    totals, audit, failed = generate(tmp_path, "forged", forged)
    assert audit == [] and len(failed) == 9 and totals["failed-events-count"] == 9
    why = sorted(f["failInfo"]["error"] for f in failed)
    assert sum("is not a certificate template of batch" in r for r in why) == 4
    assert sum("is not the learner's issued certificate 'Course Completion'" in r for r in why) == 4
    assert sum("are not the request's learner" in r for r in why) == 1
    assert len(rc_creates(uid)) == 1 and [x["identifier"] for x in issued(cql, c, "a")] == [first]

    _, gen2, _ = preprocess(tmp_path, "pre2", [issue_request(c, "a", re_issue=True)])
    assert gen2[0]["edata"]["oldId"] == first
    totals, audit, failed = generate(tmp_path, "reissue", gen2)
    assert failed == [] and len(audit) == 1 and len(rc_creates(uid)) == 2
    totals, audit, failed = generate(tmp_path, "reissue-replay", gen2)
    assert failed == [] and audit == [] and totals["duplicate-issue-count"] == 1 and len(rc_creates(uid)) == 2


def test_backfill_issues_what_is_missing_once(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"done": {}, "has": {"issued": [{"name": "Course Completion", "identifier": "x"}]},
                           "todo": {"status": 1}})
    args = ["--from_cassandra", f"--course_id={c['course']}", f"--batch_id={c['batch']}"]
    totals, gen, failed = preprocess(tmp_path, "backfill", None, *args)
    assert [g["edata"]["userId"] for g in gen] == [c["uid"]("done")] and failed == []
    assert totals["scanned-enrolment-count"] == 3 and totals["skipped-event-count"] == 1
    generate(tmp_path, "gen", gen)
    totals, gen2, _ = preprocess(tmp_path, "backfill2", None, *args)
    assert gen2 == [] and len(rc_creates(c["uid"]("done"))) == 1


def test_crashed_owner_is_taken_over_and_its_rc_record_reused(cql, tmp_path, run_id):
    """A worker claimed the issuance and created the RC record, then died before recording it: after
    the lease, a replay finds the record in RC instead of creating a second certificate."""
    c = seed(cql, run_id, {"a": {}})
    uid = c["uid"]("a")
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    osid = f"1-{run_id}-orphan"
    orphan = {"osid": osid, "certificateLabel": "Course Completion", "status": "ACTIVE",
              "recipient": {"id": uid, "name": "x"}, "training": {"id": c["course"], "batchId": c["batch"]}}
    requests.post(f"{EMULATOR}/__emulator/seed", json={"rc": {"TrainingCertificate": [orphan]}},
                  timeout=5).raise_for_status()
    cert_id = C.certificate_id(uid, c["course"], c["batch"], c["tmpl"])
    cql.execute("INSERT INTO cert_issue_claims (cert_id, owner, state, claimed_at) VALUES (%s, 'dead', 'claimed', "
                "%s)", (cert_id, datetime(2020, 1, 1, tzinfo=UTC)))
    totals, audit, failed = generate(tmp_path, "gen", gen)
    assert failed == [] and totals["claim-takeover-count"] == 1
    assert rc_creates(uid) == [] and [x["identifier"] for x in issued(cql, c, "a")] == [osid]
    assert [a["object"]["id"] for a in audit] == [osid]
    state = cql.execute("SELECT state, osid FROM cert_issue_claims WHERE cert_id=%s", (cert_id,)).one()
    assert (state.state, state.osid) == ("issued", osid)


def test_course_name_from_collection_cache(cql, tmp_path, run_id):
    import redis

    c = seed(cql, run_id, {"a": {}})
    redis.Redis(port=6379, db=0).set(c["course"], json.dumps({"name": "Cached\nName", "identifier": c["course"]}))
    totals, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    assert gen[0]["edata"]["courseName"] == "CachedName" and totals["cache-hit-cout"] == 1
    assert emulator_requests(f"/content/v3/read/{c['course']}") == []


def test_reissue_of_legacy_certificate_deletes_old_registry_row(cql, tmp_path, run_id):
    legacy = f"{run_id}_legacy"
    c = seed(cql, run_id, {"a": {"issued": [{"name": "Course Completion", "identifier": legacy}]}})
    cql.execute("INSERT INTO sunbird.cert_registry (id, recipient) VALUES (%s, 'x')", (legacy,))
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a", re_issue=True)])
    assert gen[0]["edata"]["oldId"] == legacy
    totals, audit, failed = generate(tmp_path, "gen", gen)
    assert failed == [] and len(audit) == 1
    assert emulator_requests(f"{RC_PATH}/{legacy}", "DELETE")[0]["status"] == 404
    assert cql.execute("SELECT id FROM sunbird.cert_registry WHERE id=%s", (legacy,)).one() is None
    assert [x["identifier"] != legacy for x in issued(cql, c, "a")] == [True]


def test_blocked_user_is_a_counted_skip(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"a": {}})
    requests.post(f"{EMULATOR}/__emulator/seed", json={"users": {c["uid"]("a"): {"isDeleted": True}}},
                  timeout=5).raise_for_status()
    totals, gen, failed = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    assert gen == [] and failed == [] and totals["skipped-event-count"] == 1


def test_two_pipeline_runs_at_once_issue_one_certificate(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"a": {}})
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    results: dict[str, tuple] = {}

    def go(name):
        results[name] = generate(tmp_path, name, [gen[0]])

    threads = [threading.Thread(target=go, args=(n,)) for n in ("run1", "run2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(results) == {"run1", "run2"}
    audits = [a for _, audit, _ in results.values() for a in audit]
    assert len(audits) == 1 and all(failed == [] for _, _, failed in results.values())
    assert len(rc_creates(c["uid"]("a"))) == 1 and len(issued(cql, c, "a")) == 1
