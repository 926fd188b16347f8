"""Certificate rules: criteria (each operator, kind, combination, missing data), the
generate-certificate event field by field, generator validation and request builders."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pipelines.domain import certificates as C

REQ = C.IssueRequest("u1", "do_course", "b1")
STORAGE = C.StorageSettings(placeholder="CLOUD_BASE_PATH", base_url="https://base.example",
                            cname_url="https://cname.example", container="content")


def template(**over) -> dict:
    t = {"identifier": "tmpl_1", "name": "Course Completion", "url": "CLOUD_BASE_PATH/cert/t.svg",
         "criteria": json.dumps({"enrollment": {"status": 2}}),
         "issuer": json.dumps({"name": "Org", "url": "https://org.example"}),
         "signatoryList": json.dumps([{"name": "S", "id": "s1", "designation": "CEO", "image": "https://i/s.png"}])}
    t.update(over)
    return t


def enrolment(**over) -> dict:
    row = {"active": True, "status": 2, "completedon": datetime(2024, 5, 6, 7, 8, tzinfo=UTC),
           "issued_certificates": None, "progress": 3}
    row.update(over)
    return row


# ------------------------------------------------------------------------------ issue request


def test_parse_issue_request_valid_and_skips():
    ev = {"edata": {"action": "issue-certificate", "batchId": "b", "courseId": "c", "userIds": ["u", "v"],
                    "reIssue": True}}
    assert C.parse_issue_request(ev) == C.IssueRequest("u", "c", "b", True)
    for bad in ({}, {"edata": "x"}, {"edata": {**ev["edata"], "action": "other"}},
                {"edata": {**ev["edata"], "userIds": []}}, {"edata": {**ev["edata"], "batchId": ""}},
                {"edata": {**ev["edata"], "courseId": 5}}):
        with pytest.raises(C.Skip):
            C.parse_issue_request(bad)


def test_usable_templates_keeps_svg_only():
    assert set(C.usable_templates({"a": {"url": "x.svg"}, "b": {"url": "x.pdf"}, "c": {}})) == {"a"}
    assert C.usable_templates(None) == {}


def test_template_criteria_validation():
    assert C.template_criteria(template(), "b1") == {"enrollment": {"status": 2}}
    for bad in (template(url=""), template(criteria="{}"), template(criteria=json.dumps({"other": 1}))):
        with pytest.raises(C.CertError, match="Invalid template for batch : b1"):
            C.template_criteria(bad, "b1")
    with pytest.raises(C.CertError, match="invalid JSON"):
        C.template_criteria(template(criteria="{broken"), "b1")


# ------------------------------------------------------------------------------ criteria


@pytest.mark.parametrize("op,target,score,ok", [
    ("EQ", 60, 60.0, True), ("eq", 60, 61.0, False), ("=", 60, 60.0, True),
    (">", 60, 60.0, False), (">", 60, 60.5, True), ("<", 60, 59.0, True), ("<", 60, 60.0, False),
    (">=", 60, 60.0, True), (">=", 60, 59.9, False), ("<=", 60, 60.0, True), ("<=", 60, 60.1, False),
    ("ne", 60, 60.0, False), ("!=", 60, 50.0, True), ("~", 60, 60.0, False),
])
def test_score_operators(op, target, score, ok):
    assert C.score_matches({"score": {op: target}}, score) is ok


def test_score_bare_number_and_missing():
    assert C.score_matches({"score": 80}, 80.0) and not C.score_matches({"score": 80}, 79.0)
    assert not C.score_matches({}, 100.0) and not C.score_matches({"score": {}}, 100.0)
    assert not C.score_matches({"score": {">": "x"}}, 100.0) and not C.score_matches({"score": True}, 1.0)


def test_assessment_scores_percent_and_defaults():
    scores = C.assessment_scores({"score:a": 4.0, "max_score:a": 5.0, "completedCount": 3.0}, {"score:b": 1})
    assert scores == {"a": 80.0, "b": 100.0}  # b has no max_score: the reference default 1
    assert C.assessment_scores(None, None) == {}


def test_enrolment_criteria():
    crit = {"status": 2}
    assert C.check_enrolment(REQ, crit, enrolment(), "Course Completion", {}).user_id == "u1"
    assert C.check_enrolment(REQ, crit, enrolment(status=1), "Course Completion", {}).user_id == ""
    assert C.check_enrolment(REQ, crit, enrolment(active=False), "Course Completion", {}).user_id == ""
    assert C.check_enrolment(REQ, crit, None, "Course Completion", {}).user_id == ""
    assert C.check_enrolment(REQ, {}, None, "x", {}).user_id == "u1"  # no enrolment criteria
    assert C.check_enrolment(REQ, {"status": "1"}, enrolment(status=1), "x", {}).user_id == "u1"
    issued = enrolment(issued_certificates=[{"name": "course completion", "identifier": "old-1"}])
    assert C.check_enrolment(REQ, crit, issued, "Course Completion", {}).user_id == ""
    re = C.check_enrolment(C.IssueRequest("u1", "c", "b", True), crit, issued, "Course Completion", {})
    assert (re.user_id, re.old_id) == ("u1", "old-1")
    props = C.check_enrolment(REQ, crit, enrolment(), "x", {"enrollment": ["progress"]}).props
    assert props == {"enrollment": {"progress": 3}}


def test_enrolment_props_are_json_as_the_reference_writes_them():
    """Issue 12: a timestamp column requested by ``additionalProps`` (``completedOn``) is epoch
    milliseconds in the reference's event JSON (Jackson writes a ``Date`` so), not Python's text."""
    row = enrolment(completedon=datetime(2026, 11, 30), datetime=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
                    contentstatus={"do_1": 2}, certificates=[{"name": "x"}])
    wanted = ["completedOn", "dateTime", "contentStatus", "certificates", "progress"]
    props = C.check_enrolment(REQ, {"status": 2}, row, "x", {"enrollment": wanted}).props["enrollment"]
    assert props == {"completedOn": 1795996800000, "dateTime": 1714979289123, "contentStatus": {"do_1": 2},
                     "certificates": [{"name": "x"}], "progress": 3}
    assert json.loads(json.dumps(props)) == props
    assert C.jackson_value({"s": {2, 1}, "n": None}) in ({"s": [1, 2], "n": None}, {"s": [2, 1], "n": None})


def test_assessment_and_user_criteria():
    assert C.check_assessment({"score": {">=": 50}}, "u1", {"a": 40.0, "b": 60.0}, {}) == ("u1", {})
    assert C.check_assessment({"score": {">=": 50}}, "u1", {}, {}) == ("", {})
    assert C.check_assessment({}, "u1", {}, {}) == ("u1", {})
    assert C.check_assessment({"score": {">": 1}}, "", {"a": 99.0}, {}) == ("", {})
    assert C.check_assessment({"score": {">": 1}}, "u1", {"a": 99.0}, {"assessment": ["score"]}) == (
        "u1", {"assessment": {"score": {"a": 99.0}}})
    assert C.check_user({"rootOrgId": "o1"}, {"rootOrgId": "o1", "x": 1})
    assert not C.check_user({"rootOrgId": "o1"}, {"rootOrgId": "o2"})
    assert not C.check_user({}, None) and C.check_user({}, {"a": 1})


def test_validate_cert_criteria_combinations():
    t = template(criteria=json.dumps({"enrollment": {"status": 2}, "assessment": {"score": {">=": 60}},
                                      "user": {"rootOrgId": "o1"}}))
    user = {"rootOrgId": "o1"}
    assert C.validate_cert_criteria(REQ, t, enrolment(), {"a": 75.0}, user).qualified
    d = C.validate_cert_criteria(REQ, t, enrolment(status=1), {"a": 75.0}, user)
    assert not d.qualified and "enrolment" in d.reason
    assert "assessment" in C.validate_cert_criteria(REQ, t, enrolment(), {"a": 50.0}, user).reason
    assert "user" in C.validate_cert_criteria(REQ, t, enrolment(), {"a": 75.0}, {"rootOrgId": "o2"}).reason
    assert "user" in C.validate_cert_criteria(REQ, t, enrolment(), {"a": 75.0}, None).reason
    only_assess = template(criteria=json.dumps({"assessment": {"score": 100}}))
    assert C.validate_cert_criteria(REQ, only_assess, None, {"a": 100.0}, {"x": 1}).qualified


# ------------------------------------------------------------------------- generate-certificate


def test_build_cert_request_field_by_field():
    t = template(additionalProps=json.dumps({"user": ["rootOrgId"], "course": ["name"], "location": ["state"]}))
    user = {"firstName": "Ada", "lastName": "null", "rootOrgId": "org1",
            "userLocations": [{"type": "state", "name": "Goa"}, {"type": "district", "name": "N"}]}
    decision = C.validate_cert_criteria(REQ, t, enrolment(), {}, user)
    ev = C.build_cert_request(REQ, t, decision, user, "Maths 101", "https://certs.example", STORAGE, 1700000000000,
                            new_id=lambda: "fixed")
    assert ev == {
        "actor": {"id": "Certificate Generator", "type": "System"},
        "eid": "BE_JOB_REQUEST",
        "edata": {
            "issuedDate": "2024-05-06",
            "data": [{"recipientName": "Ada", "recipientId": "u1"}],
            "criteria": {"narrative": "Course Completion"},
            "svgTemplate": "https://cname.example/content/cert/t.svg",
            "oldId": "",
            "templateId": "tmpl_1",
            "userId": "u1",
            "orgId": "org1",
            "issuer": {"name": "Org", "url": "https://org.example"},
            "signatoryList": [{"name": "S", "id": "s1", "designation": "CEO", "image": "https://i/s.png"}],
            "courseName": "Maths 101",
            "basePath": "https://certs.example/certs",
            "related": {"batchId": "b1", "courseId": "do_course", "type": "Course Completion",
                        "location": {"state": "Goa"}, "rootOrgId": "org1", "course": {"name": "Maths 101"}},
            "name": "Course Completion",
            "tag": "b1",
        },
        "ets": 1700000000000,
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform"}},
        "mid": "LMS.fixed",
        "object": {"id": "u1", "type": "GenerateCertificate"},
    }


def test_build_cert_request_without_completion_date_uses_now():
    t = template(criteria=json.dumps({"users": {}}))
    d = C.CertDecision(True, C.EnrolledUser("u1"))
    ev = C.build_cert_request(REQ, t, d, {}, "c", "https://x", STORAGE, 0)
    assert ev["edata"]["issuedDate"] == "1970-01-01" and ev["edata"]["data"][0]["recipientName"] == ""


def test_placeholder_and_text_cleaning():
    assert C.replace_placeholder("CLOUD_BASE_PATH/a.svg", C.StorageSettings(cname_url="")) == \
        "https://sunbirddev.blob.core.windows.net/sunbird-content-staging/a.svg"
    assert C.replace_placeholder("https://x/a.svg", STORAGE) == "https://x/a.svg"
    assert C.clean_text("Ma\nths\t 1\x00") == "Maths 1"


# ----------------------------------------------------------------------------------- generator


def gen_event(**edata) -> dict:
    e = {"name": "Course Completion", "svgTemplate": "CLOUD_BASE_PATH/t.svg", "templateId": "tmpl_1",
         "data": [{"recipientName": "O'Brien <b>&\"Co\"", "recipientId": "u1"}],
         "issuer": {"name": "Org & Sons", "url": "https://org.example"}, "userId": "u1",
         "signatoryList": [{"name": "S<1>", "id": "s1", "designation": "CEO", "image": "https://i/s.png"}],
         "criteria": {"narrative": "Course Completion"}, "courseName": "Maths <1>", "basePath": "https://x/certs",
         "related": {"batchId": "b1", "courseId": "do_course"}, "tag": "b1", "oldId": ""}
    e.update(edata)
    return {"eid": "BE_JOB_REQUEST", "edata": e}


def test_validate_generate_request_messages():
    req = C.validate_generate_request(gen_event(), False)
    assert (req.user_id, req.course_id, req.batch_id, req.template_id, req.name) == \
        ("u1", "do_course", "b1", "tmpl_1", "Course Completion")
    cases = [({"name": ""}, "edata.name"), ({"svgTemplate": None}, "edata.svgTemplate"),
             ({"data": []}, "edata.data is missing"), ({"data": [{"recipientName": " "}]}, "edata.data.recipientName"),
             ({"issuer": {}}, "edata.issuer is missing"), ({"issuer": {"name": "x"}}, "edata.issuer.url"),
             ({"criteria": {}}, "edata.criteria"), ({"tag": "b-1"}, "Invalid value b-1 for parameter tag"),
             ({"basePath": "not a url"}, "certificate.basePath"), ({"keys": {"x": 1}}, "edata.keys.id")]
    for over, msg in cases:
        with pytest.raises(C.CertError, match=msg.replace(".", r"\.")):
            C.validate_generate_request(gen_event(**over), False)
    with pytest.raises(C.CertError, match="edata is missing"):
        C.validate_generate_request({}, False)


def test_missing_signatory_is_suppressed_or_fails():
    req = C.validate_generate_request(gen_event(signatoryList=[]), True)
    assert "edata.signatoryList" in req.signatory_problem
    with pytest.raises(C.CertError, match="signatoryList"):
        C.validate_generate_request(gen_event(signatoryList=[{"name": "x"}]), False)


def test_issuance_problem_rejects_altered_copies():
    """Issue 12: copies of one request with another templateId or oldId were new issuances."""
    templates = {"tmpl_1": {"name": "Course Completion"}}
    issued = [{"name": "course completion", "identifier": "cert-1"}, {"name": "Other", "identifier": "cert-9"}]
    ok = C.validate_generate_request(gen_event(), True)
    assert C.issuance_problem(ok, templates, None) == ""
    other_template = C.validate_generate_request(gen_event(templateId="tmpl_x"), True)
    assert "'tmpl_x' is not a certificate template of batch b1" in C.issuance_problem(other_template, templates, None)
    assert "not a certificate template" in C.issuance_problem(ok, None, None)
    extra = C.validate_generate_request(gen_event(data=[{"recipientName": "A", "recipientId": "u1"},
                                                        {"recipientName": "B", "recipientId": "u2"}]), True)
    assert "recipients ['u2'] are not the request's learner u1" in C.issuance_problem(extra, templates, None)
    reissue = C.validate_generate_request(gen_event(oldId="cert-1"), True)
    assert C.issuance_problem(reissue, templates, issued) == ""
    for old in ("cert-9", "invented"):  # another template's certificate, or none of the learner's
        forged = C.validate_generate_request(gen_event(oldId=old), True)
        assert f"oldId '{old}' is not the learner's issued certificate 'Course Completion' (cert-1)" == \
            C.issuance_problem(forged, templates, issued)
    replayed = C.validate_generate_request(gen_event(oldId="replaced"), True)
    asked = []
    assert C.issuance_problem(replayed, templates, issued, lambda: asked.append(1) or True) == "" and asked == [1]
    assert C.issuance_problem(ok, templates, issued, lambda: asked.append(2) or True) == "" and asked == [1]


def test_claim_conflict_duplicate_or_takeover():
    now = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert C.claim_conflict({"state": "issued", "claimed_at": datetime(2020, 1, 1)}, now, 300) == "duplicate"
    assert C.claim_conflict({"state": "claimed", "claimed_at": datetime(2024, 1, 1, 11, 58)}, now, 300) == "duplicate"
    assert C.claim_conflict({"state": "created", "claimed_at": datetime(2024, 1, 1, 11, 54)}, now, 300) == "takeover"
    assert C.claim_conflict({"state": "claimed", "claimed_at": None}, now, 300) == "takeover"


def test_certificate_id_is_deterministic():
    a = C.certificate_id("u", "c", "b", "t")
    assert a == C.certificate_id("u", "c", "b", "t") and a != C.certificate_id("u", "c", "b", "t2")
    assert a != C.certificate_id("u", "c", "b", "t", "old") and len(a) == 36


def test_rc_create_request_escaped_and_reissue():
    req = C.validate_generate_request(gen_event(oldId="old-1"), True)
    body = C.rc_create_request(req, req.recipients[0], "kid-1", STORAGE)
    assert body == {
        "certificateLabel": "Course Completion", "status": "ACTIVE",
        "templateUrl": "https://cname.example/content/t.svg",
        "training": {"id": "do_course", "name": "Maths &lt;1&gt;", "type": "Course", "batchId": "b1"},
        "recipient": {"id": "u1", "name": "O&apos;Brien &lt;b&gt;&amp;&quot;Co&quot;", "type": None},
        "issuer": {"url": "https://org.example", "name": "Org &amp; Sons", "kid": "kid-1"},
        "signatory": [{"name": "S&lt;1&gt;", "id": "s1", "designation": "CEO", "image": "https://i/s.png"}],
        "oldId": "old-1"}
    raw = C.rc_create_request(req, req.recipients[0], None, STORAGE, escape=False)
    assert raw["recipient"]["name"] == "O'Brien <b>&\"Co\"" and json.loads(json.dumps(raw)) == raw


def test_remove_bad_chars_reference_default():
    text = json.dumps({"n": "A\\aaaBØÝC"}, ensure_ascii=False)
    assert C.remove_bad_chars(text, C.DEFAULT_BAD_CHARS) == '{"n": "ABC"}'
    assert C.remove_bad_chars("a\\x00b", C.DEFAULT_BAD_CHARS) == "ab"


def test_issued_certificates_after_replaces_same_name():
    now = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    out = C.issued_certificates_after([{"name": "COURSE COMPLETION", "identifier": "old"}, {"name": "Other"}],
                                      "Course Completion", "new", now, "https://t.svg", "TrainingCertificate")
    assert out == [{"name": "Other"}, {"name": "Course Completion", "identifier": "new", "token": "",
                                       "lastIssuedOn": "2024-01-02T03:04:05.678+0000",
                                       "templateUrl": "https://t.svg", "type": "TrainingCertificate"}]
    assert "templateUrl" not in C.issued_certificates_after(None, "n", "i", now, "t", "e", rc_enabled=False)[0]


def test_audit_event_fields():
    ev = C.certificate_audit_event("u1", "c1", "b1", "cert-1", 5, new_id=lambda: "id")
    assert ev == {"eid": "AUDIT", "ets": 5, "mid": "LP.AUDIT.5.id", "ver": "3.0",
                  "actor": {"id": "u1", "type": "User"},
                  "context": {"channel": "in.ekstep", "env": "Course", "sid": "id", "did": "id",
                              "pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform",
                                        "pid": "course-certificate-generator"},
                              "cdata": [{"type": "CourseBatch", "id": "b1"}]},
                  "object": {"id": "cert-1", "type": "Certificate", "rollup": {"l1": "c1"}},
                  "edata": {"props": ["certificates"], "type": "certificate-issued-svg"}}


def test_feed_and_notification_requests():
    feed = C.user_feed_request("u1", 'Course "A"', "c1")
    assert json.loads(json.dumps(feed))["request"]["data"]["actionData"]["title"] == 'Course "A"'
    nt = C.notify_template({"t": {"notifyTemplate": json.dumps({"subject": "s", "stateImageUrl":
                                                                 "CLOUD_BASE_PATH/i.png"})}}, "t", STORAGE)
    assert nt == {"subject": "s", "stateImageUrl": "https://cname.example/content/i.png"}
    assert C.notify_template({"t": {}}, "t", STORAGE) is None and C.notify_template(None, "t", STORAGE) is None
    reqs = C.notification_requests(nt, {"firstName": "Ada", "maskedPhone": "******12"}, "u1", "Maths",
                                   datetime(2024, 5, 6, tzinfo=UTC), "Sunbird")
    assert reqs[0]["request"] == {**nt, "firstName": "Ada", "TrainingName": "Maths", "heldDate": "2024-05-06",
                                  "recipientUserIds": ["u1"], "body": "email body"}
    assert reqs[1]["body"] == "sms" and reqs[1]["request"]["body"].endswith("update your Sunbird app")
    assert len(C.notification_requests(nt, {"firstName": "A"}, "u1", "M", None, "S")) == 1


def test_bad_chars_are_cleaned_from_values_before_serialising():
    """Issue 12: cleaning the serialized JSON left ``"Ada\\"`` (a backslash escaping the closing
    quote) for a name ending in the text ``\\x00``, and let a real NUL through."""
    req = C.validate_generate_request(gen_event(data=[{"recipientName": "Ada\\x00", "recipientId": "u1"}],
                                                courseName="Maths\x00 \\\\aaa101Ø"), True)
    body = C.clean_values(C.rc_create_request(req, req.recipients[0], "kid", STORAGE), C.DEFAULT_BAD_CHARS)
    text = json.dumps(body, ensure_ascii=False)
    assert json.loads(text) == body
    assert body["recipient"]["name"] == "Ada" and body["training"]["name"] == "Maths 101"
    assert "\x00" not in text and "\\u0000" not in json.dumps(body)
    assert C.clean_values({"n": ["a\\aaab", 3, None]}, C.DEFAULT_BAD_CHARS) == {"n": ["ab", 3, None]}
    assert C.bad_char_forms("\\x00,\\u00e9,Ø") == ("\\x00", "\x00", "\\u00e9", "é", "Ø")
