"""ChangeCertificateStatus: certificate-status requests -> the credential's row changed once, an
AUDIT event per applied change, Sunbird RC told of revocations (certificate-status-updater's stage).

    requests --> ValidateEvents(parse_status_request) --> _ChangeStatusFn --> audit events
                      |                                       |  read row -> decide -> [RC revoke] -> LWT
                      +-- failed                              +-- failed (reason, event kept whole)

The commit point is ``UPDATE certificate_status ... IF version = <read>``: of two workers applying
the same or conflicting requests one wins, the other re-reads and decides again (the replay is then
a ``duplicate`` no-op). The rules (ordering by ``requestedAt``, revocation terminal) are
``pipelines.domain.cert_status.decide``.

RC backend: a revoke calls ``POST {rc}/{entity}/{id}/revoke`` *before* the commit. RC answers a
repeat with HTTP 500 "Credential is already revoked", counted as done
(``rc-already-revoked-count``), so a crash between the RC call and the commit, or two workers
racing, still ends with one committed change and one audit event. RC is down: nothing is
committed, the event is dead-lettered with the reason, and its replay does it all again. RC has no
suspension: suspend/unsuspend change only the row (and, with the vc backend, the status lists).

A credential without a row (issued before the table existed) is looked up in RC (``GET
{rc}/{entity}/{id}``) and its row written from the record (``backfilled-certificate-count``); a
certificate RC does not know either (or any unknown id with the vc backend) is dead-lettered with
the reason, never given a placeholder row.
"""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam import pvalue

from pipelines.domain import cert_status as S
from pipelines.io.cassandra import CassandraClient
from pipelines.io.rc import RCClient, RCNotFound
from pipelines.metrics import counter
from pipelines.options.certificates import CertSettings
from pipelines.transforms.failures import FAILED_TAG, fail
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

log = logging.getLogger(__name__)
AUDIT_TAG = "audit"
VALIDATION = ValidationMetrics(failed="failed-events-count", skipped="skipped-event-count",
                               total="total-events-count")
STATUS_COLUMNS = "cert_id, backend, status, version, userid, courseid, batchid, changed_at, change_request"
NOOP_METRIC = {"duplicate": "duplicate-change-count", "stale": "stale-change-count",
               "terminal": "terminal-change-count"}


class _ChangeStatusFn(beam.DoFn):
    METRICS = ("success-events-count", "failed-events-count", "skipped-event-count", "status-changed-count",
               "status-advanced-count", "duplicate-change-count", "stale-change-count", "terminal-change-count",
               "unknown-certificate-count", "backfilled-certificate-count", "rc-revoke-count",
               "rc-already-revoked-count", "status-conflict-count", "db-update-user-enrollment-count")
    ATTEMPTS = 10

    def __init__(self, s: CertSettings):
        self.s = s
        self.c = {name: counter(s.job_name, name) for name in self.METRICS}

    def setup(self):
        self.db = CassandraClient(self.s.cassandra)
        self.rc = (RCClient(self.s.rc_base, self.s.rc_entity, self.s.rc_api_key, self.s.http_timeout_secs,
                            self.s.http_retries) if self.s.backend == "rc" else None)
        table = f"{self.s.cassandra.keyspace}.{self.s.status_table}"
        self.cql = {
            "read": f"SELECT {STATUS_COLUMNS} FROM {table} WHERE cert_id = ?",
            "backfill": f"INSERT INTO {table} (cert_id, backend, status, version, userid, courseid, batchid, "
                        "changed_at) VALUES (?, 'rc', ?, 0, ?, ?, ?, 0) IF NOT EXISTS",
            "change": f"UPDATE {table} SET status = ?, version = ?, changed_at = ?, change_request = ?, reason = ?, "
                      "requested_by = ? WHERE cert_id = ? IF version = ?",
        }
        if self.s.status_update_enrolment:
            enrolments = f"{self.s.cassandra.keyspace}.{self.s.tables['enrolments']}"
            self.cql["issued"] = (f"SELECT issued_certificates FROM {enrolments} WHERE userid = ? AND courseid = ? "
                                  "AND batchid = ?")
            self.cql["unlist"] = (f"UPDATE {enrolments} SET issued_certificates = ? WHERE userid = ? AND courseid = ? "
                                  "AND batchid = ? IF issued_certificates = ?")

    def teardown(self):
        if self.rc is not None:
            self.rc.close()
        self.db.close()

    def process(self, req: S.StatusRequest):
        try:
            outcome = self._change(req)
        except Exception as e:  # noqa: BLE001 - after retries: dead-letter with the reason
            self.c["failed-events-count"].inc()
            yield fail(self.s.job_name, f"certificate status change failed: {e}", req.event, stage="status")
            return
        if isinstance(outcome, str):  # a reason: the request cannot be applied
            self.c["failed-events-count"].inc()
            yield fail(self.s.job_name, outcome, req.event, stage="status")
        elif outcome is not None:
            yield pvalue.TaggedOutput(AUDIT_TAG, outcome)

    def _change(self, req: S.StatusRequest) -> dict | str | None:
        """The audit event of an applied change, ``None`` for a counted no-op or clock advance, or
        the reason the request fails."""
        for _ in range(self.ATTEMPTS):
            row = self._row(req.certificate_id)
            if row is None:
                self.c["unknown-certificate-count"].inc()
                return f"unknown certificate {req.certificate_id}"
            problem = S.ownership_problem(req, row)
            if problem:
                return problem
            d = S.decide(row, req)
            # cert.status.update.enrolment: also on a replayed revoke, so a crash after the commit is repaired
            unlist = self.s.status_update_enrolment and req.change == "revoke" and d.status == S.REVOKED
            if not d.writes:
                if unlist:
                    self._unlist(req.certificate_id, row)
                self.c[NOOP_METRIC[d.kind]].inc()
                self.c["skipped-event-count"].inc()
                return None
            if d.kind == "apply" and d.status == S.REVOKED and self.rc is not None and row.get("backend") != "vc":
                done = self.rc.revoke(req.certificate_id)
                self.c["rc-already-revoked-count" if done == "already-revoked" else "rc-revoke-count"].inc()
            version = row.get("version")
            res = self.db.execute(self.cql["change"], (
                d.status, (version or 0) + 1, req.requested_at, req.request_id, req.reason or None,
                req.requested_by or None, req.certificate_id, version))
            if res and res[0][0]:
                if unlist:
                    self._unlist(req.certificate_id, row)
                self.c["success-events-count"].inc()
                if d.kind == "advance":
                    self.c["status-advanced-count"].inc()
                    return None
                self.c["status-changed-count"].inc()
                return S.status_audit_event(req, row, d.status)
            self.c["status-conflict-count"].inc()  # another worker committed first: decide again
        raise RuntimeError(f"certificate {req.certificate_id} kept changing under concurrent writers")

    def _unlist(self, cert_id: str, row: dict) -> None:
        """``cert.status.update.enrolment``: the certificate out of ``issued_certificates`` (compare-and-set,
        so a concurrent issuance of another template is kept; idempotent)."""
        key = (row.get("userid"), row.get("courseid"), row.get("batchid"))
        if not all(key):
            return
        for _ in range(self.ATTEMPTS):
            found = self.db.execute(self.cql["issued"], key)
            current = found[0].issued_certificates if found else None
            updated = S.issued_certificates_without(current, cert_id)
            if updated is None:
                return
            if self.db.execute(self.cql["unlist"], (updated, *key, current))[0][0]:
                self.c["db-update-user-enrollment-count"].inc()
                return
        raise RuntimeError(f"issued_certificates of {key} kept changing under concurrent writers")

    def _row(self, cert_id: str) -> dict | None:
        rows = self.db.execute(self.cql["read"], (cert_id,))
        if rows:
            return rows[0]._asdict()
        if self.rc is None:
            return None
        try:
            record = self.rc.read(cert_id)
        except RCNotFound:
            return None
        r = S.row_from_rc_record(record)
        if self.db.execute(self.cql["backfill"], (cert_id, r["status"], r["userid"], r["courseid"],
                                                  r["batchid"]))[0][0]:
            self.c["backfilled-certificate-count"].inc()
        rows = self.db.execute(self.cql["read"], (cert_id,))
        return rows[0]._asdict() if rows else None


