"""Local emulator of the Sunbird HTTP services that the LERN data-pipeline jobs call.

Integration tests cannot reach Sunbird's real services, so this one stdlib-only server answers on
their real paths with their response shapes, backed by seedable JSON, and records every request
so tests can assert on what a job sent.

HTTP calls found in the reference (Sunbird-Lern/data-pipeline, release-8.0.0, commit 7ea4c2c3);
"{key}" is the conf key holding the base URL, as used by the Scala code:

  activity-aggregate-updater  ActivityAggregatesFunction.getDBStatus
      POST {service.search.basePath}/v3/search            (basePath ends in /search)
           {"request":{"filters":{"objectType":"Collection","identifier":id,
                                  "status":["Live","Unlisted","Retired"]},"fields":["status"]}}
           -> result.count, result.content[0].status
  enrolment-reconciliation    EnrolmentReconciliationFn.getDBStatus: same call
  assessment-aggregator       AssessmentAggregatorFunction.getQuestionCountFromAPI
      GET  {content.read.api}{id} = /api/content/v1/read/{id} -> result.content.totalQuestions
           (RestUtil ignores the status code and reads responseCode, so 404s must be JSON too)
  collection-cert-pre-processor  IssueCertificateHelper
      GET  {service.learner.basePath}{user_read_api}/{id}?organisations,roles,locations,...
           = /private/user/v1/read/{id} (the query has no "fields="; 400 + UOS_USRRED0006 = skip)
      GET  {service.content.basePath}{content_read_api}/{id}[?fields=name] = /content/v3/read/{id}
  collection-certificate-generator
      CertificateGeneratorFunction (enable.rc.certificate = true):
      POST {service.rc.basePath}/PublicKey/search {"filters":{}} -> bare JSON list, [0].osid
      POST {service.rc.basePath}/{service.rc.entity}  (header Authorization: {service.rc.rcApiKey})
           -> result.<entity>.osid; must be 200
      POST {service.rc.basePath}/{entity}/{osid}/revoke  certificate-status-updater (500 "Credential is
                                                       already revoked" on a repeat)
      DELETE {service.rc.basePath}/{entity}/{oldId}    on re-issue; non-200 makes the job delete
           the old Cassandra/ES registry record instead
      POST {service.certreg.basePath}/certs/v2/registry/add    (legacy path, rc disabled)
      certificate-processor SignatureHelper (legacy path, when a keyId is set):
      POST {service.enc.basePath}/sign/{keyId} {"entity":{...}} -> {"signatureValue","keyId"}
      POST {service.enc.basePath}/verify {"entity":{...}} -> bare JSON boolean
      NotifierFunction:  GET  {service.learner.basePath}/private/user/v1/read/{id}
                         POST {service.learner.basePath}/v2/notification   (email, then sms)
      CreateUserFeedFunction: POST {service.learner.basePath}/private/user/feed/v1/create
  legacy-certificate-migrator
      POST {service.rc.basePath}/{entity}/search {"filters":{"oldId":{"eq":id}},"limit":1}
      plus the PublicKey search and RC create above (create without Authorization header)
  user-cache-updater-2.0      UserMetadataUpdater / FrameworkCacheHandler
      GET  {service.userorg.basePath}{user_read_api}{id}?fields=locations,organisations
           = /api/user/v1/read/{id}  (400 CLIENT_ERROR with params.err UOS_USRRED0006 = skip)
      GET  {service.taxonomy.basePath}/api/framework/v1/read/{id} -> result.framework.categories
  user-deletion-cleanup       GET {service.userorg.basePath}/private/user/v1/read//{id}?identifier,rootOrgId
                              (note the double slash; 400 means "already deleted")
  user-ownership-transfer     same user read, and
      POST {service.lms.basePath}/v1/course/batch/search -> result.response.{count,content}
  No HTTP calls: relation-cache-updater, merge-user-courses, ml-jobs/*.
  Not emulated here: Keycloak admin API (user-deletion-cleanup), MSG91 SMS and FCM push
  (notification-job, via notification-sdk), cloud blob storage; mail goes to smtp.py.

The reference confs mount services under gateway prefixes (".../userorg", ".../certreg",
".../enc", ".../search"), so every route is also served under one of MOUNTS.

Emulator control (never recorded, never faulted):
  GET  /__emulator/health              200 {"status":"ok"}
  GET  /__emulator/requests            recorded requests in order; ?path_prefix=&method=
  DELETE /__emulator/requests          forget recorded requests
  POST /__emulator/seed                merge a seed object (same format as --seed)
  POST /__emulator/reset               back to the start-up seed; clears requests, faults, RC records
  POST /__emulator/faults              {"path_prefix":"/api/v1/","status":500,"times":2,
                                        "method":"POST"?, "body":{...}?}: the next N matching
                                        requests fail with that status, then the route recovers
  DELETE /__emulator/faults            drop pending faults

Seed format (every section optional; keyed sections accept a dict {id: obj} or a list of objs):
  {"contents": {...}, "collections": [tree, ...], "users": {...}, "batches": {...},
   "frameworks": {...}, "rc": {"<Entity>": [record, ...]}}
  Collections are trees with "children"; every node becomes readable and searchable content.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

JSON = dict[str, Any]
Reply = tuple[int, Any]

MOUNTS = ("/userorg", "/learner", "/lms", "/search", "/certreg", "/enc")
RECORDED_HEADERS = (
    "content-type", "accept", "authorization", "x-authenticated-user-token",
    "x-authenticated-userid", "x-channel-id", "x-consumer-id", "x-device-id",
)
SEED_SECTIONS = {  # section -> id field used when the section is given as a list
    "contents": "identifier", "users": "identifier", "batches": "batchId",
    "frameworks": "identifier",
}
BLOCKED_USER_STATUSES = (0, 2)  # userorg: 0 = blocked/inactive, 2 = deleted
_SIGNING_SECRET = b"lern-emulator-not-a-real-key"


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def envelope(api_id: str, result: Any, *, code: str = "OK", err: str | None = None,
             errmsg: str | None = None) -> JSON:
    """Sunbird's standard response wrapper, which every Scala caller unwraps via result/responseCode."""
    return {
        "id": api_id, "ver": "1.0", "ts": _now_iso(),
        "params": {"resmsgid": str(uuid.uuid4()), "msgid": None, "err": err,
                   "status": "successful" if code == "OK" else "failed", "errmsg": errmsg},
        "responseCode": code, "result": result,
    }


