"""The issue-certificate request: one builder for every job that asks for a certificate.

activity-aggregate-updater and enrolment-reconciliation emit it when an enrolment completes,
assessment-aggregator after a new best score (with ``attemptId``), and the certificate
pre-processor's backfill for a completed enrolment that has none. collection-cert-pre-processor
consumes it. The field set and key order are the reference's (``IssueCertificateUtil`` and the
assessment job's ``createIssueCertEvent``).
"""

from __future__ import annotations

from typing import Any

ISSUE_ACTION = "issue-certificate"


def issue_certificate_request(user_id: str, course_id: str, batch_id: str, now_ms: int, uid: str,
                              attempt_id: str | None = None) -> dict[str, Any]:
    """The ``BE_JOB_REQUEST``; ``uid`` makes its ``mid`` (``LP.<now_ms>.<uid>``)."""
    edata: dict[str, Any] = {"userIds": [user_id], "action": ISSUE_ACTION, "iteration": 1, "trigger": "auto-issue",
                             "batchId": batch_id, "reIssue": False, "courseId": course_id}
    if attempt_id is not None:
        edata["attemptId"] = attempt_id
    return {
        "eid": "BE_JOB_REQUEST",
        "ets": now_ms,
        "mid": f"LP.{now_ms}.{uid}",
        "actor": {"id": "Course Certificate Generator", "type": "System"},
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
        "object": {"id": f"{batch_id}_{course_id}", "type": "CourseCertificateGeneration"},
        "edata": edata,
    }
