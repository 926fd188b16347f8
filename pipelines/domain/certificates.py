"""Certificate rules as pure functions over plain rows and dicts (no Beam, no servers).

Pre-processor (reference ``collection-cert-pre-processor``, ``IssueCertificateHelper``):
``parse_issue_request`` -> ``usable_templates`` -> ``validate_cert_criteria`` (enrolment status,
assessment score with operators, user profile) -> ``build_cert_request`` (the
``generate-certificate`` BE_JOB_REQUEST event, field by field).

Generator (reference ``collection-certificate-generator``): ``validate_generate_request``
(``CertValidator``), ``certificate_id`` (the deterministic id of one issuance, the exactly-once
key), ``rc_create_request`` (``generateRequest``), ``remove_bad_chars`` (``task.rc.badcharlist``),
``issued_certificates_after`` (``updateUserEnrollmentTable``), ``certificate_audit_event``,
``notification_request`` and ``user_feed_request`` (``NotifierFunction``, ``CreateUserFeedFunction``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse
from xml.sax.saxutils import escape as _xml_escape

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.domain.cert_request import ISSUE_ACTION, issue_certificate_request
from pipelines.domain.errors import InvalidRequest, Skip
from pipelines.options.fields import parse_bool, ref_option

USER_BLOCKED_CODES = ("UOS_USRRED0006", "USER_ACCOUNT_BLOCKED")
DEFAULT_BAD_CHARS = "\\x00,\\\\aaa,\\aaa,Ø,Ý"
USER_FEED_MSG = "You have earned a certificate! Download it from your profile page."
SMS_BODY = ("Congratulations! Download your course certificate from your profile page. If you have a problem "
            "downloading it on the mobile, update your {instance} app")
CERT_ID_NAMESPACE = uuid.UUID("6f0c2a52-3a0e-5d8e-9a57-4c45e2a1c0de")
_TAG_RE = re.compile(r"[!@#$%^&*()+=,.?/\":;'{}|<>\s-]")
NewId = Callable[[], str]


def _uuid() -> str:
    return str(uuid.uuid4())


class CertError(InvalidRequest):
    """A request that cannot be processed; the message is the failed event's reason."""


# ------------------------------------------------------------------------------------ options


