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

import os
import sys
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import job
from pipelines.domain.failures import FAILED_TAG
from pipelines.io.events import ReadEvents, WriteEvents
from pipelines.options.fields import add_option, parse_bool, ref_option
from pipelines.transforms.dedup import DedupByMid, MarkSeen
from pipelines.transforms.notification import (
    DEFAULT_MAX_ITERATIONS,
    FCM_KEY_ENV,
    PASSWORD_ENV,
    RETRY_TAG,
    SMS_KEY_ENV,
    ChannelConfig,
    SendNotifications,
    ValidateNotification,
    dedup_key,
    sent_keys,
)

JOB_NAME = "notification-trigger"  # the reference job name: metric group and failed-event jobName
DEAD_LETTER_METRIC = "dead-letter-events-count"


def defaults(env: str) -> dict[str, Any]:
    """Deployments name the topic ``<env>.lms.notification`` (the packaged conf has a test value)."""
    return {
        "kafka.input.topic": f"{env}.lms.notification",
        "kafka.groupId": f"{env}.lms.notification.group",
        "kafka.output.failed.topic": f"{env}.lms.notification.failed",
    }


def _port(value: str | int) -> int | None:
    text = str(value).strip()
    return int(text) if text else None


def _env_or(value: Any, env: str, fallback: Any) -> Any:
    """The SDK's rule: a blank setting falls back to its environment variable, then a default."""
    if value not in (None, ""):
        return value
    return os.environ.get(env) or fallback


class NotificationOptions(PipelineOptions):
    """notification-job: mail server, SMS and FCM providers, retries."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "mail_server_from_email", default="support@open-sunbird.org",
                   help="From address of every email (notification-sdk default support@open-sunbird.org).")
        ref_option(parser, "mail_server_host", default="localhost",
                   help="SMTP host (the local stack's recording SMTP server by default).")
        ref_option(parser, "mail_server_port", default=2525, type=_port,
                   help="SMTP port (the packaged conf's empty value falls back to sunbird_mail_server_port, "
                        "then 25).")
        ref_option(parser, "mail_server_username", default="",
                   help="SMTP login name; empty means no AUTH.")
        ref_option(parser, "mail_server_password", default="",
                   help=f"SMTP password. Prefer the {PASSWORD_ENV} environment variable (used when this is "
                        "empty): options can end up in job submissions. Never logged.")
        add_option(parser, "mail_server_tls", default="none", choices=("none", "starttls", "ssl"),
                   help="SMTP transport security: none, STARTTLS, or implicit TLS (not a reference key; the "
                        "SDK used plain SMTP).")
        add_option(parser, "mail_server_timeout_secs", default=30.0, type=float,
                   help="SMTP connect/command timeout in seconds (not a reference key).")
        ref_option(parser, "sms_auth_key", default="",
                   help=f"MSG91 auth key (header authkey); the {SMS_KEY_ENV} env variable when empty.")
        ref_option(parser, "sms_default_sender", default="TesSun",
                   help="SMS sender id (6 characters; the SDK's default TesSun).")
        ref_option(parser, "sunbird_msg_91_baseurl", default="http://api.msg91.com/",
                   help="MSG91 base URL (notification-sdk configuration.properties).")
        ref_option(parser, "sunbird_msg_91_post_url", default="api/v2/sendsms",
                   help="MSG91 bulk SMS path appended to the base URL.")
        ref_option(parser, "sunbird_msg_91_route", default="4", help="MSG91 route.")
        ref_option(parser, "sunbird_notification_default_country_code", default="91",
                   help="Country code sent with every SMS.")
        ref_option(parser, "fcm_account_key", default="",
                   help=f"FCM server key (header Authorization); the {FCM_KEY_ENV} env variable when empty.")
        ref_option(parser, "sunbird_fcm_url", default="https://fcm.googleapis.com/fcm/send",
                   help="FCM legacy HTTP send URL (the SDK hard-coded it).")
        add_option(parser, "max_iteration_count", default=DEFAULT_MAX_ITERATIONS, type=int,
                   help="Attempts per notification: a failed send with edata.iteration below this is "
                        "re-queued with iteration + 1 (reference: fixed 2; not a reference key).")
        ref_option(parser, "notification.dedup.enabled", default=True, type=parse_bool,
                   help="Send each mid at most once (Redis dedup store; not a reference key).")


def channel_config(opts) -> ChannelConfig:
    o = job.values(opts)
    return ChannelConfig(
        from_email=_env_or(o["mail_server_from_email"], "sunbird_mail_server_from_email", "support@open-sunbird.org"),
        smtp_host=_env_or(o["mail_server_host"], "sunbird_mail_server_host", "localhost"),
        smtp_port=int(_env_or(o["mail_server_port"], "sunbird_mail_server_port", 25)),
        smtp_username=_env_or(o["mail_server_username"], "sunbird_mail_server_username", ""),
        smtp_password=o["mail_server_password"] or "",
        smtp_tls=o["mail_server_tls"], smtp_timeout_secs=float(o["mail_server_timeout_secs"]),
        sms_url=str(o["sunbird_msg_91_baseurl"]) + str(o["sunbird_msg_91_post_url"]),
        sms_auth_key=o["sms_auth_key"] or "",
        sms_sender=o["sms_default_sender"] or "TesSun", sms_route=str(o["sunbird_msg_91_route"]),
        sms_country=str(o["sunbird_notification_default_country_code"]),
        fcm_url=o["sunbird_fcm_url"], fcm_account_key=o["fcm_account_key"] or "",
        http_timeout_secs=float(o["http_timeout_secs"]), http_retries=int(o["http_retries"]),
        max_iterations=int(o["max_iteration_count"]),
    )


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    cfg = channel_config(opts)
    buffering = None if job.bounded(opts) else 1.0
    events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, DEAD_LETTER_METRIC)
    valid = events | "Validate" >> beam.ParDo(ValidateNotification(JOB_NAME, DEAD_LETTER_METRIC)).with_outputs(
        FAILED_TAG, main="valid")
    failures = [parse_failed, valid[FAILED_TAG]]
    todo = valid.valid
    dedup_cfg = job.dedup_redis_config(opts)
    if o["notification_dedup_enabled"]:
        todo, _dups, dedup_failed = todo | "Dedup" >> DedupByMid(
            dedup_cfg, JOB_NAME, key_fn=dedup_key, batch_size=o["threshold_batch_read_size"],
            max_buffering_secs=buffering)
        failures.append(dedup_failed)
    out = todo | "Send" >> beam.ParDo(SendNotifications(JOB_NAME, cfg, DEAD_LETTER_METRIC)).with_outputs(
        RETRY_TAG, FAILED_TAG, main="sent")
    if o["notification_dedup_enabled"]:
        max_it = cfg.max_iterations
        _ = (out.sent
             | "SentKeys" >> beam.FlatMap(lambda e: sent_keys(e, max_it))
             | "MarkSeen" >> MarkSeen(dedup_cfg, JOB_NAME, o["dedup_redis_database_expiry"], key_fn=lambda k: k))
    # The reference re-publishes failed notifications to its own input topic.
    out[RETRY_TAG] | "Requeue" >> WriteEvents(io, o["kafka_input_topic"])
    failures.append(out[FAILED_TAG])
    tuple(failures) | "Failures" >> beam.Flatten() | "WriteFailed" >> WriteEvents(io, o["kafka_output_failed_topic"])


def main(argv=None) -> int:
    job.setup_logging()
    job.run(build, argv, defaults, extra_groups=(NotificationOptions,))
    return 0


if __name__ == "__main__":
    sys.exit(main())
