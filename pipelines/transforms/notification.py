"""SendNotifications: validated notification requests -> sent once, re-queued, or dead-lettered.

::

    requests --> DedupByMid --> _SendFn --> sent --> SentKeys --> MarkSeen
                     |             |--> retry  (iteration + 1, for the input topic)
                     '-------------'--> failed (dedup store down, retries exhausted)

The rules (rendering, payloads, the iteration rule, dedup keys) are
``pipelines.domain.notification``; the channel clients are ``pipelines.io.senders``. This module
only wires them: the DoFn renders, picks the channel, calls it, and routes the outcome.

Why dedup is part of the composite: "at most once per ``mid``" is what the job promises, and it
only holds if the check happens before the send and the mark after it, around the same step.
"""

from __future__ import annotations

import apache_beam as beam

from pipelines.domain import notification as N
from pipelines.domain.errors import InvalidRequest, Skip
from pipelines.io.redis_store import RedisConfig
from pipelines.io.senders import Senders, SendFailed
from pipelines.metrics import counter
from pipelines.options.notification import NotificationSettings
from pipelines.transforms.dedup import DedupByMid, MarkSeen
from pipelines.transforms.failures import FAILED_TAG, fail

RETRY_TAG = "retry"
SENT_TAG = "sent"


class _SendFn(beam.DoFn):
    """Sends each request; sent events on the main output, re-queued ones on ``RETRY_TAG``."""

    def __init__(self, job_name: str, settings: NotificationSettings, dead_letter_metric: str):
        self.job_name, self.s = job_name, settings
        self.success = counter(job_name, "success-events-count")
        self.requeued = counter(job_name, "failed-events-count")
        self.exhausted = counter(job_name, dead_letter_metric)
        self.by_mode = {m: counter(job_name, f"{m}-sent-count") for m in N.MODES}

    def setup(self):
        self.senders = Senders(self.s.channels).__enter__()

    def _send(self, n: N.Notification) -> None:
        c = self.s.channels
        if n.mode == "email":
            self.senders.email.send(N.build_email(n, c.from_email), list(n.ids))
        elif n.mode == "phone":
            self.senders.sms.send(N.sms_payload(n, c.sms_sender, c.sms_route, c.sms_country))
        else:
            self.senders.push.send(N.fcm_payload(n))

    def process(self, event: dict):
        try:
            n = N.parse_notification(event, self.s.max_iterations)
        except (Skip, InvalidRequest) as e:  # validated upstream; a bare use of this step still routes it
            self.exhausted.inc()
            yield fail(self.job_name, str(e), event, stage="validate")
            return
        try:
            self._send(n)
        except SendFailed as e:
            again = N.retry_event(event, self.s.max_iterations)
            if again is not None:
                self.requeued.inc()
                yield beam.pvalue.TaggedOutput(RETRY_TAG, again)
            else:
                self.exhausted.inc()
                reason = f"{e} (iteration {N.iteration_of(event)} of {self.s.max_iterations})"
                yield fail(self.job_name, reason, event, stage="send")
            return
        self.success.inc()
        self.by_mode[n.mode].inc()
        yield event

    def teardown(self):
        self.senders.__exit__(None, None, None)


class SendNotifications(beam.PTransform):
    """``sent, retry, failed = requests | SendNotifications(job_name, settings, dedup_cfg)``.

    ``requests`` are events that passed ``domain.notification.RequestParser`` (through
    ``ValidateEvents``). ``dedup_cfg=None`` (or ``settings.dedup_enabled`` false) sends without
    the dedup store. ``max_buffering_secs=None`` for bounded input (see ``ShardedBatches``).
    """

    def __init__(self, job_name: str, settings: NotificationSettings, dedup_cfg: RedisConfig | None,
                 dead_letter_metric: str = "dead-letter-events-count", max_buffering_secs: float | None = 1.0):
        super().__init__()
        self.job_name, self.settings, self.dead_letter_metric = job_name, settings, dead_letter_metric
        self.dedup_cfg = dedup_cfg if settings.dedup_enabled else None
        self.max_buffering_secs = max_buffering_secs

    def expand(self, requests):
        failed = []
        if self.dedup_cfg is not None:
            requests, _duplicates, dedup_failed = requests | "Dedup" >> DedupByMid(
                self.dedup_cfg, self.job_name, key_fn=N.dedup_key, batch_size=self.settings.batch_size,
                max_buffering_secs=self.max_buffering_secs)
            failed.append(dedup_failed)
        out = requests | "Send" >> beam.ParDo(
            _SendFn(self.job_name, self.settings, self.dead_letter_metric)).with_outputs(
            RETRY_TAG, FAILED_TAG, main=SENT_TAG)
        if self.dedup_cfg is not None:
            max_it = self.settings.max_iterations
            _ = (out[SENT_TAG]
                 | "SentKeys" >> beam.FlatMap(lambda e: N.sent_keys(e, max_it))
                 | "MarkSeen" >> MarkSeen(self.dedup_cfg, self.job_name, self.settings.dedup_expiry_secs,
                                          key_fn=lambda k: k))
        failed.append(out[FAILED_TAG])
        return out[SENT_TAG], out[RETRY_TAG], tuple(failed) | "Failed" >> beam.Flatten()