class ChangeCertificateStatus(beam.PTransform):
    """``audit, failed = requests | ChangeCertificateStatus(settings)``.

    ``requests`` are certificate-status events; ``audit`` one AUDIT event per change applied, its
    ``mid`` derived from the request so that a consumer can de-duplicate a re-sent event.
    """

    def __init__(self, settings: CertSettings):
        super().__init__()
        self.s = settings

    def expand(self, requests):
        valid, invalid = requests | "Validate" >> ValidateEvents(self.s.job_name, S.parse_status_request, VALIDATION)
        out = valid | "Change" >> beam.ParDo(_ChangeStatusFn(self.s)).with_outputs(FAILED_TAG, AUDIT_TAG)
        failed = (invalid, out[FAILED_TAG]) | "Failures" >> beam.Flatten()
        return out[AUDIT_TAG], failed


class _SelectFn(beam.DoFn):
    def __init__(self, s: CertSettings, batch_id: str | None, issued_from: int | None, issued_to: int | None):
        self.s, self.batch_id, self.issued_from, self.issued_to = s, batch_id, issued_from, issued_to
        self.selected = counter(s.job_name, "selected-certificate-count")
        self.read = counter(s.job_name, "read-certificate-count")

    def setup(self):
        self.db = CassandraClient(self.s.cassandra)

    def teardown(self):
        self.db.close()

    def process(self, course_id: str):
        rows = self.db.execute(f"SELECT cert_id, status, userid, courseid, batchid, issued_at FROM "
                               f"{self.s.cassandra.keyspace}.{self.s.status_table} WHERE courseid = ?", (course_id,))
        for r in rows:
            self.read.inc()
            row = r._asdict()
            issued = row.pop("issued_at")
            row["issued_at_ms"] = int(issued.timestamp() * 1000) if issued is not None else None
            if S.selected_for_bulk(row, self.batch_id, self.issued_from, self.issued_to):
                self.selected.inc()
                yield row


class SelectCertificates(beam.PTransform):
    """``rows = p | SelectCertificates(settings, course_id, batch_id, issued_from_ms, issued_to_ms)``: the
    certificate rows of a course (``certificate_status`` by its ``courseid`` index) that a bulk change
    selects (``pipelines.domain.cert_status.selected_for_bulk``: batch, issue window, not terminal)."""

    def __init__(self, settings: CertSettings, course_id: str, batch_id: str | None = None,
                 issued_from_ms: int | None = None, issued_to_ms: int | None = None):
        super().__init__()
        self.s, self.course_id = settings, course_id
        self.args = (batch_id, issued_from_ms, issued_to_ms)

    def expand(self, pbegin):
        return (pbegin | "Course" >> beam.Create([self.course_id])
                | "Select" >> beam.ParDo(_SelectFn(self.s, *self.args)))