class CertOptions(PipelineOptions):
    """collection-cert-pre-processor and collection-certificate-generator (reference conf keys)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "cert_domain_url", default="https://dev.sunbirded.org",
                   help="Certificate domain; basePath = <this>/certs.")
        ref_option(parser, "assessment.metrics.supported.contenttype", default="SelfAssess",
                   help="Comma-separated content types whose scores count for assessment criteria.")
        ref_option(parser, "enable.suppress.exception", default=True, type=parse_bool,
                   help="Pre-processor: content without metadata is ignored instead of failing the event. "
                        "Generator: an invalid signatory list is logged instead of failing the event.")
        ref_option(parser, "enable.rc.certificate", default=True, type=parse_bool,
                   help="Issue through Sunbird RC (the only path implemented; false fails events with a reason).")
        ref_option(parser, "cloud_storage_base_url", default="https://sunbirddev.blob.core.windows.net",
                   help="Cloud storage base URL (used when cloud_storage_cname_url is empty).")
        ref_option(parser, "cloud_store_base_path_placeholder", default="CLOUD_BASE_PATH",
                   help="Placeholder in template URLs replaced by <base url>/<content container>.")
        ref_option(parser, "content_cloud_storage_container", default="sunbird-content-staging",
                   help="Content container appended to the storage base URL.")
        ref_option(parser, "cloud_storage_cname_url", default="https://obj.dev.sunbirded.org",
                   help="CNAME of the storage; preferred over cloud_storage_base_url when set.")
        ref_option(parser, "task.rc.badcharlist", default=DEFAULT_BAD_CHARS,
                   help="Comma-separated substrings removed from the serialized RC create request.")
        ref_option(parser, "lms-cassandra.sbkeyspace", default="sunbird", help="Sunbird keyspace (cert_registry).")
        ref_option(parser, "lms-cassandra.certreg.table", default="cert_registry",
                   help="Legacy certificate registry table (old record deleted on re-issue when RC has none).")
        ref_option(parser, "sunbird_instance_name", default="Sunbird", help="Instance name in the SMS body.")
        ref_option(parser, "cert.claim.table", default="cert_issue_claims",
                   help="Table of the exactly-once issuance claims (lern-beam's own, in lms-cassandra.keyspace).")
        ref_option(parser, "cert.claim.lease.secs", default=300, type=int,
                   help="Seconds after which an unfinished claim of a crashed worker may be taken over.")
        ref_option(parser, "cert.escape.xml", default=True, type=parse_bool,
                   help="XML-escape the values RC substitutes into the SVG template (names, course name).")


@dataclass(frozen=True)
class StorageSettings:
    placeholder: str = "CLOUD_BASE_PATH"
    base_url: str = "https://sunbirddev.blob.core.windows.net"
    cname_url: str = ""
    container: str = "sunbird-content-staging"

    @property
    def url(self) -> str:
        return self.cname_url or self.base_url


def replace_placeholder(url: str, storage: StorageSettings) -> str:
    """``CLOUD_BASE_PATH`` -> ``<cname or base url>/<container>`` (reference rule, both jobs)."""
    if not url or storage.placeholder not in url:
        return url
    return url.replace(storage.placeholder, f"{storage.url}/{storage.container}")


def clean_text(value: Any) -> str:
    """Course names as the reference cleans them: no control characters."""
    return "".join(ch for ch in str(value or "") if ch >= " ")


def xml_escape(value: str) -> str:
    return _xml_escape(value, {'"': "&quot;", "'": "&apos;"})


def parse_json_field(value: Any, default: Any) -> Any:
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise CertError(f"invalid JSON in template: {e}") from None


# ------------------------------------------------------------------------------ pre-processor


@dataclass(frozen=True)
class IssueRequest:
    user_id: str
    course_id: str
    batch_id: str
    re_issue: bool = False


def parse_issue_request(event: Mapping[str, Any]) -> IssueRequest:
    """Reference ``Event.isValid``: action issue-certificate, batch, course and first user id present."""
    edata = event.get("edata")
    if not isinstance(edata, dict):
        raise Skip("no edata")
    users = edata.get("userIds")
    user = users[0] if isinstance(users, list) and users else ""
    action, batch, course = edata.get("action"), edata.get("batchId"), edata.get("courseId")
    if not (isinstance(action, str) and action.lower() == ISSUE_ACTION):
        raise Skip(f"action {action!r} is not {ISSUE_ACTION}")
    if not all(isinstance(v, str) and v for v in (batch, course, user)):
        raise Skip("batchId, courseId and userIds[0] are required")
    return IssueRequest(user, course, batch, edata.get("reIssue") is True)


def usable_templates(cert_templates: Mapping[str, Mapping[str, str]] | None) -> dict[str, dict[str, str]]:
    """Templates whose url is an SVG (the reference drops the others)."""
    return {tid: dict(t) for tid, t in (cert_templates or {}).items() if ".svg" in (t or {}).get("url", "")}


def template_criteria(template: Mapping[str, str], batch_id: str) -> dict[str, Any]:
    """Reference ``validateTemplate``: a url and criteria naming enrollment, assessment or users."""
    criteria = parse_json_field(template.get("criteria"), {})
    if template.get("url") and isinstance(criteria, dict) and set(criteria) & {"enrollment", "assessment", "users"}:
        return criteria
    raise CertError(f"Invalid template for batch : {batch_id}")


@dataclass(frozen=True)
class EnrolledUser:
    user_id: str  # "" = does not qualify
    old_id: str = ""
    issued_on: datetime | None = None
    props: dict[str, Any] = field(default_factory=dict)


def check_enrolment(req: IssueRequest, criteria: Mapping[str, Any], row: Mapping[str, Any] | None,
                    cert_name: str, additional: Mapping[str, list]) -> EnrolledUser:
    """Reference ``validateEnrolmentCriteria`` over the ``user_enrolments`` row (a dict)."""
    if not criteria:
        return EnrolledUser(req.user_id)
    if row is None:
        return EnrolledUser("")
    issued = [c for c in (row.get("issued_certificates") or []) if cert_name.lower() == (c.get("name") or "").lower()]
    wanted = criteria.get("status", 2)
    old_id = (issued[0].get("identifier") or "") if issued and req.re_issue else ""
    ok = bool(row.get("active")) and _num(wanted) == _num(row.get("status")) and (not issued or req.re_issue)
    props = {p: row.get(p.lower()) for p in additional.get("enrollment", [])}
    return EnrolledUser(req.user_id if ok else "", old_id, row.get("completedon"),
                        {"enrollment": props} if props else {})


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "EQ": lambda s, c: s == c, "eq": lambda s, c: s == c, "=": lambda s, c: s == c,
    ">": lambda s, c: s > c, "<": lambda s, c: s < c, ">=": lambda s, c: s >= c, "<=": lambda s, c: s <= c,
    "ne": lambda s, c: s != c, "!=": lambda s, c: s != c,
}


def score_matches(criteria: Mapping[str, Any], score: float) -> bool:
    """Reference ``isValidAssessCriteria``. A bare number means equality (the reference meant that,
    but its ``Option.isInstanceOf[Number]`` test never matched and the cast then threw)."""
    spec = criteria.get("score")
    if isinstance(spec, bool):
        return False
    if isinstance(spec, int | float):
        return score == float(spec)
    if not isinstance(spec, dict) or not spec:
        return False
    op, value = next(iter(spec.items()))
    target = _num(value)
    return target is not None and op in OPERATORS and OPERATORS[op](score, target)


def assessment_scores(aggregates: Mapping[str, float] | None, agg: Mapping[str, int] | None) -> dict[str, float]:
    """Percent per assessment content from ``user_activity_agg`` (``score:<id>`` / ``max_score:<id>``)."""
    aggs = {**{k: float(v) for k, v in (agg or {}).items()}, **{k: float(v) for k, v in (aggregates or {}).items()}}
    out = {}
    for key in aggs:
        if key.startswith("score:"):
            cid = key[len("score:"):]
            total = aggs.get(f"max_score:{cid}", 1.0) or 1.0
            out[cid] = aggs[key] * 100 / total
    return out


def check_assessment(criteria: Mapping[str, Any], user_id: str, scores: Mapping[str, float],
                     additional: Mapping[str, list]) -> tuple[str, dict]:
    """Reference ``validateAssessmentCriteria``: the best percentage over the assessed contents.
    ``scores`` are already filtered to the supported content types. Returns (user id or "", props)."""
    if not criteria or not user_id:
        return user_id, {}
    score = max(scores.values()) if scores else 0.0
    if not score_matches(criteria, score):
        return "", {}
    props = {"assessment": {"score": dict(scores)}} if "score" in additional.get("assessment", []) else {}
    return user_id, props


def check_user(criteria: Mapping[str, Any], user: Mapping[str, Any] | None) -> bool:
    """Reference ``validateUser``: every criterion equals the profile's field."""
    if not user:
        return False
    return all(user.get(k) == v for k, v in (criteria or {}).items())


