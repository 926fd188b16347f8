"""notification-job's options (reference keys of notification-job.conf and the SDK) and settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.domain.notification import DEFAULT_MAX_ITERATIONS, MAX_ITERATIONS_LIMIT
from pipelines.io.senders import FCM_KEY_ENV, PASSWORD_ENV, SMS_KEY_ENV, ChannelConfig
from pipelines.options.fields import add_option, parse_bool, ref_option
from pipelines.options.settings import values


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
                        "re-queued with iteration + 1; a request whose edata.iteration is above it is "
                        f"rejected (reference: fixed 2; 1 to {MAX_ITERATIONS_LIMIT}; not a reference key).")
        ref_option(parser, "notification.dedup.enabled", default=True, type=parse_bool,
                   help="Send each mid at most once (Redis dedup store; not a reference key).")


@dataclass(frozen=True)
class NotificationSettings:
    channels: ChannelConfig
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    dedup_enabled: bool = True
    dedup_expiry_secs: int = 604800
    batch_size: int = 1000  # dedup store round trips

    def __post_init__(self) -> None:
        if not 1 <= self.max_iterations <= MAX_ITERATIONS_LIMIT:
            raise ValueError(f"max_iteration_count must be 1 to {MAX_ITERATIONS_LIMIT}, not {self.max_iterations}")


def channel_config(opts) -> ChannelConfig:
    o = values(opts)
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
    )


def notification_settings(opts) -> NotificationSettings:
    o = values(opts)
    return NotificationSettings(
        channels=channel_config(opts), max_iterations=int(o["max_iteration_count"]),
        dedup_enabled=bool(o["notification_dedup_enabled"]),
        dedup_expiry_secs=int(o["dedup_redis_database_expiry"]),
        batch_size=int(o["threshold_batch_read_size"]),
    )
