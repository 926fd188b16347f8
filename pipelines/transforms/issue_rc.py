"""IssueRC: generate-certificate requests -> certificates in Sunbird RC, exactly once, recorded on
the enrolment (the collection-certificate-generator's stage; reference
``CertificateGeneratorFunction.generateCertificateUsingRC``).

    requests --> ValidateEvents(generate_requests) --> _IssueFn --> audit events, issued records
                      |  (CertValidator messages)          |  claim (LWT) -> RC create -> CAS record
                      +-- failed                           +-- failed (reason, event kept whole)

Per request: the enrolment (``enrollment-db-read-count``); none is a counted skip. The request
must name one of the batch's ``cert_templates``, its recipients must be its learner and an
``oldId`` must be the learner's issued certificate of that name (``issuance_problem``); else it
fails with the reason, because an altered copy would be an issuance no claim guards. Then a
certificate of this name already issued without ``oldId`` is a counted skip (reference
``isNotIssued``).

Exactly once: an issuance is identified by ``certificate_id`` (uuid5 of user, course, batch,
template and the certificate it replaces) and guarded by a claim row in ``cert.claim.table``
taken with a lightweight transaction (``INSERT ... IF NOT EXISTS``). The table is lern-beam's own
and is created by ``local/schema.cql``, which operators apply with the rest of the schema (a job
does not run DDL). Only the claim's owner calls RC, records the certificate on the enrolment and
emits the audit event and the issued record; a duplicate finds the claim and is a counted skip.
States: ``claimed`` -> ``created`` (RC osid recorded) -> ``issued``. A failing owner releases its
lease (so a replay of the failed event can take over at once); a crashed owner's lease expires
after ``cert.claim.lease.secs``. A taker-over reuses a recorded osid, or searches RC for a record
the crashed owner created before it could record it.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from pipelines.domain import certificates as C
from pipelines.domain import vc as V
from pipelines.io.cassandra import CassandraClient
from pipelines.io.rc import RCClient, RCUnavailable
from pipelines.options.certificates import CertSettings
from pipelines.transforms.concurrent_calls import Tally, map_concurrently
from pipelines.transforms.failures import FAILED_TAG, fail
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

log = logging.getLogger(__name__)
ISSUED_TAG, AUDIT_TAG = "issued", "audit"
VALIDATION = ValidationMetrics(failed="failed-events-count", skipped="skipped-event-count",
                               total="total-events-count")
_RELEASED = datetime(1970, 1, 1, tzinfo=UTC)


class LostClaim(RuntimeError):
    """Another worker took this issuance's claim over while we held it."""