@dataclass(frozen=True)
class CertDecision:
    qualified: bool
    enrolled: EnrolledUser
    assessment_props: dict = field(default_factory=dict)
    reason: str = ""


def validate_cert_criteria(req: IssueRequest, template: Mapping[str, str], enrolment_row: Mapping[str, Any] | None,
                           scores: Mapping[str, float], user: Mapping[str, Any] | None) -> CertDecision:
    """All three criteria kinds of one template over plain rows. ``user`` is the user-read profile
    (``None`` when not read: blocked or not needed yet)."""
    criteria = template_criteria(template, req.batch_id)
    additional = parse_json_field(template.get("additionalProps"), {})
    name = template.get("name", "")
    enrolled = check_enrolment(req, criteria.get("enrollment") or {}, enrolment_row, name, additional)
    if not enrolled.user_id:
        return CertDecision(False, enrolled, reason="enrolment criteria not met or certificate already issued")
    assessed, props = check_assessment(criteria.get("assessment") or {}, enrolled.user_id, scores, additional)
    if not assessed:
        return CertDecision(False, enrolled, reason="assessment criteria not met")
    if not check_user(criteria.get("user") or {}, user):
        return CertDecision(False, enrolled, reason="user criteria not met or user unavailable")
    return CertDecision(True, enrolled, props)


