"""Certificate status rules (pipelines.domain.cert_status): parsing, ordering, terminal states, audit."""

from __future__ import annotations

import pytest

from pipelines.domain import cert_status as S
from pipelines.domain.errors import InvalidRequest, Skip


def event(**edata):
    base = {"action": "certificate-status", "requestId": "r1", "certificateId": "1-abc", "change": "revoke",
            "requestedAt": 1000, "userId": "u1", "courseId": "c1", "batchId": "b1", "reason": "fraud",
            "requestedBy": "admin1"}
    base.update(edata)
    return {"eid": "BE_JOB_REQUEST", "mid": "m1", "edata": {k: v for k, v in base.items() if v is not None}}


def req(change="suspend", at=1000, rid="r1", **kw):
    return S.parse_status_request(event(change=change, requestedAt=at, requestId=rid, **kw))[0]


def row(status="active", changed_at=0, change_request=None, **kw):
    return {"status": status, "changed_at": changed_at, "change_request": change_request, "version": 1,
            "userid": "u1", "courseid": "c1", "batchid": "b1", **kw}


def test_parse_keeps_every_field_and_the_event():
    (r,) = S.parse_status_request(event())
    assert (r.request_id, r.certificate_id, r.change, r.requested_at) == ("r1", "1-abc", "revoke", 1000)
    assert (r.user_id, r.course_id, r.batch_id, r.reason, r.requested_by) == ("u1", "c1", "b1", "fraud", "admin1")
    assert r.event == event()


def test_another_action_is_a_skip():
    with pytest.raises(Skip):
        S.parse_status_request({"edata": {"action": "issue-certificate"}})
    with pytest.raises(Skip):
        S.parse_status_request({"edata": "x"})


@pytest.mark.parametrize("edata, reason", [
    ({"change": "delete"}, "edata.change must be one of"),
    ({"certificateId": None}, "edata.certificateId is missing"),
    ({"certificateId": 12}, "edata.certificateId must be a string"),
    ({"certificateId": "a/../b"}, "characters an id cannot have"),
    ({"certificateId": "x" * 300}, "longer than 256"),
    ({"requestId": None}, "edata.requestId is missing"),
    ({"requestedAt": "1000"}, "epoch milliseconds"),
    ({"requestedAt": True}, "epoch milliseconds"),
    ({"requestedAt": 1.5}, "epoch milliseconds"),
    ({"requestedAt": -1}, "out of range"),
    ({"requestedAt": int("9" * 1000)}, "out of range"),
    ({"reason": "r" * 200_000}, "edata.reason is longer than 1024"),
])
def test_bad_requests_fail_with_the_reason(edata, reason):
    with pytest.raises(InvalidRequest, match=reason):
        S.parse_status_request(event(**edata))


def test_revocation_applies_whatever_its_time_and_is_terminal():
    assert S.decide(row("active"), req("revoke", 5)) == S.Decision("apply", "revoked")
    assert S.decide(row("suspended", changed_at=9000, change_request="r0"), req("revoke", 5)) \
        == S.Decision("apply", "revoked")
    for change in S.CHANGES:
        assert S.decide(row("revoked", 9000, "r0"), req(change, 99999)).kind == "terminal"
        assert S.decide(row("superseded"), req(change, 99999)).kind == "terminal"


def test_suspension_is_ordered_by_requested_at_then_request_id():
    suspended = row("suspended", changed_at=2000, change_request="r2")
    assert S.decide(suspended, req("unsuspend", 3000, "r3")) == S.Decision("apply", "active")
    assert S.decide(suspended, req("unsuspend", 1500, "r3")) == S.Decision("stale", "suspended")
    assert S.decide(suspended, req("unsuspend", 2000, "r1")).kind == "stale"  # same time: request id decides
    assert S.decide(suspended, req("unsuspend", 2000, "r9")).kind == "apply"
    assert S.decide(row("active"), req("suspend", 1)) == S.Decision("apply", "suspended")


def test_a_newer_request_for_the_current_state_moves_the_clock_only():
    assert S.decide(row("suspended", 2000, "r2"), req("suspend", 3000, "r3")) == S.Decision("advance", "suspended")
    assert S.decide(row("active", 2000, "r2"), req("unsuspend", 3000, "r3")) == S.Decision("advance", "active")
    assert S.Decision("advance", "active").writes and not S.Decision("stale", "active").writes


