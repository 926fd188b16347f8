"""ValidateCertCriteria: issue-certificate requests -> generate-certificate events (the
collection-cert-pre-processor's stage; reference ``CollectionCertPreProcessorFn`` and
``IssueCertificateHelper``).

    requests --> ValidateEvents(parse_issue_request) --> _CriteriaFn --> generate-certificate events
                      |  skip: counted                      |  failed (reason, event kept whole)
                      +-- failed                            +-- failed

Per request: the batch's ``cert_templates`` (SVG ones), then per template the criteria
(``pipelines.domain.certificates.validate_cert_criteria``), each evaluated once, over data read
only when a criterion needs it and at most once per request: the enrolment row, the assessment
scores (``user_activity_agg`` + content types from the content cache or content read), the user
profile, the course name (collection cache or content read). ``db-read-count`` counts the
enrolment and score reads, as the reference does; the template read is not counted (the
reference's ``fetchTemplates`` does not count it either).

One request is one outcome: failed if any template failed (the qualifying templates are still
emitted), else success if any event was emitted, else skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import apache_beam as beam

from pipelines.domain import certificates as C
from pipelines.io.cassandra import CassandraClient
from pipelines.io.cert_services import CertServices
from pipelines.io.redis_store import RedisClient
from pipelines.metrics import counter
from pipelines.options.certificates import CertSettings
from pipelines.transforms.failures import FAILED_TAG, fail, raise_outage
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

USER_READ_QUERY = "organisations,roles,locations,declarations,externalIds"  # reference: no "fields="
VALIDATION = ValidationMetrics(failed="failed-events-count", skipped="skipped-event-count",
                               total="total-events-count")


def with_event(event: dict) -> list[tuple[dict, C.IssueRequest]]:
    """The request with its event, so a later failure keeps the original event whole."""
    return [(event, C.parse_issue_request(event))]


def _once(fetch: Callable[[], Any]) -> Callable[[], Any]:
    """A lookup that fetches on first use and then remembers (one read per request)."""
    box: list = []

    def get():
        if not box:
            box.append(fetch())
        return box[0]

    return get


class _CriteriaFn(beam.DoFn):
    METRICS = ("success-events-count", "failed-events-count", "skipped-event-count", "db-read-count",
               "cache-hit-cout", "generate-certificate-events-count")

    def __init__(self, s: CertSettings):
        self.s = s
        self.c = {name: counter(s.job_name, name) for name in self.METRICS}

    def setup(self):
        self.db = CassandraClient(self.s.cassandra)
        self.services = CertServices(self.s.content_base, self.s.learner_base, self.s.http_timeout_secs,
                                     self.s.http_retries)
        self.caches = {name: RedisClient(cfg) for name, cfg in (("collection", self.s.collection_cache),
                                                               ("content", self.s.content_cache)) if cfg}
        ks, t = self.s.cassandra.keyspace, self.s.tables
        self.cql = {
            "templates": f"SELECT cert_templates FROM {ks}.{t['course_batch']} WHERE courseid = ? AND batchid = ?",
            "enrolment": f"SELECT * FROM {ks}.{t['enrolments']} WHERE userid = ? AND courseid = ? AND batchid = ?",
            "agg": f"SELECT aggregates, agg FROM {ks}.{t['activity_agg']} WHERE activity_type = 'Course' "
                   "AND activity_id = ? AND user_id = ? AND context_id = ?",
        }

    def teardown(self):
        for cache in self.caches.values():
            cache.close()
        self.services.close()
        self.db.close()

    def process(self, item: tuple[dict, C.IssueRequest]):
        event, req = item
        try:
            out, reasons = self._evaluate(req)
        except Exception as e:  # noqa: BLE001 - stores/services down after retries: dead-letter with the reason
            raise_outage(e, self.s.dead_letter_outages)
            self.c["failed-events-count"].inc()
            yield fail(self.s.job_name, f"certificate pre-processing failed: {e}", event, stage="preprocess")
            return
        for ev in out:
            self.c["generate-certificate-events-count"].inc()
            yield ev
        if reasons:
            self.c["failed-events-count"].inc()
            yield fail(self.s.job_name, "; ".join(reasons), event, stage="criteria")
        else:
            self.c["success-events-count" if out else "skipped-event-count"].inc()

    # ---------------------------------------------------------------------------- evaluation

    def _evaluate(self, req: C.IssueRequest) -> tuple[list[dict], list[str]]:
        row = self._row(self.cql["templates"], (req.course_id, req.batch_id))  # not a db-read-count read
        templates = C.usable_templates((row or {}).get("cert_templates"))
        if not templates:
            return [], []
        enrolment = _once(lambda: self._counted_row(self.cql["enrolment"], (req.user_id, req.course_id,
                                                                             req.batch_id)))
        scores = _once(lambda: self._scores(req))
        user = _once(lambda: self.services.read_user(req.user_id, self.s.user_read_api, USER_READ_QUERY))
        course_name = _once(lambda: self._course_name(req.course_id))
        out, reasons = [], []
        now_ms = int(time.time() * 1000)
        for tid in sorted(templates):
            template = templates[tid]
            try:
                decision = C.validate_cert_criteria(req, template, enrolment, scores, user)
                if decision.qualified:
                    out.append(C.build_cert_request(req, template, decision, user() or {}, course_name(),
                                                    self.s.cert_domain_url, self.s.storage, now_ms))
            except C.CertError as e:
                reasons.append(f"template {tid}: {e}")
        return out, reasons

    def _row(self, cql: str, params) -> dict | None:
        rows = self.db.execute(cql, params)
        return rows[0]._asdict() if rows else None

    def _counted_row(self, cql: str, params) -> dict | None:
        row = self._row(cql, params)
        self.c["db-read-count"].inc()
        return row

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

    def _course_name(self, course_id: str) -> str:
        content = self._cached("collection", course_id) or self.services.read_content(
            course_id, self.s.content_read_api, "name")
        if content is None:
            raise C.CertError(f"course {course_id} not found")
        return C.clean_text(content.get("name"))

    def _scores(self, req: C.IssueRequest) -> dict[str, float]:
        row = self._counted_row(self.cql["agg"], (req.course_id, req.user_id, f"cb:{req.batch_id}"))
        if not row:
            return {}
        kept = {}
        for cid, pct in C.assessment_scores(row.get("aggregates"), row.get("agg")).items():
            try:
                meta = self._cached("content", cid) or self.services.read_content(cid, self.s.content_read_api)
            except Exception:  # noqa: BLE001
                meta = None
            if meta is None:
                if not self.s.suppress_exception:
                    raise C.CertError(f"Metadata not available in cache or API {cid}")
                continue
            if str(meta.get("contentType", meta.get("contenttype", ""))) in self.s.assessment_types:
                kept[cid] = pct
        return kept


class ValidateCertCriteria(beam.PTransform):
    """``generate, failed = requests | ValidateCertCriteria(settings)``.

    ``requests`` are issue-certificate events (from Kafka, JSONL or a backfill scan);
    ``generate`` the generate-certificate events of every template the learner meets.
    """

    def __init__(self, settings: CertSettings):
        super().__init__()
        self.s = settings

    def expand(self, requests):
        valid, invalid = requests | "Parse" >> ValidateEvents(self.s.job_name, with_event, VALIDATION)
        out = valid | "Criteria" >> beam.ParDo(_CriteriaFn(self.s)).with_outputs(FAILED_TAG, main="generate")
        failed = (invalid, out[FAILED_TAG]) | "Failures" >> beam.Flatten()
        return out.generate, failed
