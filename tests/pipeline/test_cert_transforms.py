"""The certificate composites on their own (TestPipeline + assert_that, Beam's leader_board_test
shape) against the real Cassandra and the Sunbird emulator: ``ValidateCertCriteria``
(pre-processor), ``IssueRC`` (generator) and ``NotifyLearner`` (notification and feed)."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import cert_generate, cert_preprocess
from pipelines.domain.failures import failure_reason
from pipelines.options import parse_job_options
from pipelines.options.certificates import CertOptions, cert_settings
from pipelines.transforms.cert_criteria import ValidateCertCriteria
from pipelines.transforms.cert_notify import NotifyLearner
from pipelines.transforms.issue_rc import IssueRC
from tests.pipeline.test_cert_jobs import (
    cert_template,
    emulator_requests,
    issue_request,
    issued,
    preprocess,
    rc_creates,
    seed,
)


def settings(module):
    opts = parse_job_options(["--input=x"], extra_groups=(CertOptions,), defaults=module.defaults("local"))
    return cert_settings(opts, module.JOB_NAME)


def reasons(failed: list[dict]) -> list[str]:
    return sorted(failure_reason(f) for f in failed)


def test_validate_cert_criteria_generates_skips_and_fails(cql, run_id):
    c = seed(cql, run_id, {"ok": {}, "todo": {"status": 1}})
    bad = seed(cql, run_id + "x", {"a": {}}, {f"{run_id}x_tmpl": {**cert_template(run_id), "criteria": "{}"}})
    requests = [issue_request(c, "ok"), issue_request(c, "todo"), {"edata": {"action": "other"}},
                issue_request(bad, "a")]
    with TestPipeline() as p:
        generate, failed = p | beam.Create(requests) | ValidateCertCriteria(settings(cert_preprocess))
        assert_that(generate | "Who" >> beam.Map(lambda g: (g["edata"]["userId"], g["edata"]["templateId"],
                                                            g["object"]["type"])),
                    equal_to([(c["uid"]("ok"), c["tmpl"], "GenerateCertificate")]), label="generate")
        assert_that(failed | "Why" >> beam.Map(lambda f: (f["edata"]["userIds"], failure_reason(f))),
                    equal_to([([bad["uid"]("a")], f"template {run_id}x_tmpl: Invalid template for batch : "
                                                  f"{bad['batch']}")]), label="failed")


def test_issue_rc_issues_once_and_fails_invalid_requests(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"a": {}})
    uid = c["uid"]("a")
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    no_recipients = {**gen[0], "edata": {**gen[0]["edata"], "data": []}}
    with TestPipeline() as p:
        audit, issued_out, failed = (p | beam.Create([gen[0], gen[0], no_recipients])
                                     | IssueRC(settings(cert_generate)))
        assert_that(audit | "Actor" >> beam.Map(lambda a: (a["actor"]["id"], a["edata"]["type"])),
                    equal_to([(uid, "certificate-issued-svg")]), label="audit")
        assert_that(issued_out | "Rec" >> beam.Map(lambda r: (r["userId"], r["templateId"], r["source"]["mid"])),
                    equal_to([(uid, c["tmpl"], gen[0]["mid"])]), label="issued")
        assert_that(failed | "Why" >> beam.Map(failure_reason),
                    equal_to(["Mandatory parameter edata.data is missing."]), label="failed")
    certs = issued(cql, c, "a")
    assert len(certs) == 1 and len(rc_creates(uid)) == 1


def test_notify_learner_notifies_and_dead_letters_unknown_user(cql, run_id):
    c = seed(cql, run_id, {"a": {}})
    uid, ghost = c["uid"]("a"), f"{run_id}_ghost"

    def record(user):
        return {"userId": user, "courseId": c["course"], "batchId": c["batch"], "courseName": "Maths",
                "templateId": c["tmpl"], "issuedOn": 1714989600000, "certificateId": f"1-{user}",
                "source": {"mid": f"src-{user}"}}

    with TestPipeline() as p:
        failed = p | beam.Create([record(uid), record(ghost)]) | NotifyLearner(settings(cert_generate))
        assert_that(failed | beam.Map(lambda f: (f["mid"], f["failInfo"]["stage"], "404" in failure_reason(f))),
                    equal_to([(f"src-{ghost}", "notify", True)]))
    notes = [r["body"]["request"] for r in emulator_requests("/v2/notification", "POST")
             if r["body"]["request"]["recipientUserIds"] == [uid]]
    assert [n["heldDate"] for n in notes] == ["2024-05-06", "2024-05-06"]  # email + sms
    feeds = [r for r in emulator_requests("/private/user/feed/v1/create", "POST")
             if r["body"]["request"]["userId"] in (uid, ghost)]
    assert len(feeds) == 2
