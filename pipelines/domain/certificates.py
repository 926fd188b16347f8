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
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse
from xml.sax.saxutils import escape as _xml_escape

from pipelines.domain.cert_request import ISSUE_ACTION, issue_certificate_request
from pipelines.domain.errors import InvalidRequest, Skip

DEFAULT_BAD_CHARS = "\\x00,\\\\aaa,\\aaa,Ø,Ý"
USER_FEED_MSG = "You have earned a certificate! Download it from your profile page."
SMS_BODY = ("Congratulations! Download your course certificate from your profile page. If you have a problem "
            "downloading it on the mobile, update your {instance} app")
CERT_ID_NAMESPACE = uuid.UUID("6f0c2a52-3a0e-5d8e-9a57-4c45e2a1c0de")
_TAG_RE = re.compile(r"[!@#$%^&*()+=,.?/\":;'{}|<>\s-]")
NewId = Callable[[], str]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _uuid() -> str:
    return str(uuid.uuid4())


class CertError(InvalidRequest):
    """A request that cannot be processed; the message is the failed event's reason."""


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
    props = {p: jackson_value(row.get(p.lower())) for p in additional.get("enrollment", [])}
    return EnrolledUser(req.user_id if ok else "", old_id, row.get("completedon"),
                        {"enrollment": props} if props else {})


def jackson_value(value: Any) -> Any:
    """A Cassandra column value as the reference's Jackson writes it into event JSON.

    ``row.getObject`` hands Jackson a ``java.util.Date`` for a timestamp, which it writes as epoch
    milliseconds (``completedOn: 1764460800000``, not ``"2026-11-30 00:00:00"``); maps stay
    objects, lists and sets become arrays, UUIDs and decimals their text and number. The driver's
    naive datetimes are UTC.
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (aware - _EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jackson_value(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if hasattr(value, "__iter__"):
        return [jackson_value(v) for v in value]
    return str(value)


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


Lookup = Any
"""A value, or a zero-argument function that fetches it (called only when a criterion needs it)."""


def _looked_up(lookup: Lookup) -> Any:
    return lookup() if callable(lookup) else lookup


def validate_cert_criteria(req: IssueRequest, template: Mapping[str, str], enrolment_row: Lookup,
                           scores: Lookup, user: Lookup) -> CertDecision:
    """All three criteria kinds of one template, each evaluated once, in the reference's order.

    ``enrolment_row`` (the ``user_enrolments`` row), ``scores`` (percent per assessed content) and
    ``user`` (the user-read profile; ``None`` when blocked) may be values or lookups: a lookup is
    called only when the template's criteria need it (no enrolment criteria: no enrolment read;
    enrolment not met: no score read and no user read), so the caller reads what the reference
    reads and nothing more.
    """
    criteria = template_criteria(template, req.batch_id)
    additional = parse_json_field(template.get("additionalProps"), {})
    name = template.get("name", "")
    enrollment = criteria.get("enrollment") or {}
    enrolled = check_enrolment(req, enrollment, _looked_up(enrolment_row) if enrollment else None, name, additional)
    if not enrolled.user_id:
        return CertDecision(False, enrolled, reason="enrolment criteria not met or certificate already issued")
    assessment = criteria.get("assessment") or {}
    assessed, props = check_assessment(assessment, enrolled.user_id, _looked_up(scores) if assessment else {},
                                       additional)
    if not assessed:
        return CertDecision(False, enrolled, reason="assessment criteria not met")
    if not check_user(criteria.get("user") or {}, _looked_up(user)):
        return CertDecision(False, enrolled, reason="user criteria not met or user unavailable")
    return CertDecision(True, enrolled, props)


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


LEGACY_PATH_UNSUPPORTED = "enable.rc.certificate=false: the legacy (non-RC) issuance is not supported"


def generate_requests(event: Mapping[str, Any], suppress_signatory: bool = True,
                      rc_enabled: bool = True) -> list[GenerateRequest]:
    """The generator's parser: one validated request per event, or ``CertError`` with the reason."""
    req = validate_generate_request(event, suppress_signatory)
    if not rc_enabled:
        raise CertError(LEGACY_PATH_UNSUPPORTED)
    return [req]


def _issued_by_name(issued_certificates: list[Mapping[str, str]] | None, name: str) -> list[Mapping[str, str]]:
    return [c for c in (issued_certificates or []) if (c.get("name") or "").lower() == name.lower()]


