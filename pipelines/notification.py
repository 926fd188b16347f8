"""notification-job: sends the email, SMS and device (FCM) notifications requested on Kafka.

    python -m pipelines.notification --runner=FlinkRunner [--config notification-job.conf]
    python -m pipelines.notification --input requests.jsonl --output_dir out/

Reads ``BE_JOB_REQUEST`` events with ``edata.action = broadcast-topic-notification-all`` from
``<env>.lms.notification``, substitutes the template params, sends by ``mode`` (email over SMTP,
phone through the MSG91 SMS API, device through FCM), re-queues a failed send to the input topic
with ``iteration + 1`` up to ``max_iteration_count`` attempts, and dead-letters what can never be
sent. A notification is sent at most once per ``mid`` even on replay (Redis dedup store, marked
only after the send succeeded). See docs/notification.md.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain.notification import RequestParser
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.notification import NotificationOptions, notification_settings
from pipelines.transforms.notification import SendNotifications
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

JOB_NAME = "notification-trigger"  # the reference job name: metric group and failed-event jobName
DEAD_LETTER_METRIC = "dead-letter-events-count"
VALIDATION = ValidationMetrics(failed=DEAD_LETTER_METRIC, skipped="skipped-event-count")


def defaults(env: str) -> dict[str, Any]:
    """Deployments name the topic ``<env>.lms.notification`` (the packaged conf has a test value)."""
    return {
        "kafka.input.topic": f"{env}.lms.notification",
        "kafka.groupId": f"{env}.lms.notification.group",
        "kafka.output.failed.topic": f"{env}.lms.notification.failed",
    }


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    s = notification_settings(opts)
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, DEAD_LETTER_METRIC)
    requests, invalid = events | "Validate" >> ValidateEvents(JOB_NAME, RequestParser(s.max_iterations), VALIDATION)
    _sent, retry, send_failed = requests | "Send" >> SendNotifications(
        JOB_NAME, s, job.dedup_redis_config(opts), DEAD_LETTER_METRIC,
        max_buffering_secs=None if job.bounded(opts) else 1.0)
    # The reference re-publishes failed notifications to its own input topic.
    retry | "Requeue" >> WriteEvents(io, o["kafka_input_topic"])
    (parse_failed, invalid, send_failed) | "Failures" >> WriteFailures(io, o["kafka_output_failed_topic"])


main = job.entrypoint(build, defaults, extra_groups=(NotificationOptions,))


if __name__ == "__main__":
    sys.exit(main())
