"""Certificate DoFns: fetch rows and profiles, call Sunbird services, write, emit. Rules live in
``pipelines.domain.certificates``.

Exactly once: a certificate issuance is identified by ``certificate_id`` (uuid5 of user, course,
batch, template and the certificate it replaces) and guarded by a claim row in ``cert.claim.table``
taken with a lightweight transaction (``INSERT ... IF NOT EXISTS``). Only the claim's owner calls RC
create, records the certificate on the enrolment and emits audit/notifications; a duplicate finds
the claim and is a counted skip. States: ``claimed`` -> ``created`` (RC osid recorded) -> ``issued``.
A failing owner releases its lease (so a replay of the failed event can take over at once); a
crashed owner's lease expires after ``cert.claim.lease.secs``. A taker-over reuses a recorded osid,
or searches RC for a record the crashed owner created before it could record it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
import requests
from apache_beam import pvalue

from pipelines.domain import certificates as C
from pipelines.domain.failures import FAILED_TAG, failed_event
from pipelines.io.cassandra import CassandraClient, CassandraConfig
from pipelines.io.http import HttpClient, HttpResponse, TransientHttpError
from pipelines.io.redis_store import RedisClient, RedisConfig
from pipelines.io.retry import RetryPolicy, call_with_retries
from pipelines.metrics import counter

log = logging.getLogger(__name__)
ISSUED_TAG, AUDIT_TAG = "issued", "audit"
JSON_HEADERS = {"Content-Type": "application/json"}
USER_READ_QUERY = "organisations,roles,locations,declarations,externalIds"  # reference: no "fields="


def claim_table_cql(keyspace: str, table: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {keyspace}.{table} (cert_id text PRIMARY KEY, owner text, state text, "
            "osid text, userid text, courseid text, batchid text, template_id text, old_id text, "
            "claimed_at timestamp, updated_at timestamp)")


@dataclass(frozen=True)
class CertSettings:
    job_name: str
    cassandra: CassandraConfig
    tables: dict[str, str]
    content_base: str
    learner_base: str
    content_read_api: str
    user_read_api: str
    rc_base: str
    rc_entity: str
    rc_api_key: str
    cert_domain_url: str
    storage: C.StorageSettings
    assessment_types: tuple[str, ...] = ("SelfAssess",)
    suppress_exception: bool = True
    rc_enabled: bool = True
    bad_chars: str = C.DEFAULT_BAD_CHARS
    sb_keyspace: str = "sunbird"
    certreg_table: str = "cert_registry"
    instance_name: str = "Sunbird"
    claim_table: str = "cert_issue_claims"
    lease_secs: int = 300
    escape_xml: bool = True
    http_timeout_secs: float = 10.0
    http_retries: int = 3
    collection_cache: RedisConfig | None = None  # course metadata (reference: redis.host, collectionCache.id)
    content_cache: RedisConfig | None = None  # content metadata (reference: redis-meta.host, contentCache.id)


def cert_settings(opts, job_name: str) -> CertSettings:
    from pipelines import job

    o = job.values(opts)
    return CertSettings(
        job_name=job_name, cassandra=job.cassandra_config(opts),
        tables={"course_batch": o["lms_cassandra_course_batch_table"],
                "enrolments": o["lms_cassandra_user_enrolments_table"],
                "activity_agg": o["lms_cassandra_user_activity_agg_table"]},
        content_base=o["service_content_basepath"], learner_base=o["service_learner_basepath"],
        content_read_api=o.get("content_read_api") or "/content/v3/read",
        user_read_api=o.get("user_read_api") or "/private/user/v1/read",
        rc_base=o["service_rc_basepath"], rc_entity=o["service_rc_entity"], rc_api_key=o["service_rc_rcapikey"],
        cert_domain_url=o["cert_domain_url"],
        storage=C.StorageSettings(placeholder=o["cloud_store_base_path_placeholder"],
                                  base_url=o["cloud_storage_base_url"], cname_url=o["cloud_storage_cname_url"] or "",
                                  container=o["content_cloud_storage_container"]),
        assessment_types=tuple(t.strip() for t in str(o["assessment_metrics_supported_contenttype"]).strip("[]")
                               .replace('"', "").split(",") if t.strip()),
        suppress_exception=bool(o["enable_suppress_exception"]), rc_enabled=bool(o["enable_rc_certificate"]),
        bad_chars=o["task_rc_badcharlist"], sb_keyspace=o["lms_cassandra_sbkeyspace"],
        certreg_table=o["lms_cassandra_certreg_table"], instance_name=o["sunbird_instance_name"],
        claim_table=o["cert_claim_table"], lease_secs=int(o["cert_claim_lease_secs"]),
        escape_xml=bool(o["cert_escape_xml"]), http_timeout_secs=float(o["http_timeout_secs"]),
        http_retries=int(o["http_retries"]),
        collection_cache=RedisConfig(host=o["redis_host"], port=int(o["redis_port"]),
                                     db=int(o["redis_database_collectioncache_id"])),
        content_cache=RedisConfig(host=o["redis_meta_host"], port=int(o["redis_meta_port"]),
                                  db=int(o["redis_database_contentcache_id"])))


class _CertFn(beam.DoFn):
    METRICS: tuple[str, ...] = ()

    def __init__(self, s: CertSettings):
        self.s = s
        self.c = {name: counter(s.job_name, name) for name in self.METRICS}

    def setup(self):
        self.db = CassandraClient(self.s.cassandra)
        self.http = HttpClient(self.s.http_timeout_secs, RetryPolicy(attempts=self.s.http_retries + 1))
        self.ks = self.s.cassandra.keyspace

    def teardown(self):
        self.db.close()
        self.http.close()

    def _fail(self, event: dict, reason: str, stage: str, metric: str = "failed-events-count"):
        self.c[metric].inc()
        return pvalue.TaggedOutput(FAILED_TAG, failed_event(self.s.job_name, reason, event, stage=stage))

    def _row(self, cql: str, params) -> dict | None:
        rows = self.db.execute(cql, params)
        return rows[0]._asdict() if rows else None

    def _read_user(self, user_id: str, path: str, query: str = "") -> dict | None:
        """User profile; ``None`` for a blocked user (reference: skip). Other answers raise."""
        url = f"{self.s.learner_base}{path}/{user_id}" + (f"?{query}" if query else "")
        r = self.http.request("GET", url, headers=JSON_HEADERS)
        if r.status == 200 and isinstance(r.body, dict):
            return ((r.body.get("result") or {}).get("response")) or {}
        if r.status == 400 and any(code in json.dumps(r.body) for code in C.USER_BLOCKED_CODES):
            return None
        raise C.CertError(f"user read for {user_id} answered {r.status}")

    def _read_content(self, content_id: str, fields: str | None = None) -> dict | None:
        url = f"{self.s.content_base}{self.s.content_read_api}/{content_id}" + (f"?fields={fields}" if fields else "")
        r = self.http.request("GET", url, headers=JSON_HEADERS)
        if r.status == 200 and isinstance(r.body, dict) and str(r.body.get("responseCode", "OK")).upper() == "OK":
            return (r.body.get("result") or {}).get("content") or {}
        return None


# ------------------------------------------------------------------------------- pre-processor


class PreprocessFn(_CertFn):
    """issue-certificate request -> one generate-certificate event per template the learner meets."""

    METRICS = ("total-events-count", "success-events-count", "failed-events-count", "skipped-event-count",
               "db-read-count", "cache-hit-cout", "generate-certificate-events-count")

    def setup(self):
        super().setup()
        self.caches = {name: RedisClient(cfg) for name, cfg in (("collection", self.s.collection_cache),
                                                               ("content", self.s.content_cache)) if cfg}
        t = self.s.tables
        self.cql = {
            "templates": f"SELECT cert_templates FROM {self.ks}.{t['course_batch']} WHERE courseid = ? AND batchid = ?",
            "enrolment": f"SELECT * FROM {self.ks}.{t['enrolments']} WHERE userid = ? AND courseid = ? AND batchid = ?",
            "agg": f"SELECT aggregates, agg FROM {self.ks}.{t['activity_agg']} WHERE activity_type = 'Course' "
                   "AND activity_id = ? AND user_id = ? AND context_id = ?",
        }

    def teardown(self):
        for cache in self.caches.values():
            cache.close()
        super().teardown()

    def _cached(self, cache: str, key: str) -> dict | None:
        """Reference ``DataCache.getWithRetry``: a JSON object under ``key``; a miss or junk is ``None``."""
        client = self.caches.get(cache)
        if client is None:
            return None
        try:
            raw = client.call(lambda r: r.get(key), f"{cache} cache get")
            value = json.loads(raw) if raw else None
        except Exception:  # noqa: BLE001 - a cache is an optimisation: fall back to the API
            return None
        if isinstance(value, dict) and value:
            self.c["cache-hit-cout"].inc()
            return value
        return None

    def process(self, event: dict):
        self.c["total-events-count"].inc()
        try:
            req = C.parse_issue_request(event)
        except C.Skip:
            self.c["skipped-event-count"].inc()
            return
        try:
            out, reasons = self._evaluate(req, event)
        except Exception as e:  # noqa: BLE001 - stores/services down after retries: dead-letter with the reason
            yield self._fail(event, f"certificate pre-processing failed: {e}", "preprocess")
            return
        for ev in out:
            self.c["generate-certificate-events-count"].inc()
            yield ev
        if reasons:
            yield self._fail(event, "; ".join(reasons), "criteria")
        elif out:
            self.c["success-events-count"].inc()
        else:
            self.c["skipped-event-count"].inc()

    def _evaluate(self, req: C.IssueRequest, event: dict) -> tuple[list[dict], list[str]]:
        row = self._row(self.cql["templates"], (req.course_id, req.batch_id))
        self.c["db-read-count"].inc()
        templates = C.usable_templates((row or {}).get("cert_templates"))
        if not templates:
            return [], []
        enrolment = self._row(self.cql["enrolment"], (req.user_id, req.course_id, req.batch_id))
        self.c["db-read-count"].inc()
        out, reasons = [], []
        user: dict | None = None
        user_read = False
        course_name: str | None = None
        now_ms = int(time.time() * 1000)
        for tid in sorted(templates):
            t = templates[tid]
            try:
                criteria = C.template_criteria(t, req.batch_id)
                additional = C.parse_json_field(t.get("additionalProps"), {})
                enrolled = C.check_enrolment(req, criteria.get("enrollment") or {}, enrolment, t.get("name", ""),
                                             additional)
                scores = self._scores(req) if criteria.get("assessment") and enrolled.user_id else {}
                assessed, _ = C.check_assessment(criteria.get("assessment") or {}, enrolled.user_id, scores,
                                                 additional)
                if not assessed:
                    continue
                if not user_read:
                    user, user_read = self._read_user(req.user_id, self.s.user_read_api, USER_READ_QUERY), True
                decision = C.validate_cert_criteria(req, t, enrolment, scores, user)
                if not decision.qualified:
                    continue
                if course_name is None:
                    content = self._cached("collection", req.course_id) or self._read_content(req.course_id, "name")
                    if content is None:
                        raise C.CertError(f"course {req.course_id} not found")
                    course_name = C.clean_text(content.get("name"))
                out.append(C.build_cert_request(req, t, decision, user or {}, course_name, self.s.cert_domain_url,
                                                self.s.storage, now_ms))
            except C.CertError as e:
                reasons.append(f"template {tid}: {e}")
        return out, reasons

    def _scores(self, req: C.IssueRequest) -> dict[str, float]:
        row = self._row(self.cql["agg"], (req.course_id, req.user_id, f"cb:{req.batch_id}"))
        self.c["db-read-count"].inc()
        if not row:
            return {}
        scores = C.assessment_scores(row.get("aggregates"), row.get("agg"))
        kept = {}
        for cid, pct in scores.items():
            try:
                meta = self._cached("content", cid) or self._read_content(cid)
            except Exception:  # noqa: BLE001
                meta = None
            if meta is None:
                if not self.s.suppress_exception:
                    raise C.CertError(f"Metadata not available in cache or API {cid}")
                continue
            if str(meta.get("contentType", meta.get("contenttype", ""))) in self.s.assessment_types:
                kept[cid] = pct
        return kept


# ----------------------------------------------------------------------------------- generator


class GenerateFn(_CertFn):
    """generate-certificate event -> RC certificate, ``issued_certificates`` entry, audit; exactly once."""

    METRICS = ("total-events-count", "success-events-count", "failed-events-count", "skipped-event-count",
               "enrollment-db-read-count", "db-update-user-enrollment-count", "duplicate-issue-count",
               "claim-takeover-count", "signatory-validation-suppressed-count", "rc-create-count")

    def setup(self):
        super().setup()
        t, claims = self.s.tables, f"{self.ks}.{self.s.claim_table}"
        self.db.session.execute(claim_table_cql(self.ks, self.s.claim_table))
        self.cql = {
            "enrolment": f"SELECT issued_certificates, completedon FROM {self.ks}.{t['enrolments']} "
                         "WHERE userid = ? AND courseid = ? AND batchid = ?",
            "claim": f"INSERT INTO {claims} (cert_id, owner, state, userid, courseid, batchid, template_id, old_id, "
                     "claimed_at, updated_at) VALUES (?, ?, 'claimed', ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
            "takeover": f"UPDATE {claims} SET owner = ?, claimed_at = ? WHERE cert_id = ? IF owner = ? AND state != "
                        "'issued'",
            "created": f"UPDATE {claims} SET state = 'created', osid = ?, updated_at = ? WHERE cert_id = ? "
                       "IF owner = ?",
            "issued": f"UPDATE {claims} SET state = 'issued', updated_at = ? WHERE cert_id = ? IF owner = ?",
            "release": f"UPDATE {claims} SET claimed_at = ? WHERE cert_id = ? IF owner = ?",
            "set_certs": f"UPDATE {self.ks}.{t['enrolments']} SET issued_certificates = ? "
                         "WHERE userid = ? AND courseid = ? AND batchid = ? IF issued_certificates = ?",
            "certreg_delete": f"DELETE FROM {self.s.sb_keyspace}.{self.s.certreg_table} WHERE id = ? IF EXISTS",
        }

    def process(self, event: dict):
        self.c["total-events-count"].inc()
        try:
            req = C.validate_generate_request(event, self.s.suppress_exception)
        except C.CertError as e:
            yield self._fail(event, str(e), "validate")
            return
        if req.signatory_problem:
            self.c["signatory-validation-suppressed-count"].inc()
            log.warning("signatory list invalid (suppressed): %s", req.signatory_problem)
        if not self.s.rc_enabled:
            yield self._fail(event, "enable.rc.certificate=false: the legacy (non-RC) issuance is not supported",
                             "validate")
            return
        try:
            row = self._row(self.cql["enrolment"], (req.user_id, req.course_id, req.batch_id))
            self.c["enrollment-db-read-count"].inc()
            issued = row is not None and any(
                (c.get("name") or "").lower() == req.name.lower() for c in row.get("issued_certificates") or [])
            if row is None or (issued and not req.old_id):  # reference isNotIssued: a counted skip
                self.c["skipped-event-count"].inc()
                return
            results = [self._issue(req, r) for r in req.recipients]
        except Exception as e:  # noqa: BLE001 - after retries: dead-letter with the reason
            yield self._fail(event, f"certificate generation failed: {e}", "generate")
            return
        issued_any = False
        for res in results:
            if res is None:
                continue
            issued_any = True
            yield pvalue.TaggedOutput(AUDIT_TAG, res["audit"])
            yield pvalue.TaggedOutput(ISSUED_TAG, res["issued"])
        self.c["success-events-count" if issued_any else "skipped-event-count"].inc()

    # ---------------------------------------------------------------------------- exactly once

    def _issue(self, req: C.GenerateRequest, recipient: dict) -> dict | None:
        user_id = str(recipient.get("recipientId") or req.user_id)
        cert_id = C.certificate_id(user_id, req.course_id, req.batch_id, req.template_id, req.old_id)
        owner, now = str(uuid.uuid4()), datetime.now(tz=UTC)
        res = self.db.execute(self.cql["claim"], (cert_id, owner, user_id, req.course_id, req.batch_id,
                                                   req.template_id, req.old_id, now, now))[0]
        existing: dict[str, Any] = {}
        if not res[0]:
            existing = res._asdict()
            if existing.get("state") == "issued":
                self.c["duplicate-issue-count"].inc()
                return None
            claimed_at = existing.get("claimed_at")
            age = (now.replace(tzinfo=None) - claimed_at).total_seconds() if claimed_at else float("inf")
            if age < self.s.lease_secs:  # another worker is issuing it right now
                self.c["duplicate-issue-count"].inc()
                return None
            took = self.db.execute(self.cql["takeover"], (owner, now, cert_id, existing.get("owner")))[0]
            if not took[0]:
                self.c["duplicate-issue-count"].inc()
                return None
            self.c["claim-takeover-count"].inc()
        try:
            osid = existing.get("osid")
            if not osid:
                if existing:
                    osid = self._rc_find(req, user_id)
                if not osid:
                    osid = self._rc_create(req, recipient)
                self._owned(self.db.execute(self.cql["created"], (osid, datetime.now(tz=UTC), cert_id, owner)))
            completed_on = self._record(req, user_id, osid)
            self._owned(self.db.execute(self.cql["issued"], (datetime.now(tz=UTC), cert_id, owner)))
        except Exception:
            try:  # release the lease at once, so a replay of the failed event can take over
                self.db.execute(self.cql["release"], (datetime(1970, 1, 1, tzinfo=UTC), cert_id, owner))
            except Exception:  # noqa: BLE001
                log.exception("could not release claim %s", cert_id)
            raise
        now_ms = int(time.time() * 1000)
        return {"audit": C.certificate_audit_event(user_id, req.course_id, req.batch_id, osid, now_ms),
                "issued": {"userId": user_id, "courseId": req.course_id, "batchId": req.batch_id,
                           "courseName": str(req.edata.get("courseName") or ""), "templateId": req.template_id,
                           "issuedOn": completed_on.isoformat() if completed_on else None, "certificateId": osid,
                           "source": req.event}}

    @staticmethod
    def _owned(rows) -> None:
        if not rows or not rows[0][0]:
            raise RuntimeError("lost the certificate claim to another worker")

    def _record(self, req: C.GenerateRequest, user_id: str, osid: str) -> datetime | None:
        """Compare-and-set of ``issued_certificates`` (a concurrent write of another template is kept)."""
        for _ in range(10):
            row = self._row(self.cql["enrolment"], (user_id, req.course_id, req.batch_id))
            self.c["enrollment-db-read-count"].inc()
            if row is None:
                raise C.CertError(f"enrolment {user_id}/{req.course_id}/{req.batch_id} not found")
            current = row.get("issued_certificates")
            updated = C.issued_certificates_after(
                current, req.name, osid, datetime.now(tz=UTC), str(req.edata.get("svgTemplate") or ""),
                self.s.rc_entity, self.s.rc_enabled)
            res = self.db.execute(self.cql["set_certs"], (updated, user_id, req.course_id, req.batch_id,
                                                          current if current else None))
            if res and res[0][0]:
                self.c["db-update-user-enrollment-count"].inc()
                return row.get("completedon")
        raise RuntimeError("issued_certificates kept changing under concurrent writers")

    # ------------------------------------------------------------------------------------ RC

    def _rc_url(self, *parts: str) -> str:
        return "/".join([self.s.rc_base.rstrip("/"), *parts])

    def _rc_create(self, req: C.GenerateRequest, recipient: dict) -> str:
        if req.old_id:
            self._rc_delete(req.old_id)
        r = self.http.request("POST", self._rc_url("PublicKey", "search"), {"filters": {}}, JSON_HEADERS)
        if r.status != 200 or not isinstance(r.body, list) or not r.body:
            raise C.CertError(f"RC public key search answered {r.status}")
        kid = r.body[0].get("osid")
        body = C.rc_create_request(req, recipient, kid, self.s.storage, self.s.escape_xml)
        text = C.remove_bad_chars(json.dumps(body, ensure_ascii=False), self.s.bad_chars)
        r = self._post_text(self._rc_url(self.s.rc_entity), text,
                            {**JSON_HEADERS, "Authorization": self.s.rc_api_key})
        self.c["rc-create-count"].inc()
        osid = ((r.body.get("result") or {}).get(self.s.rc_entity) or {}).get("osid") if isinstance(r.body, dict) \
            else None
        if r.status != 200 or not osid:
            raise C.CertError(f"RC create answered {r.status}: {str(r.body)[:200]}")
        return osid

    def _post_text(self, url: str, text: str, headers: dict):
        """POST an already serialized body (the bad-char cleaning works on the JSON text)."""

        def once():
            r = self.http.session.post(url, data=text.encode("utf-8"), headers=headers,
                                       timeout=self.http.timeout_secs)
            if r.status_code >= 500:
                raise TransientHttpError(f"POST {url} answered {r.status_code}: {r.text[:200]}")
            try:
                return HttpResponse(r.status_code, r.json())
            except ValueError:
                return HttpResponse(r.status_code, r.text)

        return call_with_retries(once, self.http.retry, (requests.ConnectionError, requests.Timeout,
                                                         TransientHttpError), f"POST {url}")

    def _rc_delete(self, old_id: str) -> None:
        """Reference re-issue: delete the old RC record; if RC has none, the old registry row."""
        try:
            r = self.http.request("DELETE", self._rc_url(self.s.rc_entity, old_id))
            ok = r.status == 200
        except Exception as e:  # noqa: BLE001
            log.error("RC delete of %s failed: %s", old_id, e)
            ok = False
        if not ok:
            try:
                self.db.execute(self.cql["certreg_delete"], (old_id,))
            except Exception as e:  # noqa: BLE001
                log.error("old registry deletion failed for %s: %s", old_id, e)

    def _rc_find(self, req: C.GenerateRequest, user_id: str) -> str | None:
        """After a takeover: the record a crashed owner created but did not record, if any."""
        filters = {"recipient.id": {"eq": user_id}, "training.id": {"eq": req.course_id},
                   "training.batchId": {"eq": req.batch_id}, "status": {"eq": "ACTIVE"}}
        if req.old_id:
            filters["oldId"] = {"eq": req.old_id}
        r = self.http.request("POST", self._rc_url(self.s.rc_entity, "search"), {"filters": filters}, JSON_HEADERS)
        if r.status == 200 and isinstance(r.body, list):
            label = C.xml_escape(req.name) if self.s.escape_xml else req.name
            for rec in r.body:
                if rec.get("certificateLabel") == label and rec.get("osid"):
                    return rec["osid"]
        return None


class NotifyFn(_CertFn):
    """After issuance (owner only): email/SMS notification and user feed (reference NotifierFunction,
    CreateUserFeedFunction). A failure is dead-lettered with stage ``notify``; the certificate stays."""

    METRICS = ("notified-user-count", "skipped-notify-user-count", "db-course-batch-read-count", "user-feed-count",
               "failed-notification-count")

    def setup(self):
        super().setup()
        self.cql = f"SELECT cert_templates FROM {self.ks}.{self.s.tables['course_batch']} " \
                   "WHERE courseid = ? AND batchid = ?"

    def process(self, issued: dict):
        try:
            self._notify(issued)
        except Exception as e:  # noqa: BLE001
            yield self._fail(issued["source"], f"notification failed after issuance of {issued['certificateId']}: "
                                               f"{e}", "notify", "failed-notification-count")
        try:
            body = C.user_feed_request(issued["userId"], issued["courseName"], issued["courseId"])
            r = self.http.request("POST", f"{self.s.learner_base}/private/user/feed/v1/create", body, JSON_HEADERS)
            if r.status != 200:
                raise C.CertError(f"user feed answered {r.status}")
            self.c["user-feed-count"].inc()
        except Exception as e:  # noqa: BLE001
            yield self._fail(issued["source"], f"user feed failed after issuance of {issued['certificateId']}: "
                                               f"{e}", "user-feed", "failed-notification-count")

    def _notify(self, issued: dict) -> None:
        user = self._read_user(issued["userId"], "/private/user/v1/read")
        if not user:
            self.c["skipped-notify-user-count"].inc()
            return
        row = self._row(self.cql, (issued["courseId"], issued["batchId"]))
        self.c["db-course-batch-read-count"].inc()
        template = C.notify_template((row or {}).get("cert_templates"), issued["templateId"], self.s.storage)
        if template is None:
            self.c["skipped-notify-user-count"].inc()
            return
        issued_on = datetime.fromisoformat(issued["issuedOn"]) if issued.get("issuedOn") else None
        for body in C.notification_requests(template, user, issued["userId"], issued["courseName"], issued_on,
                                            self.s.instance_name):
            r = self.http.request("POST", f"{self.s.learner_base}/v2/notification", body, JSON_HEADERS)
            if r.status != 200:
                raise C.CertError(f"notification answered {r.status}")
        self.c["notified-user-count"].inc()