def already_issued(req: GenerateRequest, issued_certificates: list[Mapping[str, str]] | None) -> bool:
    """Reference ``CertValidator.isNotIssued``, negated: a certificate of this name is on the
    enrolment and the request is not a re-issue (a counted skip)."""
    return bool(_issued_by_name(issued_certificates, req.name)) and not req.old_id


def issuance_problem(req: GenerateRequest, cert_templates: Mapping[str, Any] | None,
                     issued_certificates: list[Mapping[str, str]] | None, claimed: Lookup = False) -> str:
    """Why this request must not issue anything ("" when it may).

    The certificate id is derived from the request's own ``templateId``, ``oldId`` and recipients,
    so a request altered in any of them would be a new issuance that no claim guards: copies of one
    request with invented template ids or old ids created one RC certificate each. So the request
    must name one of the batch's ``cert_templates``, its recipients must be its learner, and an
    ``oldId`` must be the learner's issued certificate of that name (the one a re-issue replaces).
    ``claimed`` (looked up only for an unknown ``oldId``) says this exact issuance was already
    claimed: its replay, after the re-issue replaced the old certificate, is a duplicate, not an
    invented id.
    """
    if req.template_id not in (cert_templates or {}):
        return (f"template {req.template_id!r} is not a certificate template of batch {req.batch_id} "
                f"of course {req.course_id}")
    others = sorted({str(r.get("recipientId")) for r in req.recipients
                     if r.get("recipientId") and str(r.get("recipientId")) != req.user_id})
    if others:
        return f"recipients {others} are not the request's learner {req.user_id}"
    if req.old_id:
        mine = {c.get("identifier") for c in _issued_by_name(issued_certificates, req.name)}
        if req.old_id not in mine and not _looked_up(claimed):
            return (f"oldId {req.old_id!r} is not the learner's issued certificate {req.name!r} "
                    f"({', '.join(sorted(i for i in mine if i)) or 'none issued'})")
    return ""


def claim_conflict(existing: Mapping[str, Any], now: datetime, lease_secs: float) -> str:
    """Another delivery holds the claim of this issuance: ``"duplicate"`` when it is issued or its
    lease is still running (someone is issuing it right now), ``"takeover"`` when the lease ran out
    (a crashed or failed owner) and this delivery may finish the issuance."""
    if existing.get("state") == "issued":
        return "duplicate"
    claimed_at = existing.get("claimed_at")
    if claimed_at is not None:
        aware = claimed_at if claimed_at.tzinfo else claimed_at.replace(tzinfo=UTC)
        if (now - aware).total_seconds() < lease_secs:
            return "duplicate"
    return "takeover"


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


_ESCAPE_RE = re.compile(r"\\x([0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})|\\\\")


def bad_char_forms(bad_char_list: str) -> tuple[str, ...]:
    """``task.rc.badcharlist`` entries, each followed by the text it stands for when it is written
    as an escape: ``\\x00`` also means the NUL character, ``\\\\aaa`` also means ``\\aaa``.

    The reference wrote the list for the serialized JSON, where a real NUL is ``\\u0000`` and never
    matches; cleaning values (``clean_values``) needs both forms.
    """
    def unescape(m: re.Match) -> str:
        code = m.group(1) or m.group(2)
        return chr(int(code, 16)) if code else "\\"

    forms: list[str] = []
    for entry in bad_char_list.split(","):
        for form in (entry, _ESCAPE_RE.sub(unescape, entry)):
            if form and form not in forms:
                forms.append(form)
    return tuple(forms)


def remove_bad_chars(text: str, bad_char_list: str) -> str:
    """Every ``task.rc.badcharlist`` entry (and what an escaped entry stands for) removed from ``text``."""
    for bad in bad_char_forms(bad_char_list):
        text = text.replace(bad, "")
    return text


def clean_values(value: Any, bad_char_list: str) -> Any:
    """``remove_bad_chars`` applied to every text value of a request, before it is serialized.

    The reference removed the substrings from the serialized JSON: a name ending in the text
    ``\\x00`` is ``...\\\\x00"`` there, and removing ``\\x00`` left a backslash that escaped the
    closing quote (invalid JSON to RC), while a real NUL (``\\u0000``) went through. Cleaning the
    values first and serializing after can do neither.
    """
    if isinstance(value, str):
        return remove_bad_chars(value, bad_char_list)
    if isinstance(value, Mapping):
        return {k: clean_values(v, bad_char_list) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_values(v, bad_char_list) for v in value]
    return value


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