def error(status: int, api_id: str, err: str, errmsg: str) -> Reply:
    code = "RESOURCE_NOT_FOUND" if status == 404 else "CLIENT_ERROR" if status < 500 else "SERVER_ERROR"
    return status, envelope(api_id, {}, code=code, err=err, errmsg=errmsg)


def rc_envelope(action: str, result: Any, *, ok: bool = True, errmsg: str = "") -> JSON:
    """Sunbird RC's wrapper differs from the platform one: upper-case status, "ets" in millis."""
    return {
        "id": f"sunbird-rc.registry.{action}", "ver": "1.0", "ets": int(time.time() * 1000),
        "params": {"resmsgid": "", "msgid": str(uuid.uuid4()), "err": "" if ok else "NOT_FOUND",
                   "status": "SUCCESSFUL" if ok else "UNSUCCESSFUL", "errmsg": errmsg},
        "responseCode": "OK" if ok else "NOT_FOUND", "result": result,
    }


# ----------------------------------------------------------------------------- filtering

_RANGE_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "min": lambda h, v: h >= v, ">=": lambda h, v: h >= v, ">": lambda h, v: h > v,
    "max": lambda h, v: h <= v, "<=": lambda h, v: h <= v, "<": lambda h, v: h < v,
    "!=": lambda h, v: h != v, "ne": lambda h, v: h != v,
}


