"""certificate-status-updater on DirectRunner against the real Cassandra and a Sunbird RC emulator.

The RC calls go to an emulator started by this module on a free port (the same server as the
stack's, ``local/emulator/sunbird.py``, over real HTTP), because the revoke route is new and the
stack's emulator process only serves the routes it was started with.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from pipelines import cert_bulk_status, cert_generate, cert_preprocess, cert_status
from pipelines.domain import cert_status as S
from pipelines.domain.failures import failure_reason
from pipelines.options.certificates import CertBulkOptions, CertOptions
from tests.batch_runs import read_topic, run_job
from tests.pipeline.test_cert_jobs import issue_request, seed

ENTITY = "TrainingCertificate"


@pytest.fixture(scope="module")
def rc(stack):
    path = Path(__file__).resolve().parents[2] / "local" / "emulator" / "sunbird.py"
    spec = importlib.util.spec_from_file_location("lern_emulator_for_status", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    server = module.make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{server.base_url}/api/v1"
    server.shutdown()
    server.server_close()


def rc_create(rc: str, user: str, course: str, batch: str) -> str:
    body = {"certificateLabel": "Course Completion", "status": "ACTIVE", "recipient": {"id": user},
            "training": {"id": course, "batchId": batch, "type": "Course"}}
    r = requests.post(f"{rc}/{ENTITY}", json=body, headers={"Authorization": "token"}, timeout=10)
    r.raise_for_status()
    return r.json()["result"][ENTITY]["osid"]


def rc_record(rc: str, osid: str) -> dict:
    return requests.get(f"{rc}/{ENTITY}/{osid}", timeout=10).json()


def issued_cert(cql, rc: str, run_id: str, n: int = 0) -> dict:
    """A credential as collection-certificate-generator leaves it: an RC record and an active row."""
    c = {"user": f"{run_id}_u{n}", "course": f"{run_id}_course", "batch": f"{run_id}_batch"}
    c["id"] = rc_create(rc, c["user"], c["course"], c["batch"])
    cql.execute("INSERT INTO certificate_status (cert_id, backend, status, version, userid, courseid, batchid, "
                "changed_at) VALUES (%s, 'rc', 'active', 0, %s, %s, %s, 0)", (c["id"], c["user"], c["course"],
                                                                              c["batch"]))
    return c


def request(c: dict, change: str, at: int, rid: str, **kw) -> dict:
    return S.status_request_event(c["id"], change, at, rid, user_id=c["user"], course_id=c["course"],
                                  batch_id=c["batch"], requested_by="admin", **kw)


def change(tmp_path, rc: str, name: str, lines: list, *extra: str):
    totals, out = run_job(cert_status, tmp_path, name, lines, "--service_rc_basepath", rc, *extra,
                          extra_groups=(CertOptions,))
    return (totals, read_topic(out, "telemetry.raw", missing_ok=True),
            read_topic(out, "certificate.status.failed", missing_ok=True))


def status(cql, cert_id: str):
    return cql.execute("SELECT status, version, changed_at, change_request, reason, requested_by, superseded_by "
                       "FROM certificate_status WHERE cert_id = %s", (cert_id,)).one()


def test_revoke_in_rc_then_replays_change_nothing_more(cql, rc, tmp_path, run_id):
    c = issued_cert(cql, rc, run_id)
    totals, audit, failed = change(tmp_path, rc, "first", [request(c, "revoke", 1000, "r1", reason="fraud")])
    assert failed == []
    assert (totals["status-changed-count"], totals["rc-revoke-count"], totals["success-events-count"]) == (1, 1, 1)
    assert rc_record(rc, c["id"])["status"] == "REVOKED"
    row = status(cql, c["id"])
    assert (row.status, row.version, row.changed_at, row.change_request, row.reason, row.requested_by) == \
        ("revoked", 1, 1000, "r1", "fraud", "admin")
    assert [a["mid"] for a in audit] == [S.audit_mid(S.parse_status_request(request(c, "revoke", 1000, "r1"))[0])]
    assert audit[0]["edata"]["type"] == "certificate-revoked" and audit[0]["object"]["id"] == c["id"]

    again = [request(c, "revoke", 1000, "r1")] * 3 + [request(c, "revoke", 2000, "r2"),
                                                        request(c, "unsuspend", 3000, "r3")]
    totals, audit, failed = change(tmp_path, rc, "again", again)
    assert audit == [] and failed == []
    assert (totals["duplicate-change-count"], totals["terminal-change-count"], totals["skipped-event-count"]) == \
        (3, 2, 5)
    assert totals.get("rc-revoke-count", 0) == 0 and totals.get("rc-already-revoked-count", 0) == 0
    assert status(cql, c["id"]).version == 1


def test_rc_already_revoked_is_done_not_failed(cql, rc, tmp_path, run_id):
    c = issued_cert(cql, rc, run_id)
    assert requests.post(f"{rc}/{ENTITY}/{c['id']}/revoke", json={}, timeout=10).status_code == 200
    repeat = requests.post(f"{rc}/{ENTITY}/{c['id']}/revoke", json={}, timeout=10)
    assert repeat.status_code == 500 and "already revoked" in repeat.text
    totals, audit, failed = change(tmp_path, rc, "run", [request(c, "revoke", 1000, "r1"),
                                                          request(c, "revoke", 1000, "r1")])
    assert failed == [] and len(audit) == 1
    assert (totals["status-changed-count"], totals["rc-already-revoked-count"], totals["duplicate-change-count"],
            totals.get("failed-events-count", 0)) == (1, 1, 1, 0)
    assert status(cql, c["id"]).status == "revoked"


def test_concurrent_runs_over_copies_apply_one_change(cql, rc, tmp_path, run_id):
    c = issued_cert(cql, rc, run_id)
    copies = [request(c, "revoke", 1000, "r1")] * 10
    results = {}

    def run(name):
        results[name] = change(tmp_path, rc, name, copies)

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = [r[0] for r in results.values()]
    assert sum(t.get("status-changed-count", 0) for t in totals) == 1
    assert sum(len(r[1]) for r in results.values()) == 1
    assert all(r[2] == [] for r in results.values())
    assert sum(t.get("duplicate-change-count", 0) for t in totals) == 19
    assert status(cql, c["id"]).version == 1


def test_suspend_unsuspend_ordering_and_revocation_terminal(cql, rc, tmp_path, run_id):
    c = issued_cert(cql, rc, run_id)
    totals, audit, _ = change(tmp_path, rc, "a", [request(c, "suspend", 2000, "s1")])
    assert status(cql, c["id"]).status == "suspended" and audit[0]["edata"]["type"] == "certificate-suspended"
    totals, audit, _ = change(tmp_path, rc, "b", [request(c, "unsuspend", 3000, "u1")])
    assert status(cql, c["id"]).status == "active" and audit[0]["edata"]["type"] == "certificate-reinstated"
    totals, audit, failed = change(tmp_path, rc, "late", [request(c, "suspend", 2500, "s2")])
    assert (totals["stale-change-count"], totals["skipped-event-count"], audit, failed) == (1, 1, [], [])
    assert status(cql, c["id"]).status == "active"
    totals, audit, _ = change(tmp_path, rc, "c", [request(c, "unsuspend", 4000, "u2")])
    assert totals["status-advanced-count"] == 1 and audit == [] and status(cql, c["id"]).changed_at == 4000
    assert rc_record(rc, c["id"])["status"] == "ACTIVE"  # RC has no suspension: nothing sent
    totals, audit, _ = change(tmp_path, rc, "d", [request(c, "revoke", 1500, "v1")])  # older, still terminal
    assert status(cql, c["id"]).status == "revoked" and totals["rc-revoke-count"] == 1
    totals, audit, _ = change(tmp_path, rc, "e", [request(c, "unsuspend", 9000, "u3")])
    assert totals["terminal-change-count"] == 1 and status(cql, c["id"]).status == "revoked"


def test_unknown_or_foreign_certificate_is_dead_lettered_with_reason(cql, rc, tmp_path, run_id):
    c = issued_cert(cql, rc, run_id)
    ghost = {**c, "id": f"{run_id}-ghost"}
    lines = [request(ghost, "revoke", 1000, "r1"), request({**c, "user": "someone-else"}, "revoke", 1000, "r2"),
             {"eid": "BE_JOB_REQUEST", "edata": {"action": "certificate-status", "change": "revoke",
                                                 "certificateId": c["id"], "requestId": "r3",
                                                 "requestedAt": 1000, "reason": "x" * 200_000}}]
    huge_time = ('{"eid":"BE_JOB_REQUEST","edata":{"action":"certificate-status","change":"revoke",'
                 f'"certificateId":"{c["id"]}","requestId":"r4","requestedAt":{"9" * 1_000_000}}}}}')
    totals, audit, failed = change(tmp_path, rc, "run", [*lines, huge_time])
    assert audit == [] and status(cql, c["id"]).status == "active"
    assert totals["failed-events-count"] == 4 and len(failed) == 4  # the 10^6-digit time fails at parsing
    failed = [f for f in failed if "raw" not in f]
    reasons = [failure_reason(f) for f in failed]
    assert len(failed) == 3 and totals["unknown-certificate-count"] == 1
    assert any(f"unknown certificate {ghost['id']}" in r for r in reasons), reasons
    assert any("is not the certificate of userId someone-else" in r for r in reasons), reasons
    assert any("edata.reason is longer than 1024" in r for r in reasons), reasons
    originals = [{k: v for k, v in f.items() if k not in ("failInfo", "metadata", "jobName", "flags")}
                 for f in failed]
    for line in lines:
        assert line in originals
    assert rc_record(rc, c["id"])["status"] == "ACTIVE"


def test_a_certificate_known_only_to_rc_is_backfilled_then_changed(cql, rc, tmp_path, run_id):
    c = {"user": f"{run_id}_u", "course": f"{run_id}_course", "batch": f"{run_id}_batch"}
    c["id"] = rc_create(rc, c["user"], c["course"], c["batch"])
    totals, audit, failed = change(tmp_path, rc, "run", [request(c, "suspend", 1000, "s1")])
    assert failed == [] and totals["backfilled-certificate-count"] == 1 and len(audit) == 1
    row = cql.execute("SELECT status, userid, courseid, batchid, backend FROM certificate_status WHERE cert_id = %s",
                      (c["id"],)).one()
    assert tuple(row) == ("suspended", c["user"], c["course"], c["batch"], "rc")


def test_issued_certificates_get_a_status_row_and_a_reissue_supersedes(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"ok": {}})
    generate = run_job(cert_preprocess, tmp_path, "pre", [issue_request(c, "ok")], extra_groups=(CertOptions,))[1]
    requests_ = read_topic(generate, "generate.certificate.request")
    run_job(cert_generate, tmp_path, "gen", requests_, extra_groups=(CertOptions,))
    (first,) = [x for x in cql.execute("SELECT cert_id, status, userid, courseid, template_id FROM certificate_status "
                                       "WHERE courseid = %s", (c["course"],))]
    assert (first.status, first.userid, first.template_id) == ("active", c["uid"]("ok"), c["tmpl"])
    again = run_job(cert_preprocess, tmp_path, "pre2", [issue_request(c, "ok", re_issue=True)],
                    extra_groups=(CertOptions,))[1]
    reissue = read_topic(again, "generate.certificate.request")
    assert reissue[0]["edata"]["oldId"] == first.cert_id
    run_job(cert_generate, tmp_path, "gen2", reissue, extra_groups=(CertOptions,))
    rows = {r.cert_id: r for r in cql.execute("SELECT cert_id, status, superseded_by FROM certificate_status "
                                              "WHERE courseid = %s", (c["course"],))}
    assert rows[first.cert_id].status == "superseded"
    (new_id,) = [k for k in rows if k != first.cert_id]
    assert rows[first.cert_id].superseded_by == new_id and rows[new_id].status == "active"


def test_bulk_revoke_produces_requests_the_updater_applies_once(cql, rc, tmp_path, run_id):
    certs = [issued_cert(cql, rc, run_id, n) for n in range(3)]
    cql.execute("UPDATE certificate_status SET batchid = %s WHERE cert_id = %s", (f"{run_id}_other", certs[2]["id"]))
    cql.execute("UPDATE certificate_status SET issued_at = %s WHERE cert_id = %s",
                (datetime(2024, 1, 1, tzinfo=UTC), certs[1]["id"]))
    cql.execute("UPDATE certificate_status SET issued_at = %s WHERE cert_id = %s",
                (datetime(2025, 1, 1, tzinfo=UTC), certs[0]["id"]))
    args = ("--from_cassandra", "--course_id", certs[0]["course"], "--batch_id", certs[0]["batch"],
            "--bulk_issued_from", str(int(datetime(2024, 6, 1, tzinfo=UTC).timestamp() * 1000)),
            "--bulk_reason", "course withdrawn", "--bulk_requested_by", "admin", "--bulk_requested_at", "5000")
    totals, out = run_job(cert_bulk_status, tmp_path, "bulk", None, *args, extra_groups=(CertOptions, CertBulkOptions))
    produced = read_topic(out, "certificate.status.request")
    assert [r["edata"]["certificateId"] for r in produced] == [certs[0]["id"]]  # batch and window applied
    assert totals["selected-certificate-count"] == 1 and totals["read-certificate-count"] == 3
    again = read_topic(run_job(cert_bulk_status, tmp_path, "bulk2", None, *args,
                               extra_groups=(CertOptions, CertBulkOptions))[1], "certificate.status.request")
    assert again == produced  # the same run twice: the same requests
    totals, audit, failed = change(tmp_path, rc, "apply", produced + again)
    assert failed == [] and len(audit) == 1 and totals["duplicate-change-count"] == 1
    assert audit[0]["edata"]["reason"] == "course withdrawn"
    assert [status(cql, c["id"]).status for c in certs] == ["revoked", "active", "active"]
    assert rc_record(rc, certs[0]["id"])["status"] == "REVOKED"