ValidateCertCriteria = validate_cert_criteria


def recipient_name(user: Mapping[str, Any]) -> str:
    def part(k: str) -> str:
        v = user.get(k) or ""
        return "" if str(v).lower() == "null" else str(v)

    return f"{part('firstName')} {part('lastName')}".strip()


def related_data(req: IssueRequest, enrolled: EnrolledUser, assessment_props: dict, user: Mapping[str, Any],
                 additional: Mapping[str, list], cert_name: str, course_name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"batchId": req.batch_id, "courseId": req.course_id, "type": cert_name}
    if additional.get("location"):
        locs = {loc.get("type", ""): loc.get("name", "") for loc in user.get("userLocations") or []}
        found = {p: locs[p] for p in additional["location"] if locs.get(p) is not None}
        if found:
            out["location"] = found
    out.update(enrolled.props)
    out.update(assessment_props)
    out.update({p: user.get(p) for p in additional.get("user", []) if p in user})
    if additional.get("course"):
        out["course"] = {"name": course_name}
    return out


def build_cert_request(req: IssueRequest, template: Mapping[str, str], decision: CertDecision,
                       user: Mapping[str, Any], course_name: str, cert_domain_url: str, storage: StorageSettings,
                       now_ms: int, new_id: NewId = _uuid) -> dict[str, Any]:
    """The ``generate-certificate`` event (reference ``generateCertificateEvent``)."""
    name = template.get("name", "")
    additional = parse_json_field(template.get("additionalProps"), {})
    issued_on = decision.enrolled.issued_on or datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    edata = {
        "issuedDate": issued_on.strftime("%Y-%m-%d"),
        "data": [{"recipientName": recipient_name(user), "recipientId": req.user_id}],
        "criteria": {"narrative": name},
        "svgTemplate": replace_placeholder(template.get("url", ""), storage),
        "oldId": decision.enrolled.old_id,
        "templateId": template.get("identifier", ""),
        "userId": req.user_id,
        "orgId": user.get("rootOrgId", ""),
        "issuer": parse_json_field(template.get("issuer"), {}),
        "signatoryList": parse_json_field(template.get("signatoryList"), []),
        "courseName": course_name,
        "basePath": f"{cert_domain_url}/certs",
        "related": related_data(req, decision.enrolled, decision.assessment_props, user, additional, name,
                                course_name),
        "name": name,
        "tag": req.batch_id,
    }
    return {
        "actor": {"id": "Certificate Generator", "type": "System"},
        "eid": "BE_JOB_REQUEST",
        "edata": edata,
        "ets": now_ms,
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform"}},
        "mid": f"LMS.{new_id()}",
        "object": {"id": req.user_id, "type": "GenerateCertificate"},
    }


BuildCertRequest = build_cert_request


def issue_request_for(user_id: str, course_id: str, batch_id: str, now_ms: int, new_id: NewId = _uuid) -> dict:
    """The issue-certificate request a backfill feeds the pre-processor for one completed enrolment."""
    return issue_certificate_request(user_id, course_id, batch_id, now_ms, new_id())


# ---------------------------------------------------------------------------------- generator


@dataclass(frozen=True)
class GenerateRequest:
    event: dict
    edata: dict
    user_id: str
    course_id: str
    batch_id: str
    template_id: str
    name: str
    old_id: str
    recipients: tuple[dict, ...]
    signatory_problem: str = ""