class _IssueFn(beam.DoFn):
    METRICS = ("success-events-count", "failed-events-count", "skipped-event-count",
               "enrollment-db-read-count", "db-update-user-enrollment-count", "duplicate-issue-count",
               "claim-takeover-count", "signatory-validation-suppressed-count", "rc-create-count")

    def __init__(self, s: CertSettings):
        self.s = s

    def setup(self):
        self.c = Tally(self.s.job_name, self.METRICS)
        self.pool = ThreadPoolExecutor(max_workers=self.s.http_parallelism, thread_name_prefix="issue-rc")
        self.db = CassandraClient(self.s.cassandra)
        self.rc = RCClient(self.s.rc_base, self.s.rc_entity, self.s.rc_api_key, self.s.http_timeout_secs,
                           self.s.http_retries)
        ks, t, claims = self.s.cassandra.keyspace, self.s.tables, f"{self.s.cassandra.keyspace}.{self.s.claim_table}"
        status = f"{ks}.{self.s.status_table}"
        self.cql = {
            "enrolment": f"SELECT issued_certificates, completedon FROM {ks}.{t['enrolments']} "
                         "WHERE userid = ? AND courseid = ? AND batchid = ?",
            "templates": f"SELECT cert_templates FROM {ks}.{t['course_batch']} WHERE courseid = ? AND batchid = ?",
            "claimed": f"SELECT cert_id FROM {claims} WHERE cert_id = ?",
            "claim": f"INSERT INTO {claims} (cert_id, owner, state, userid, courseid, batchid, template_id, old_id, "
                     "claimed_at, updated_at) VALUES (?, ?, 'claimed', ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
            "takeover": f"UPDATE {claims} SET owner = ?, claimed_at = ? WHERE cert_id = ? IF owner = ? AND state != "
                        "'issued'",
            "created": f"UPDATE {claims} SET state = 'created', osid = ?, updated_at = ? WHERE cert_id = ? "
                       "IF owner = ?",
            "issued": f"UPDATE {claims} SET state = 'issued', updated_at = ? WHERE cert_id = ? IF owner = ?",
            "release": f"UPDATE {claims} SET claimed_at = ? WHERE cert_id = ? IF owner = ?",
            "set_certs": f"UPDATE {ks}.{t['enrolments']} SET issued_certificates = ? "
                         "WHERE userid = ? AND courseid = ? AND batchid = ? IF issued_certificates = ?",
            "certreg_delete": f"DELETE FROM {self.s.sb_keyspace}.{self.s.certreg_table} WHERE id = ? IF EXISTS",
            "status_new": f"INSERT INTO {status} (cert_id, backend, status, version, userid, courseid, batchid, "
                          "template_id, issue_id, issued_at, changed_at) "
                          "VALUES (?, ?, 'active', 0, ?, ?, ?, ?, ?, ?, 0) IF NOT EXISTS",
            "status_read": f"SELECT status, version FROM {status} WHERE cert_id = ?",
            "status_supersede": f"UPDATE {status} SET status = 'superseded', superseded_by = ?, version = ? "
                                "WHERE cert_id = ? IF version = ?",
            "status_old": f"INSERT INTO {status} (cert_id, backend, status, version, userid, courseid, batchid, "
                          "superseded_by, changed_at) VALUES (?, ?, 'superseded', 1, ?, ?, ?, ?, 0) IF NOT EXISTS",
        }

        self.vc = None
        if self.s.backend == "vc":
            from pipelines.io.vc_keys import key_id, load_signing_key  # jwcrypto: needed by the vc backend only

            key = load_signing_key(self.s.vc_key)
            self.vc = (key, key_id(self.s.vc_issuer_id, key))
            index = f"{ks}.{self.s.status_table}_index"
            self.cql.update({
                "vc_row": f"SELECT issued_at, list_id, status_index FROM {status} WHERE cert_id = ?",
                "vc_take": f"INSERT INTO {index} (list_id, idx, cert_id) VALUES (?, ?, ?) IF NOT EXISTS",
                "vc_index": f"UPDATE {status} SET list_id = ?, status_index = ? WHERE cert_id = ?",
                "vc_credential": f"UPDATE {status} SET credential = ? WHERE cert_id = ?",
            })

    def teardown(self):
        self.pool.shutdown()
        self.rc.close()
        self.db.close()

    def process(self, requests: list[C.GenerateRequest]):
        """A batch of requests, ``cert.http.parallelism`` of them in flight (``concurrent_calls``)."""
        yield from map_concurrently(self.pool, self.c, self._handle, requests)

    def _handle(self, req: C.GenerateRequest):
        if req.signatory_problem:
            self.c.inc("signatory-validation-suppressed-count")
            log.warning("signatory list invalid (suppressed): %s", req.signatory_problem)
        try:
            row = self._enrolment(req.user_id, req)
            if row is None:
                self.c.inc("skipped-event-count")  # reference isNotIssued: a counted skip
                return
            problem = C.issuance_problem(
                req, (self._row(self.cql["templates"], (req.course_id, req.batch_id)) or {}).get("cert_templates"),
                row.get("issued_certificates"), functools.partial(self._claimed, req))
            if problem:
                self.c.inc("failed-events-count")
                yield fail(self.s.job_name, problem, req.event, stage="validate")
                return
            if C.already_issued(req, row.get("issued_certificates")):
                self.c.inc("skipped-event-count")  # reference isNotIssued: a counted skip
                return
            results = [self._issue(req, r) for r in req.recipients]
        except Exception as e:  # noqa: BLE001 - after retries: dead-letter with the reason
            self.c.inc("failed-events-count")
            yield fail(self.s.job_name, f"certificate generation failed: {e}", req.event, stage="generate")
            return
        issued_any = False
        for res in results:
            if res is None:
                continue
            issued_any = True
            yield pvalue.TaggedOutput(AUDIT_TAG, res["audit"])
            yield pvalue.TaggedOutput(ISSUED_TAG, res["issued"])
        self.c.inc("success-events-count" if issued_any else "skipped-event-count")

    # ------------------------------------------------------------------------------- reads

    def _row(self, cql: str, params) -> dict | None:
        rows = self.db.execute(cql, params)
        return rows[0]._asdict() if rows else None

    def _enrolment(self, user_id: str, req: C.GenerateRequest) -> dict | None:
        row = self._row(self.cql["enrolment"], (user_id, req.course_id, req.batch_id))
        self.c.inc("enrollment-db-read-count")
        return row

    def _claimed(self, req: C.GenerateRequest) -> bool:
        """Was any issuance of this request (one of its recipients) claimed already?"""
        return any(self._row(self.cql["claimed"], (self._cert_id(req, r),)) for r in req.recipients)

    @staticmethod
    def _recipient_id(req: C.GenerateRequest, recipient: dict) -> str:
        return str(recipient.get("recipientId") or req.user_id)

    def _cert_id(self, req: C.GenerateRequest, recipient: dict) -> str:
        return C.certificate_id(self._recipient_id(req, recipient), req.course_id, req.batch_id, req.template_id,
                                req.old_id)

    # ---------------------------------------------------------------------------- exactly once

    def _issue(self, req: C.GenerateRequest, recipient: dict) -> dict | None:
        user_id = self._recipient_id(req, recipient)
        cert_id = self._cert_id(req, recipient)
        owner, now = str(uuid.uuid4()), datetime.now(tz=UTC)
        res = self.db.execute(self.cql["claim"], (cert_id, owner, user_id, req.course_id, req.batch_id,
                                                   req.template_id, req.old_id, now, now))[0]
        existing: dict[str, Any] = {}
        if not res[0]:
            existing = res._asdict()
            if C.claim_conflict(existing, now, self.s.lease_secs) == "duplicate":
                self.c.inc("duplicate-issue-count")
                return None
            took = self.db.execute(self.cql["takeover"], (owner, now, cert_id, existing.get("owner")))[0]
            if not took[0]:
                self.c.inc("duplicate-issue-count")
                return None
            self.c.inc("claim-takeover-count")
        try:
            osid = cert_id if self.vc else existing.get("osid")  # vc: the credential is urn:uuid:<cert_id>
            if not osid:
                if existing:
                    osid = self._rc_find(req, user_id)
                if not osid:
                    osid = self._rc_create(req, recipient)
                self._owned(self.db.execute(self.cql["created"], (osid, datetime.now(tz=UTC), cert_id, owner)))
            completed_on = self._record(req, user_id, osid)
            self._record_status(req, user_id, cert_id, osid)
            if self.vc:
                self._vc_issue(req, recipient, user_id, cert_id)
            self._owned(self.db.execute(self.cql["issued"], (datetime.now(tz=UTC), cert_id, owner)))
        except Exception:
            try:  # release the lease at once, so a replay of the failed event can take over
                self.db.execute(self.cql["release"], (_RELEASED, cert_id, owner))
            except Exception:  # noqa: BLE001
                log.exception("could not release claim %s", cert_id)
            raise
        now_ms = int(time.time() * 1000)
        return {"audit": C.certificate_audit_event(user_id, req.course_id, req.batch_id, osid, now_ms),
                "issued": {"userId": user_id, "courseId": req.course_id, "batchId": req.batch_id,
                           "courseName": str(req.edata.get("courseName") or ""), "templateId": req.template_id,
                           "issuedOn": C.jackson_value(completed_on), "certificateId": osid,
                           "source": req.event}}

    @staticmethod
    def _owned(rows) -> None:
        if not rows or not rows[0][0]:
            raise LostClaim("lost the certificate claim to another worker")

    def _record(self, req: C.GenerateRequest, user_id: str, osid: str) -> datetime | None:
        """Compare-and-set of ``issued_certificates`` (a concurrent write of another template is kept)."""
        for _ in range(10):
            row = self._enrolment(user_id, req)
            if row is None:
                raise C.CertError(f"enrolment {user_id}/{req.course_id}/{req.batch_id} not found")
            current = row.get("issued_certificates")
            updated = C.issued_certificates_after(
                current, req.name, osid, datetime.now(tz=UTC), str(req.edata.get("svgTemplate") or ""),
                self.s.rc_entity if self.vc is None else "OpenBadgeCredential", self.s.rc_enabled)
            res = self.db.execute(self.cql["set_certs"], (updated, user_id, req.course_id, req.batch_id,
                                                          current if current else None))
            if res and res[0][0]:
                self.c.inc("db-update-user-enrollment-count")
                return row.get("completedon")
        raise RuntimeError("issued_certificates kept changing under concurrent writers")

    def _record_status(self, req: C.GenerateRequest, user_id: str, cert_id: str, osid: str) -> None:
        """The credential's ``certificate_status`` row (what certificate-status-updater changes), and on a
        re-issue the old credential marked ``superseded`` (a revoked one stays revoked). Idempotent, so
        a taker-over does it again safely; before the claim is ``issued``, so it is never skipped."""
        self.db.execute(self.cql["status_new"], (osid, self.s.backend, user_id, req.course_id, req.batch_id,
                                                 req.template_id, cert_id, datetime.now(tz=UTC)))
        if not req.old_id:
            return
        for _ in range(10):
            rows = self.db.execute(self.cql["status_read"], (req.old_id,))
            if not rows:  # issued before the status table: its row starts superseded
                if self.db.execute(self.cql["status_old"], (req.old_id, self.s.backend, user_id, req.course_id,
                                                            req.batch_id, osid))[0][0]:
                    return
                continue
            if rows[0].status in ("revoked", "superseded"):
                return
            version = rows[0].version
            if self.db.execute(self.cql["status_supersede"], (osid, (version or 0) + 1, req.old_id, version))[0][0]:
                return
        raise RuntimeError(f"certificate {req.old_id} kept changing while it was being superseded")

    # ------------------------------------------------------------------------------------ VC

    def _vc_issue(self, req: C.GenerateRequest, recipient: dict, user_id: str, cert_id: str) -> None:
        """``--cert_backend=vc``: a status list index taken once (first free candidate, ``IF NOT EXISTS``),
        then the signed credential, built only from the stored issuance (so a replay writes the same bytes)."""
        row = self.db.execute(self.cql["vc_row"], (cert_id,))[0]
        list_id, index = row.list_id, row.status_index
        if index is None:
            list_id = self.s.vc_status_list
            for candidate in V.status_index_candidates(cert_id):
                took = self.db.execute(self.cql["vc_take"], (list_id, candidate, cert_id))[0]
                if took[0] or took._asdict().get("cert_id") == cert_id:
                    index = candidate
                    break
            else:
                raise RuntimeError(f"status list {list_id} has no free index for {cert_id}: start a new list")
            self.db.execute(self.cql["vc_index"], (list_id, index, cert_id))
        edata = req.edata
        credential = V.badge_credential(
            cert_id, row.issued_at.replace(tzinfo=UTC),
            issuer={"id": self.s.vc_issuer_id, "name": self.s.vc_issuer_name}, recipient_id=user_id,
            recipient_name=str(recipient.get("recipientName") or ""),
            achievement_id=f"urn:sunbird:certificate-template:{req.template_id}", name=req.name,
            narrative=str((edata.get("criteria") or {}).get("narrative") or ""), course_id=req.course_id,
            course_name=str(edata.get("courseName") or ""), batch_id=req.batch_id,
            status_base_url=self.s.vc_status_base_url, list_id=list_id, index=index)
        key, kid = self.vc
        self.db.execute(self.cql["vc_credential"], (V.sign_jwt(credential, key, self.s.vc_alg, kid), cert_id))

    # ------------------------------------------------------------------------------------ RC

    def _rc_create(self, req: C.GenerateRequest, recipient: dict) -> str:
        if req.old_id:
            self._rc_delete(req.old_id)
        body = C.rc_create_request(req, recipient, self.rc.public_key_id(), self.s.storage, self.s.escape_xml)
        self.c.inc("rc-create-count")
        return self.rc.create(C.clean_values(body, self.s.bad_chars))

    def _rc_delete(self, old_id: str) -> None:
        """Reference re-issue: delete the old RC record; if RC answers no, the old registry row."""
        try:
            self.rc.delete(old_id)
            return
        except RCUnavailable as e:  # reference: a connection failure is only logged
            log.error("RC delete of %s failed: %s", old_id, e)
            return
        except Exception as e:  # noqa: BLE001 - RC answered no: the certificate is a legacy one
            log.info("RC delete of %s: %s; deleting the old registry row", old_id, e)
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
        label = C.clean_values(C.xml_escape(req.name) if self.s.escape_xml else req.name, self.s.bad_chars)
        for rec in self.rc.search(filters):
            if rec.get("certificateLabel") == label and rec.get("osid"):
                return rec["osid"]
        return None


class IssueRC(beam.PTransform):
    """``audit, issued, failed = requests | IssueRC(settings)``.

    ``requests`` are generate-certificate events; ``audit`` the ``certificate-issued-svg`` AUDIT
    events; ``issued`` one record per certificate issued by this delivery (user, course, batch,
    template, ``certificateId``, ``issuedOn`` and the ``source`` event), for the notification step.
    """

    def __init__(self, settings: CertSettings):
        super().__init__()
        self.s = settings

    def expand(self, requests):
        parse = functools.partial(C.generate_requests, suppress_signatory=self.s.suppress_exception,
                                  rc_enabled=self.s.rc_enabled)
        valid, invalid = requests | "Validate" >> ValidateEvents(self.s.job_name, parse, VALIDATION)
        out = (valid
               | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=4 * self.s.http_parallelism)
               | "Issue" >> beam.ParDo(_IssueFn(self.s)).with_outputs(FAILED_TAG, AUDIT_TAG, ISSUED_TAG))
        failed = (invalid, out[FAILED_TAG]) | "Failures" >> beam.Flatten()
        return out[AUDIT_TAG], out[ISSUED_TAG], failed
