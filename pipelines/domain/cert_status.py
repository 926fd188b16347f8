"""Certificate status changes (revoke, suspend, unsuspend) as pure rules (no Beam, no servers).

The reference can issue a certificate but never take one back. lern-beam reads
``certificate-status`` requests (``<env>.certificate.status.request``) and applies them to the
credential's row in ``certificate_status`` with a lightweight transaction (the commit point; the
transform does the IO). The rules here decide what a request does to a row:

- **Revocation is terminal.** ``revoke`` applies to an active or suspended credential whatever
  its ``requestedAt``; nothing changes a revoked (or superseded) credential afterwards.
- **Suspension is ordered.** ``suspend``/``unsuspend`` are last-writer-wins on
  ``(requestedAt, requestId)``: a request older than the last one applied is a counted no-op
  (``stale``), so a late ``suspend`` cannot undo a newer ``unsuspend``. A newer request for the
  state the credential already has moves the clock only (``advance``), so the order stays right.
- **Replays change nothing.** The row keeps the id of the last request applied; the same request
  again is a ``duplicate``.
- **Deterministic audit.** The AUDIT event of an applied change has its ``mid``, ``ets`` and ids
  derived from the request, so a replay that races the commit still emits the same event.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.domain.errors import InvalidRequest, Skip

ACTION = "certificate-status"
CHANGES = ("revoke", "suspend", "unsuspend")
ACTIVE, SUSPENDED, REVOKED, SUPERSEDED = "active", "suspended", "revoked", "superseded"
TERMINAL = (REVOKED, SUPERSEDED)
TARGET = {"revoke": REVOKED, "suspend": SUSPENDED, "unsuspend": ACTIVE}
AUDIT_TYPE = {REVOKED: "certificate-revoked", SUSPENDED: "certificate-suspended", ACTIVE: "certificate-reinstated"}
STATUS_NAMESPACE = uuid.UUID("0b5a7c1e-5f0d-5d6b-8f4e-1c2d3e4f5a6b")
MAX_ID_CHARS = 256
MAX_REASON_CHARS = 1024
MAX_EPOCH_MS = 2 ** 53 - 1  # beyond any real time; also keeps the value exact in JSON
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")


class StatusRequestError(InvalidRequest):
    """A certificate-status request that cannot be applied; the message says why."""


@dataclass(frozen=True)
class StatusRequest:
    request_id: str
    certificate_id: str
    change: str
    requested_at: int
    user_id: str = ""
    course_id: str = ""
    batch_id: str = ""
    reason: str = ""
    requested_by: str = ""
    event: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def order(self) -> tuple[int, str]:
        return self.requested_at, self.request_id


def _text(edata: Mapping[str, Any], key: str, required: bool, limit: int = MAX_ID_CHARS,
          pattern: re.Pattern | None = _ID_RE) -> str:
    value = edata.get(key)
    if value is None or value == "":
        if required:
            raise StatusRequestError(f"edata.{key} is missing")
        return ""
    if not isinstance(value, str):
        raise StatusRequestError(f"edata.{key} must be a string")
    if len(value) > limit:
        raise StatusRequestError(f"edata.{key} is longer than {limit} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise StatusRequestError(f"edata.{key} has characters an id cannot have")
    return value


def _epoch_ms(value: Any) -> int:
    """``requestedAt``: epoch milliseconds as a JSON integer (a bool, float or text is rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StatusRequestError("edata.requestedAt must be epoch milliseconds (an integer)")
    if not 0 <= value <= MAX_EPOCH_MS:
        raise StatusRequestError("edata.requestedAt is out of range")
    return value


def parse_status_request(event: Mapping[str, Any]) -> list[StatusRequest]:
    """A ``certificate-status`` BE_JOB_REQUEST -> the request; another action is a ``Skip``."""
    edata = event.get("edata") if isinstance(event, Mapping) else None
    if not isinstance(edata, Mapping) or edata.get("action") != ACTION:
        raise Skip("not a certificate-status request")
    change = edata.get("change")
    if change not in CHANGES:
        raise StatusRequestError(f"edata.change must be one of {', '.join(CHANGES)}")
    return [StatusRequest(
        request_id=_text(edata, "requestId", True), certificate_id=_text(edata, "certificateId", True),
        change=change, requested_at=_epoch_ms(edata.get("requestedAt")),
        user_id=_text(edata, "userId", False), course_id=_text(edata, "courseId", False),
        batch_id=_text(edata, "batchId", False),
        reason=_text(edata, "reason", False, MAX_REASON_CHARS, None),
        requested_by=_text(edata, "requestedBy", False), event=dict(event))]


def ownership_problem(req: StatusRequest, row: Mapping[str, Any]) -> str | None:
    """A request naming a learner, course or batch must name the credential's own."""
    for attr, column, key in (("user_id", "userid", "userId"), ("course_id", "courseid", "courseId"),
                              ("batch_id", "batchid", "batchId")):
        want = getattr(req, attr)
        if want and row.get(column) and want != row.get(column):
            return f"certificate {req.certificate_id} is not the certificate of {key} {want}"
    return None


@dataclass(frozen=True)
class Decision:
    """``kind``: ``apply`` (status changes), ``advance`` (clock only), or a no-op: ``duplicate``,
    ``stale``, ``terminal``."""

    kind: str
    status: str

    @property
    def writes(self) -> bool:
        return self.kind in ("apply", "advance")


def decide(row: Mapping[str, Any], req: StatusRequest) -> Decision:
    """What ``req`` does to the credential's row (``status``, ``changed_at``, ``change_request``)."""
    status = row.get("status") or ACTIVE
    if row.get("change_request") == req.request_id:
        return Decision("duplicate", status)
    if status in TERMINAL:
        return Decision("terminal", status)
    if req.change == "revoke":
        return Decision("apply", REVOKED)
    last = (int(row.get("changed_at") or 0), row.get("change_request") or "")
    if req.order <= last:
        return Decision("stale", status)
    target = TARGET[req.change]
    return Decision("advance" if target == status else "apply", target)


def audit_mid(req: StatusRequest) -> str:
    return f"LP.AUDIT.{req.requested_at}.{uuid.uuid5(STATUS_NAMESPACE, f'{req.certificate_id}|{req.request_id}')}"


def status_audit_event(req: StatusRequest, row: Mapping[str, Any], new_status: str) -> dict[str, Any]:
    """The AUDIT event of an applied change, every field derived from the request and the row."""
    seed = f"{req.certificate_id}|{req.request_id}"
    cdata = [{"type": "CourseBatch", "id": row["batchid"]}] if row.get("batchid") else []
    edata: dict[str, Any] = {"props": ["status"], "type": AUDIT_TYPE[new_status], "state": new_status,
                             "prevstate": row.get("status") or ACTIVE, "requestId": req.request_id}
    if req.reason:
        edata["reason"] = req.reason
    if req.requested_by:
        edata["requestedBy"] = req.requested_by
    return {
        "eid": "AUDIT", "ets": req.requested_at, "mid": audit_mid(req), "ver": "3.0",
        "actor": {"id": req.requested_by or "Certificate Status Updater",
                  "type": "User" if req.requested_by else "System"},
        "context": {"channel": "in.ekstep", "env": "Course",
                    "sid": str(uuid.uuid5(STATUS_NAMESPACE, f"sid|{seed}")),
                    "did": str(uuid.uuid5(STATUS_NAMESPACE, f"did|{seed}")),
                    "pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform",
                              "pid": "certificate-status-updater"},
                    "cdata": cdata},
        "object": {"id": req.certificate_id, "type": "Certificate",
                   "rollup": {"l1": row.get("courseid") or ""}},
        "edata": edata,
    }