def _missing(parent: str) -> CertError:
    return CertError(f"Mandatory parameter {parent} is missing.")


def _require(data: Any, parent: str, keys: tuple[str, ...]) -> None:
    items = data if isinstance(data, list) else [data]
    if not data or not all(isinstance(d, dict) for d in items):
        raise _missing(parent)
    for d in items:
        for k in keys:
            if not str(d.get(k) if d.get(k) is not None else "").strip():
                raise _missing(f"{parent}.{k}")


def validate_generate_request(event: Mapping[str, Any], suppress_signatory: bool) -> GenerateRequest:
    """Reference ``CertValidator.validateGenerateCertRequest``; raises ``CertError`` with its messages."""
    edata = event.get("edata")
    if not isinstance(edata, dict) or not edata:
        raise _missing("edata")
    _require(edata, "edata", ("name", "svgTemplate"))
    _require(edata.get("data"), "edata.data", ("recipientName",))
    _require(edata.get("issuer"), "edata.issuer", ("name", "url"))
    problem = ""
    try:
        _require(edata.get("signatoryList"), "edata.signatoryList", ("name", "id", "designation", "image"))
    except CertError as e:
        if not suppress_signatory:
            raise
        problem = str(e)
    _require(edata.get("criteria"), "edata.criteria", ("narrative",))
    tag = edata.get("tag") or ""
    if not isinstance(tag, str) or _TAG_RE.search(tag):
        raise CertError(f"Invalid value {tag} for parameter tag.")
    base = edata.get("basePath") or ""
    if base:
        u = urlparse(str(base))
        if not (u.scheme and u.netloc):
            raise CertError(f"Invalid value {base} for parameter certificate.basePath.")
    keys = edata.get("keys")
    if keys:
        _require(keys, "edata.keys", ("id",))
    related = edata.get("related") if isinstance(edata.get("related"), dict) else {}
    return GenerateRequest(
        event=dict(event), edata=edata, user_id=str(edata.get("userId") or ""),
        course_id=str(related.get("courseId") or ""), batch_id=str(related.get("batchId") or ""),
        template_id=str(edata.get("templateId") or ""), name=str(edata["name"]), old_id=str(edata.get("oldId") or ""),
        recipients=tuple(edata["data"]), signatory_problem=problem)


def certificate_id(user_id: str, course_id: str, batch_id: str, template_id: str, old_id: str = "") -> str:
    """The deterministic id of one issuance: the same request always maps to the same claim.
    A re-issue is its own issuance, keyed by the certificate it replaces (so it happens once)."""
    return str(uuid.uuid5(CERT_ID_NAMESPACE, "|".join((user_id, course_id, batch_id, template_id, old_id))))


def rc_create_request(req: GenerateRequest, recipient: Mapping[str, Any], public_key_id: str | None,
                      storage: StorageSettings, escape: bool = True) -> dict[str, Any]:
    """Reference ``generateRequest``: the body of ``POST {rc}/{entity}``.

    Values RC substitutes into the SVG template are XML-escaped when ``escape``; JSON escaping is
    the serializer's (the request is built as data, never as a string).
    """
    esc = xml_escape if escape else (lambda s: s)
    e = req.edata
    issuer = e.get("issuer") or {}
    body: dict[str, Any] = {
        "certificateLabel": esc(req.name),
        "status": "ACTIVE",
        "templateUrl": replace_placeholder(str(e.get("svgTemplate") or ""), storage),
        "training": {"id": req.course_id, "name": esc(str(e.get("courseName") or "")), "type": "Course",
                     "batchId": req.batch_id},
        "recipient": {"id": str(recipient.get("recipientId") or ""),
                      "name": esc(str(recipient.get("recipientName") or "")), "type": None},
        "issuer": {"url": issuer.get("url", ""), "name": esc(str(issuer.get("name", ""))), "kid": public_key_id},
        "signatory": [{k: (esc(v) if isinstance(v, str) and k in ("name", "designation") else v)
                       for k, v in s.items()} for s in (e.get("signatoryList") or []) if isinstance(s, dict)],
    }
    if req.old_id:
        body["oldId"] = req.old_id
    return body