def _matches_filter(have: Any, want: Any) -> bool:
    """Search-service semantics: a list means any-of, list-valued fields match on any element."""
    if want is None:
        return True
    if isinstance(want, dict):
        if have is None:
            return False
        try:
            return all(_RANGE_OPS[op](have, v) for op, v in want.items())
        except (KeyError, TypeError):
            return False
    wants = want if isinstance(want, list) else [want]
    if not wants:
        return True
    haves = have if isinstance(have, list) else [have]
    return any(h == w for h in haves if h is not None for w in wants)


def filter_docs(docs: list[JSON], filters: Mapping[str, Any]) -> list[JSON]:
    return [d for d in docs if all(_matches_filter(d.get(k), v) for k, v in filters.items())]


def project(doc: JSON, fields: list[str] | None, always: tuple[str, ...] = ("identifier",)) -> JSON:
    if not fields:
        return copy.deepcopy(doc)
    keep = [*always, *fields]
    return {k: copy.deepcopy(doc[k]) for k in keep if k in doc}


def _fields_param(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [f.strip() for f in value.split(",") if f.strip()] or None
    return list(value) if value else None


def _dotted(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


_RC_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda h, v: h == v, "neq": lambda h, v: h != v,
    "gt": lambda h, v: h is not None and h > v, "gte": lambda h, v: h is not None and h >= v,
    "lt": lambda h, v: h is not None and h < v, "lte": lambda h, v: h is not None and h <= v,
    "contains": lambda h, v: h is not None and v in h,
    "startsWith": lambda h, v: isinstance(h, str) and h.startswith(v),
    "endsWith": lambda h, v: isinstance(h, str) and h.endswith(v),
    "or": lambda h, v: h in v,
}


def rc_matches(record: JSON, filters: Mapping[str, Any]) -> bool:
    """Sunbird RC search filters: {"a.b": {"eq": x}}; a bare value is treated as eq."""
    for path, cond in filters.items():
        have = _dotted(record, path)
        for op, value in (cond.items() if isinstance(cond, dict) else [("eq", cond)]):
            if op not in _RC_OPS:
                raise ValueError(f"unsupported RC filter operator: {op}")
            if not _RC_OPS[op](have, value):
                return False
    return True


# ----------------------------------------------------------------------------- state


@dataclass
class Request:
    method: str
    path: str  # normalised, mount prefix removed
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    state: State


@dataclass
class State:
    """Everything the emulator knows; guarded by the server lock."""

    contents: dict[str, JSON] = field(default_factory=dict)
    collections: dict[str, JSON] = field(default_factory=dict)
    users: dict[str, JSON] = field(default_factory=dict)
    batches: dict[str, JSON] = field(default_factory=dict)
    frameworks: dict[str, JSON] = field(default_factory=dict)
    rc: dict[str, dict[str, JSON]] = field(default_factory=dict)
    signatures: set[str] = field(default_factory=set)
    requests: list[JSON] = field(default_factory=list)
    faults: list[JSON] = field(default_factory=list)

    def merge(self, seed: Mapping[str, Any]) -> None:
        unknown = set(seed) - {*SEED_SECTIONS, "collections", "rc"}
        if unknown:
            raise ValueError(f"unknown seed sections: {sorted(unknown)}")
        for section, id_field in SEED_SECTIONS.items():
            getattr(self, section).update(_keyed(seed.get(section), id_field))
        for tree in _keyed(seed.get("collections"), "identifier").values():
            self.collections[tree["identifier"]] = tree
            for node in _flatten(tree):
                self.contents[node["identifier"]] = node
        for entity, records in (seed.get("rc") or {}).items():
            store = self.rc.setdefault(entity, {})
            for osid, record in _keyed(records, "osid").items():
                store[osid] = {**record, "osid": osid}

    def counts(self) -> dict[str, int]:
        return {"contents": len(self.contents), "collections": len(self.collections),
                "users": len(self.users), "batches": len(self.batches),
                "frameworks": len(self.frameworks),
                "rc": sum(len(v) for v in self.rc.values())}


def _keyed(items: Any, id_field: str) -> dict[str, JSON]:
    if not items:
        return {}
    if isinstance(items, dict):
        return {k: {id_field: k, **copy.deepcopy(v)} for k, v in items.items()}
    out = {}
    for item in items:
        if id_field not in item:
            raise ValueError(f"seed item without {id_field!r}: {item}")
        out[item[id_field]] = copy.deepcopy(item)
    return out


def _flatten(node: JSON, parent: str | None = None) -> list[JSON]:
    """Collection tree -> content records; like content-service, metadata carries childNodes."""
    children = node.get("children") or []
    meta = {k: v for k, v in node.items() if k != "children"}
    if parent:
        meta.setdefault("parent", parent)
    below = [n for child in children for n in _flatten(child, node["identifier"])]
    if children:
        meta.setdefault("childNodes", [n["identifier"] for n in below])
    return [meta, *below]


# ----------------------------------------------------------------------------- handlers


def content_read(req: Request) -> Reply:
    content = req.state.contents.get(req.params["id"])
    if content is None:
        return error(404, "api.content.read", "NOT_FOUND",
                     f"Content not found with identifier: {req.params['id']}")
    return 200, envelope("api.content.read",
                         {"content": project(content, _fields_param(req.query.get("fields")))})


def composite_search(req: Request) -> Reply:
    """Real search-service omits "content" when nothing matches; only count is guaranteed."""
    request = (req.body or {}).get("request") or {}
    hits = filter_docs(list(req.state.contents.values()), request.get("filters") or {})
    offset, limit = int(request.get("offset") or 0), int(request.get("limit") or 100)
    fields = _fields_param(request.get("fields"))
    result: JSON = {"count": len(hits)}
    if hits:
        result["content"] = [project(h, fields, ("identifier", "objectType"))
                             for h in hits[offset:offset + limit]]
    return 200, envelope("api.search-service.search", result)


def user_read(req: Request) -> Reply:
    """Full user object whatever ?fields= says: userorg uses fields only to add sub-objects."""
    user_id = req.params["id"]
    user = req.state.users.get(user_id)
    if user is None:
        return error(404, "api.user.read", "USER_NOT_FOUND", f"User not found: {user_id}")
    if user.get("isDeleted") is True or user.get("status") in BLOCKED_USER_STATUSES:
        # Both spellings appear in the reference: UOS_USRRED0006 (pre-processor, cache updater)
        # and USER_ACCOUNT_BLOCKED (certificate notifier); this body satisfies both checks.
        return 400, _blocked_user_body()
    out = copy.deepcopy(user)
    for key in ("identifier", "id", "userId"):
        out.setdefault(key, user_id)
    return 200, envelope("api.user.read", {"response": out})


def _blocked_user_body() -> JSON:
    """userorg's 400 for blocked/deleted users; params.status carries the other spelling."""
    body = envelope("api.user.read", {}, code="CLIENT_ERROR", err="UOS_USRRED0006",
                    errmsg="User account has been blocked .")
    body["params"]["status"] = "USER_ACCOUNT_BLOCKED"
    return body


def framework_read(req: Request) -> Reply:
    framework = req.state.frameworks.get(req.params["id"])
    if framework is None:
        return error(404, "api.framework.read", "ERR_DATA_NOT_FOUND",
                     f"Data not found with id : {req.params['id']}")
    return 200, envelope("api.framework.read", {"framework": copy.deepcopy(framework)})


def batch_search(req: Request) -> Reply:
    request = (req.body or {}).get("request") or {}
    hits = filter_docs(list(req.state.batches.values()), request.get("filters") or {})
    fields = _fields_param(request.get("fields"))
    content = [project(b, fields, ("batchId",)) for b in hits]
    return 200, envelope("api.course.batch.search", {"response": {"count": len(hits), "content": content}})


def _require_request(req: Request, api_id: str, *required: str) -> Reply | None:
    request = req.body.get("request") if isinstance(req.body, dict) else None
    if not isinstance(request, dict):
        return error(400, api_id, "MANDATORY_PARAMETER_MISSING", "request object is missing")
    missing = [k for k in required if not request.get(k)]
    if missing:
        return error(400, api_id, "MANDATORY_PARAMETER_MISSING", f"missing: {', '.join(missing)}")
    return None


def feed_create(req: Request) -> Reply:
    problem = _require_request(req, "api.user.feed.create", "userId", "category", "data")
    return problem or (200, envelope("api.user.feed.create", {"response": "SUCCESS"}))


def notification_send(req: Request) -> Reply:
    problem = _require_request(req, "api.notification.send", "recipientUserIds")
    return problem or (200, envelope("api.notification.send", {"response": "SUCCESS"}))


def certreg_add(req: Request) -> Reply:
    problem = _require_request(req, "api.certs.registry.add", "id")
    return problem or (200, envelope("api.certs.registry.add", {"id": req.body["request"]["id"]}))


def _signature(key_id: str, entity: Any) -> str:
    canonical = json.dumps(entity, sort_keys=True, separators=(",", ":")).encode()
    digest = hmac.new(_SIGNING_SECRET + key_id.encode(), canonical, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def enc_sign(req: Request) -> Reply:
    """Deterministic HMAC in place of enc-service's RSA signature; remembered for /verify."""
    if not isinstance(req.body, dict) or "entity" not in req.body:
        return 400, {"error": "entity is required"}
    value = _signature(req.params["key_id"], req.body["entity"])
    req.state.signatures.add(value)
    return 200, {"signatureValue": value, "keyId": req.params["key_id"]}


def enc_verify(req: Request) -> Reply:
    entity = req.body.get("entity") if isinstance(req.body, dict) else None
    value = _dotted(entity, "signature.signatureValue")
    return 200, value in req.state.signatures


def rc_create(req: Request) -> Reply:
    if not isinstance(req.body, dict):
        return 400, rc_envelope("create", {}, ok=False, errmsg="request body must be a JSON object")
    entity, osid, now = req.params["entity"], f"1-{uuid.uuid4()}", _now_iso()
    req.state.rc.setdefault(entity, {})[osid] = {
        **req.body, "osid": osid, "osCreatedAt": now, "osUpdatedAt": now,
        "osCreatedBy": "anonymous", "osUpdatedBy": "anonymous",
    }
    return 200, rc_envelope("create", {entity: {"osid": osid}})


def rc_search(req: Request) -> Reply:
    """RC search answers with a bare JSON list, which both certificate jobs parse as such."""
    body = req.body if isinstance(req.body, dict) else {}
    records = list(req.state.rc.get(req.params["entity"], {}).values())
    try:
        hits = [r for r in records if rc_matches(r, body.get("filters") or {})]
    except ValueError as exc:
        return 400, rc_envelope("search", {}, ok=False, errmsg=str(exc))
    offset, limit = int(body.get("offset") or 0), int(body.get("limit") or 100)
    return 200, copy.deepcopy(hits[offset:offset + limit])


def rc_read(req: Request) -> Reply:
    record = req.state.rc.get(req.params["entity"], {}).get(req.params["osid"])
    if record is None:
        return 404, rc_envelope("read", {}, ok=False, errmsg="record not found")
    return 200, copy.deepcopy(record)


def rc_delete(req: Request) -> Reply:
    """404 for unknown ids: the generator then deletes the old Cassandra/ES registry entry."""
    store = req.state.rc.get(req.params["entity"], {})
    if store.pop(req.params["osid"], None) is None:
        return 404, rc_envelope("delete", {}, ok=False, errmsg="record not found")
    return 200, rc_envelope("delete", "deleted")


def rc_revoke(req: Request) -> Reply:
    """RC revoke: the record stays, marked REVOKED; a second revoke is RC's HTTP 500
    "Credential is already revoked" (what certificate-status-updater counts as done)."""
    record = req.state.rc.get(req.params["entity"], {}).get(req.params["osid"])
    if record is None:
        return 404, rc_envelope("revoke", {}, ok=False, errmsg="record not found")
    if record.get("status") == "REVOKED":
        return 500, rc_envelope("revoke", {}, ok=False, errmsg="Credential is already revoked")
    record.update({"status": "REVOKED", "osUpdatedAt": _now_iso()})
    return 200, rc_envelope("revoke", "revoked")


ROUTES: list[tuple[str, str, Callable[[Request], Reply]]] = [
    ("GET", r"/content/v3/read/(?P<id>[^/]+)", content_read),
    ("GET", r"/api/content/v1/read/(?P<id>[^/]+)", content_read),
    ("POST", r"/v3/search", composite_search),
    ("GET", r"/private/user/v1/read/(?P<id>[^/]+)", user_read),
    ("GET", r"/api/user/v1/read/(?P<id>[^/]+)", user_read),
    ("GET", r"/api/framework/v1/read/(?P<id>[^/]+)", framework_read),
    ("POST", r"/v1/course/batch/search", batch_search),
    ("POST", r"/course/v1/batch/search", batch_search),
    ("POST", r"/private/user/feed/v1/create", feed_create),
    ("POST", r"/v2/notification", notification_send),
    ("POST", r"/certs/v2/registry/add", certreg_add),
    ("POST", r"/sign/(?P<key_id>[^/]+)", enc_sign),
    ("POST", r"/verify", enc_verify),
    ("POST", r"/api/v1/(?P<entity>\w+)/search", rc_search),
    ("POST", r"/api/v1/(?P<entity>\w+)/(?P<osid>[^/]+)/revoke", rc_revoke),
    ("GET", r"/api/v1/(?P<entity>\w+)/(?P<osid>[^/]+)", rc_read),
    ("DELETE", r"/api/v1/(?P<entity>\w+)/(?P<osid>[^/]+)", rc_delete),
    ("POST", r"/api/v1/(?P<entity>\w+)", rc_create),
]
_COMPILED = [(m, re.compile(p + r"\Z"), h) for m, p, h in ROUTES]


def resolve(method: str, path: str) -> tuple[Callable[[Request], Reply] | None, dict[str, str], str, bool]:
    """Find (handler, params, service path, path_known); tries the path as-is, then minus a mount."""
    path = re.sub(r"/{2,}", "/", path).rstrip("/") or "/"
    candidates = [path] + [path[len(m):] for m in MOUNTS if path.startswith(m + "/")]
    known = False
    for candidate in candidates:
        for route_method, pattern, handler in _COMPILED:
            match = pattern.match(candidate)
            if match and route_method == method:
                # Route parameters are path segments: decoded as a real server decodes them.
                return handler, {k: unquote(v) for k, v in match.groupdict().items()}, candidate, True
            known = known or bool(match)
    return None, {}, path, known


# ----------------------------------------------------------------------------- server


class SunbirdEmulator(ThreadingHTTPServer):
    """The HTTP server plus its state; dispatch() is plain Python so it is easy to reason about."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], seed: Mapping[str, Any] | None = None,
                 verbose: bool = False) -> None:
        super().__init__(address, _Handler)
        self.verbose = verbose
        self.lock = threading.RLock()
        self.initial_seed: JSON = copy.deepcopy(dict(seed or {}))
        self.state = State()
        self.state.merge(self.initial_seed)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def reset(self) -> None:
        with self.lock:
            self.state = State()
            self.state.merge(copy.deepcopy(self.initial_seed))

    def dispatch(self, method: str, raw_path: str, query_string: str, headers: Mapping[str, str],
                 raw_body: bytes) -> Reply:
        body = _parse_body(raw_body)
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        with self.lock:
            if raw_path.startswith("/__emulator/"):
                return self._control(method, raw_path, query, body)
            entry = {
                "seq": len(self.state.requests) + 1, "ts": _now_iso(), "method": method,
                "path": raw_path, "query": query, "query_string": query_string,
                "headers": {k.lower(): v for k, v in headers.items() if k.lower() in RECORDED_HEADERS},
                "body": body, "status": None,
            }
            self.state.requests.append(entry)
            status, payload = self._fault(method, raw_path) or self._route(method, raw_path, query,
                                                                           body, entry["headers"])
            entry["status"] = status
            return status, copy.deepcopy(payload)

    def _route(self, method: str, raw_path: str, query: dict[str, str], body: Any,
               headers: dict[str, str]) -> Reply:
        handler, params, path, known = resolve(method, raw_path)
        if handler is None:
            if known:
                return error(405, "api.emulator", "METHOD_NOT_ALLOWED", f"{method} not allowed on {path}")
            return error(404, "api.emulator", "NOT_FOUND", f"emulator has no route for {method} {path}")
        if isinstance(body, str):
            return error(400, "api.emulator", "INVALID_JSON", "request body is not valid JSON")
        return handler(Request(method, path, params, query, body, headers, self.state))

    def _fault(self, method: str, raw_path: str) -> Reply | None:
        for fault in self.state.faults:
            if fault["times"] > 0 and raw_path.startswith(fault["path_prefix"]) \
                    and fault.get("method", method).upper() == method:
                fault["times"] -= 1
                if "body" in fault:
                    return fault["status"], fault["body"]
                return error(fault["status"], "api.emulator", "EMULATOR_FAULT", "injected fault")
        return None

    def _control(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        state = self.state
        if (method, path) == ("GET", "/__emulator/health"):
            return 200, {"status": "ok", "counts": state.counts()}
        if (method, path) == ("GET", "/__emulator/requests"):
            prefix, only = query.get("path_prefix", ""), query.get("method", "").upper()
            return 200, [r for r in state.requests
                         if r["path"].startswith(prefix) and (not only or r["method"] == only)]
        if (method, path) == ("DELETE", "/__emulator/requests"):
            state.requests.clear()
            return 200, {"status": "ok"}
        if (method, path) == ("POST", "/__emulator/seed"):
            if not isinstance(body, dict):
                return 400, {"error": "seed must be a JSON object"}
            try:
                state.merge(body)
            except (ValueError, TypeError, KeyError) as exc:
                return 400, {"error": str(exc)}
            return 200, {"status": "ok", "counts": state.counts()}
        if (method, path) == ("POST", "/__emulator/reset"):
            self.reset()
            return 200, {"status": "ok", "counts": self.state.counts()}
        if (method, path) == ("POST", "/__emulator/faults"):
            if not isinstance(body, dict) or not isinstance(body.get("status"), int):
                return 400, {"error": "fault needs an integer status"}
            fault = {"path_prefix": body.get("path_prefix", "/"), "status": body["status"],
                     "times": int(body.get("times", 1)),
                     **{k: body[k] for k in ("method", "body") if k in body}}
            state.faults.append(fault)
            return 200, {"status": "ok", "fault": fault}
        if (method, path) == ("DELETE", "/__emulator/faults"):
            state.faults.clear()
            return 200, {"status": "ok"}
        return 404, {"error": f"unknown control endpoint {method} {path}"}


def _parse_body(raw: bytes) -> Any:
    """JSON when possible; otherwise the text, so it is still recorded (and rejected by routes)."""
    if not raw.strip():
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Unirest and requests sessions expect
    # Headers and body go out as two writes; with Nagle's algorithm on, the body of every answer on
    # a kept-alive connection waited ~40 ms for the client's delayed ACK (real services set
    # TCP_NODELAY), which made every HTTP-bound benchmark measure the emulator.
    disable_nagle_algorithm = True
    server: SunbirdEmulator

    def _handle(self) -> None:
        split = urlsplit(self.path)
        status, payload = self.server.dispatch(self.command, split.path, split.query,
                                               dict(self.headers.items()), self._read_body())
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


def load_seed(seed: Mapping[str, Any] | str | Path | None) -> JSON:
    if seed is None:
        return {}
    if isinstance(seed, Mapping):
        return dict(seed)
    return json.loads(Path(seed).read_text(encoding="utf-8"))


def make_server(host: str = "127.0.0.1", port: int = 0,
                seed: Mapping[str, Any] | str | Path | None = None,
                verbose: bool = False) -> SunbirdEmulator:
    """Bind (port 0 = any free port) without serving; call serve_forever() e.g. in a thread."""
    return SunbirdEmulator((host, port), load_seed(seed), verbose=verbose)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--seed", help="JSON seed file loaded at start-up and on reset")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, args.seed, verbose=args.verbose)
    print(f"sunbird emulator listening on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
