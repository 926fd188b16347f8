"""NotifyLearner: after a certificate is issued, the learner's notification and user feed
(reference ``NotifierFunction`` and ``CreateUserFeedFunction``).

    issued records --> _NotifyFn --> failed (stage notify / user-feed, the source event kept whole)

Runs only for certificates issued by this delivery (``IssueRC``'s ``issued`` output), so a
duplicate request notifies nobody twice. A failure here never undoes the certificate: it is
dead-lettered with the reason and counted in ``failed-notification-count`` only (the event
itself was a success).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import apache_beam as beam

from pipelines.domain import certificates as C
from pipelines.io.cassandra import CassandraClient
from pipelines.io.cert_services import CertServices
from pipelines.options.certificates import CertSettings
from pipelines.transforms.concurrent_calls import Tally, map_concurrently
from pipelines.transforms.failures import FAILED_TAG, fail


class _NotifyFn(beam.DoFn):
    METRICS = ("notified-user-count", "skipped-notify-user-count", "db-course-batch-read-count", "user-feed-count",
               "failed-notification-count")

    def __init__(self, s: CertSettings):
        self.s = s

    def setup(self):
        self.c = Tally(self.s.job_name, self.METRICS)
        self.pool = ThreadPoolExecutor(max_workers=self.s.http_parallelism, thread_name_prefix="notify")
        self.db = CassandraClient(self.s.cassandra)
        self.services = CertServices(self.s.content_base, self.s.learner_base, self.s.http_timeout_secs,
                                     self.s.http_retries)
        self.cql = (f"SELECT cert_templates FROM {self.s.cassandra.keyspace}.{self.s.tables['course_batch']} "
                    "WHERE courseid = ? AND batchid = ?")

    def teardown(self):
        self.pool.shutdown()
        self.services.close()
        self.db.close()

    def _fail(self, issued: dict, what: str, e: Exception, stage: str):
        self.c.inc("failed-notification-count")
        return fail(self.s.job_name, f"{what} failed after issuance of {issued['certificateId']}: {e}",
                    issued["source"], stage=stage)

    def process(self, batch: list[dict]):
        """A batch of issued certificates, ``cert.http.parallelism`` learners notified at once."""
        yield from map_concurrently(self.pool, self.c, self._handle, batch)

    def _handle(self, issued: dict):
        try:
            self._notify(issued)
        except Exception as e:  # noqa: BLE001
            yield self._fail(issued, "notification", e, "notify")
        try:
            self.services.create_feed(C.user_feed_request(issued["userId"], issued["courseName"],
                                                          issued["courseId"]))
            self.c.inc("user-feed-count")
        except Exception as e:  # noqa: BLE001
            yield self._fail(issued, "user feed", e, "user-feed")

    def _notify(self, issued: dict) -> None:
        user = self.services.read_user(issued["userId"], "/private/user/v1/read")
        if not user:
            self.c.inc("skipped-notify-user-count")
            return
        rows = self.db.execute(self.cql, (issued["courseId"], issued["batchId"]))
        self.c.inc("db-course-batch-read-count")
        row = rows[0]._asdict() if rows else {}
        template = C.notify_template(row.get("cert_templates"), issued["templateId"], self.s.storage)
        if template is None:
            self.c.inc("skipped-notify-user-count")
            return
        ms = issued.get("issuedOn")
        issued_on = datetime.fromtimestamp(ms / 1000, tz=UTC) if isinstance(ms, int) else None
        for body in C.notification_requests(template, user, issued["userId"], issued["courseName"], issued_on,
                                            self.s.instance_name):
            self.services.notify(body)
        self.c.inc("notified-user-count")


class NotifyLearner(beam.PTransform):
    """``failed = issued | NotifyLearner(settings)``: notification and user feed per issued certificate."""

    def __init__(self, settings: CertSettings):
        super().__init__()
        self.s = settings

    def expand(self, issued):
        out = (issued
               | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=4 * self.s.http_parallelism)
               | "NotifyAndFeed" >> beam.ParDo(_NotifyFn(self.s)).with_outputs(FAILED_TAG, main="done"))
        return out[FAILED_TAG]