def status_request_event(certificate_id: str, change: str, requested_at: int, request_id: str, *,
                         user_id: str = "", course_id: str = "", batch_id: str = "", reason: str = "",
                         requested_by: str = "") -> dict[str, Any]:
    """A ``certificate-status`` request (what bulk revoke produces; ``mid`` derived from the request)."""
    edata = {"action": ACTION, "requestId": request_id, "certificateId": certificate_id, "userId": user_id,
             "courseId": course_id, "batchId": batch_id, "change": change, "reason": reason,
             "requestedBy": requested_by, "requestedAt": requested_at}
    return {"eid": "BE_JOB_REQUEST", "ets": requested_at,
            "mid": f"LMS.{uuid.uuid5(STATUS_NAMESPACE, f'request|{certificate_id}|{request_id}')}",
            "actor": {"id": "Certificate Status Updater", "type": "System"},
            "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform"}},
            "object": {"id": certificate_id, "type": "CertificateStatus"},
            "edata": {k: v for k, v in edata.items() if v != ""}}


def request_key(event: Mapping[str, Any]) -> str | None:
    """The Kafka key of a status request: its certificate id (one certificate, one partition, in order)."""
    edata = event.get("edata")
    cert_id = edata.get("certificateId") if isinstance(edata, Mapping) else None
    return cert_id if isinstance(cert_id, str) else None


def bulk_request_id(run_id: str, certificate_id: str) -> str:
    """One bulk run's request for one certificate: re-running the same run replays the same requests."""
    return f"bulk-{uuid.uuid5(STATUS_NAMESPACE, f'bulk|{run_id}|{certificate_id}')}"


def selected_for_bulk(row: Mapping[str, Any], batch_id: str | None, issued_from_ms: int | None,
                      issued_to_ms: int | None) -> bool:
    """A bulk selection: the batch (if given) and ``issued_at`` in ``[from, to)`` (if given)."""
    if batch_id and row.get("batchid") != batch_id:
        return False
    issued = row.get("issued_at_ms")
    if issued_from_ms is not None and (issued is None or issued < issued_from_ms):
        return False
    if issued_to_ms is not None and (issued is None or issued >= issued_to_ms):
        return False
    return (row.get("status") or ACTIVE) not in TERMINAL


def row_from_rc_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A credential issued before the status table existed, from its Sunbird RC record."""
    training = record.get("training") if isinstance(record.get("training"), Mapping) else {}
    recipient = record.get("recipient") if isinstance(record.get("recipient"), Mapping) else {}
    revoked = str(record.get("status") or "").upper() == "REVOKED"
    return {"userid": str(recipient.get("id") or ""), "courseid": str(training.get("id") or ""),
            "batchid": str(training.get("batchId") or ""), "status": REVOKED if revoked else ACTIVE}


def issued_certificates_without(current: list[Mapping[str, Any]] | None, cert_id: str) -> list[dict] | None:
    """``issued_certificates`` without the entry of ``cert_id`` (``cert.status.update.enrolment``), or
    ``None`` when it has no such entry (nothing to write)."""
    kept = [dict(c) for c in (current or []) if c.get("identifier") != cert_id]
    return kept if len(kept) != len(current or []) else None