def test_a_replayed_request_is_a_duplicate():
    assert S.decide(row("suspended", 2000, "r2"), req("suspend", 2000, "r2")).kind == "duplicate"
    assert S.decide(row("revoked", 2000, "r2"), req("revoke", 2000, "r2")).kind == "duplicate"


def test_ownership_is_checked_on_the_fields_the_request_names():
    assert S.ownership_problem(req(), row()) is None
    assert S.ownership_problem(req(userId=None, courseId=None, batchId=None), row()) is None
    assert S.ownership_problem(req(userId="u2"), row()) == "certificate 1-abc is not the certificate of userId u2"
    assert "courseId c9" in S.ownership_problem(req(courseId="c9"), row())


def test_audit_event_is_deterministic_and_describes_the_change():
    r = req("revoke", 1234, "rq")
    a = S.status_audit_event(r, row("suspended"), "revoked")
    assert a == S.status_audit_event(req("revoke", 1234, "rq"), row("suspended"), "revoked")
    assert a["mid"] == S.audit_mid(r) and a["mid"].startswith("LP.AUDIT.1234.")
    assert a["ets"] == 1234 and a["eid"] == "AUDIT"
    assert a["object"] == {"id": "1-abc", "type": "Certificate", "rollup": {"l1": "c1"}}
    assert a["context"]["cdata"] == [{"type": "CourseBatch", "id": "b1"}]
    assert a["edata"] == {"props": ["status"], "type": "certificate-revoked", "state": "revoked",
                          "prevstate": "suspended", "requestId": "rq", "reason": "fraud", "requestedBy": "admin1"}
    assert a["actor"] == {"id": "admin1", "type": "User"}
    assert S.status_audit_event(req("revoke", 1234, "other"), row(), "revoked")["mid"] != a["mid"]


def test_request_builder_round_trips_through_the_parser():
    ev = S.status_request_event("1-x", "suspend", 77, "bulk-1", course_id="c1", reason="policy")
    (r,) = S.parse_status_request(ev)
    assert (r.certificate_id, r.change, r.requested_at, r.request_id, r.course_id, r.reason, r.user_id) == \
        ("1-x", "suspend", 77, "bulk-1", "c1", "policy", "")
    assert ev == S.status_request_event("1-x", "suspend", 77, "bulk-1", course_id="c1", reason="policy")
    assert S.bulk_request_id("run", "1-x") == S.bulk_request_id("run", "1-x") != S.bulk_request_id("run2", "1-x")


def test_bulk_selection_by_batch_and_issue_window():
    r = row(issued_at_ms=5000)
    assert S.selected_for_bulk(r, None, None, None)
    assert S.selected_for_bulk(r, "b1", 5000, 5001) and not S.selected_for_bulk(r, "b2", None, None)
    assert not S.selected_for_bulk(r, None, 5001, None) and not S.selected_for_bulk(r, None, None, 5000)
    assert not S.selected_for_bulk(row(issued_at_ms=None), None, 1, None)
    assert not S.selected_for_bulk(row("revoked", issued_at_ms=5000), None, None, None)


def test_row_from_an_rc_record():
    rec = {"osid": "1-a", "status": "REVOKED", "recipient": {"id": "u1"}, "training": {"id": "c1", "batchId": "b1"}}
    assert S.row_from_rc_record(rec) == {"userid": "u1", "courseid": "c1", "batchid": "b1", "status": "revoked"}
    assert S.row_from_rc_record({"status": "ACTIVE"})["status"] == "active"


@pytest.mark.parametrize("module, flag", [("cert_status", "--cert_backend"), ("cert_bulk_status", "--bulk_change")])
def test_the_status_jobs_answer_help(module, flag):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", f"pipelines.{module}", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert flag in r.stdout and "--kafka_input_topic" in r.stdout


def test_issued_certificates_without_the_revoked_one():
    current = [{"name": "A", "identifier": "1-a"}, {"name": "B", "identifier": "1-b"}]
    assert S.issued_certificates_without(current, "1-a") == [{"name": "B", "identifier": "1-b"}]
    assert S.issued_certificates_without(current, "1-x") is None
    assert S.issued_certificates_without(None, "1-a") is None