def remove_bad_chars(text: str, bad_char_list: str) -> str:
    """``task.rc.badcharlist``: every listed substring is removed from the serialized request."""
    for bad in bad_char_list.split(","):
        if bad:
            text = text.replace(bad, "")
    return text


def issued_certificates_after(current: list[Mapping[str, str]] | None, name: str, cert_id: str, now: datetime,
                              template_url: str, rc_entity: str, rc_enabled: bool = True) -> list[dict[str, str]]:
    """Reference ``updateUserEnrollmentTable``: drop entries of the same name, append the new one."""
    kept = [dict(c) for c in (current or []) if (c.get("name") or "").lower() != name.lower()]
    entry = {"name": name, "identifier": cert_id, "token": "",
             "lastIssuedOn": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}"
                                                                     + now.strftime("%z")}
    if rc_enabled:
        entry.update({"templateUrl": template_url, "type": rc_entity})
    return [*kept, entry]


def certificate_audit_event(user_id: str, course_id: str, batch_id: str, cert_id: str, now_ms: int,
                            new_id: NewId = _uuid) -> dict[str, Any]:
    """Reference ``CertificateAuditEvent`` (``certificate-issued-svg``)."""
    return {
        "eid": "AUDIT", "ets": now_ms, "mid": f"LP.AUDIT.{now_ms}.{new_id()}", "ver": "3.0",
        "actor": {"id": user_id, "type": "User"},
        "context": {"channel": "in.ekstep", "env": "Course", "sid": new_id(), "did": new_id(),
                    "pdata": {"ver": "1.0", "id": "org.sunbird.learning.platform",
                              "pid": "course-certificate-generator"},
                    "cdata": [{"type": "CourseBatch", "id": batch_id}]},
        "object": {"id": cert_id, "type": "Certificate", "rollup": {"l1": course_id}},
        "edata": {"props": ["certificates"], "type": "certificate-issued-svg"},
    }


def user_feed_request(user_id: str, course_name: str, course_id: str) -> dict[str, Any]:
    """Reference ``CreateUserFeedFunction`` body, built as data (the reference interpolated a string,
    so a course name with a quote broke the JSON)."""
    return {"request": {"userId": user_id, "category": "Notification", "priority": 1,
                        "data": {"type": 1, "actionData": {"actionType": "certificateUpdate", "title": course_name,
                                                           "description": USER_FEED_MSG, "identifier": course_id}}}}


def notify_template(cert_templates: Mapping[str, Mapping[str, str]] | None, template_id: str,
                    storage: StorageSettings) -> dict[str, Any] | None:
    """The template's ``notifyTemplate`` (JSON text), with its ``stateImageUrl`` placeholder replaced."""
    t = (cert_templates or {}).get(template_id) if template_id else None
    if not t or "notifyTemplate" not in t:
        return None
    nt = parse_json_field(t["notifyTemplate"], None)
    if not isinstance(nt, dict):
        return None
    if isinstance(nt.get("stateImageUrl"), str):
        nt["stateImageUrl"] = replace_placeholder(nt["stateImageUrl"], storage)
    return nt


def notification_requests(template: Mapping[str, Any], user: Mapping[str, Any], user_id: str, course_name: str,
                          issued_on: datetime | None, instance_name: str) -> list[dict[str, Any]]:
    """Reference ``NotifierFunction``: the email request, then the SMS one when the user has a phone."""
    held = (issued_on or datetime.now(tz=UTC)).strftime("%Y-%m-%d")
    request = {**template, "firstName": user.get("firstName") or "", "TrainingName": course_name, "heldDate": held,
               "recipientUserIds": [user_id], "body": "email body"}
    out = [{"request": request}]
    if str(user.get("maskedPhone") or "").strip():
        # The reference also sets a top-level "body": "sms" next to "request".
        out.append({"request": {**request, "body": SMS_BODY.format(instance=instance_name)}, "body": "sms"})
    return out
