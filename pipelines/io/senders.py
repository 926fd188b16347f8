"""The notification channels as clients: email over SMTP, SMS through MSG91, push through FCM.

Reference: notification-sdk's ``SmtpEMailServiceImpl``, ``Msg91SmsProviderImpl.bulkSms`` and
``FCMHttpNotificationServiceImpl``. Each client takes a payload the domain built
(``pipelines.domain.notification``), sends it, and raises a typed ``SendFailed`` subclass when the
provider did not accept it; the caller decides whether that means a retry or a dead letter.

Secrets: a password or key left empty in the options is read from the SDK's environment variable
here, when the client is built on the worker, so it is never serialised into the pipeline
(options and DoFns are). No secret appears in a ``repr``, a log line or an exception message.

``Senders`` bundles the three for a DoFn: ``with Senders(cfg) as s: s.email.send(...)``, or open
it in ``setup`` and close it in ``teardown``.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from pipelines.io.http import HttpClient
from pipelines.io.retry import RetryPolicy

PASSWORD_ENV = "sunbird_mail_server_password"  # the notification-sdk's own env fallbacks
SMS_KEY_ENV = "sunbird_msg_91_auth"
FCM_KEY_ENV = "sunbird_notification_fcm_account_key"


class SendFailed(Exception):
    """The channel did not accept the notification (may succeed on a later attempt)."""


class EmailFailed(SendFailed):
    """SMTP refused the login, the sender, a recipient or the message, or was unreachable."""


class SmsFailed(SendFailed):
    """MSG91 was unreachable, not configured, or answered other than 200."""


class PushFailed(SendFailed):
    """FCM was unreachable, not configured, or delivered to none of the devices."""


@dataclass(frozen=True)
class ChannelConfig:
    from_email: str = "support@open-sunbird.org"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""  # never logged, never put into an event
    smtp_tls: str = "none"  # none | starttls | ssl
    smtp_timeout_secs: float = 30.0
    sms_url: str = "http://api.msg91.com/api/v2/sendsms"
    sms_auth_key: str = ""
    sms_sender: str = "TesSun"
    sms_route: str = "4"
    sms_country: str = "91"
    fcm_url: str = "https://fcm.googleapis.com/fcm/send"
    fcm_account_key: str = ""
    http_timeout_secs: float = 10.0
    http_retries: int = 3

    def __post_init__(self) -> None:
        if self.smtp_tls not in ("none", "starttls", "ssl"):
            raise ValueError(f"smtp_tls must be none, starttls or ssl, not {self.smtp_tls!r}")

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"ChannelConfig(smtp={self.smtp_host}:{self.smtp_port}, tls={self.smtp_tls})"


def _short(e: BaseException) -> str:
    return str(e).replace("\n", " ")[:200]


class SmtpSender:
    """One SMTP session per message (the SDK's behaviour; mail volume is low and a held-open
    connection would time out between notifications)."""

    def __init__(self, cfg: ChannelConfig):
        self.cfg = cfg
        self.password = cfg.smtp_password or os.environ.get(PASSWORD_ENV, "")

    def send(self, msg: EmailMessage, to_addrs: list[str]) -> None:
        c = self.cfg
        try:
            if c.smtp_tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(c.smtp_host, c.smtp_port, timeout=c.smtp_timeout_secs,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=c.smtp_timeout_secs)
            with smtp:
                if c.smtp_tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if c.smtp_username:
                    smtp.login(c.smtp_username, self.password)
                refused = smtp.send_message(msg, from_addr=c.from_email, to_addrs=to_addrs)
        except smtplib.SMTPAuthenticationError as e:
            raise EmailFailed(f"SMTP login refused ({e.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as e:
            raise EmailFailed(f"SMTP send failed: {type(e).__name__}: {_short(e)}") from None
        except Exception as e:  # noqa: BLE001 - e.g. encoding: retried, then dead-lettered, never a crash
            raise EmailFailed(f"email could not be sent: {type(e).__name__}: {_short(e)}") from None
        if refused:
            raise EmailFailed(f"SMTP refused recipients: {sorted(refused)}")


class Msg91Sender:
    """``POST`` of a MSG91 v2 ``sendsms`` body with the ``authkey`` header; 200 means accepted."""

    def __init__(self, cfg: ChannelConfig, http: HttpClient):
        self.url, self.http = cfg.sms_url, http
        self.auth_key = cfg.sms_auth_key or os.environ.get(SMS_KEY_ENV, "")

    def send(self, body: dict) -> None:
        if not self.auth_key:
            raise SmsFailed("sms_auth_key is not configured")
        try:
            r = self.http.request("POST", self.url, json_body=body,
                                  headers={"authkey": self.auth_key, "content-type": "application/json"})
        except Exception as e:  # noqa: BLE001 - connection faults after retries
            raise SmsFailed(f"SMS provider unreachable: {type(e).__name__}") from None
        if r.status != 200:
            raise SmsFailed(f"SMS provider answered {r.status}")


class FcmSender:
    """``POST`` of a legacy FCM HTTP body; accepted when HTTP 200 and not every device failed."""

    def __init__(self, cfg: ChannelConfig, http: HttpClient):
        self.url, self.http = cfg.fcm_url, http
        self.account_key = cfg.fcm_account_key or os.environ.get(FCM_KEY_ENV, "")

    def send(self, body: dict[str, Any]) -> None:
        if not self.account_key:
            raise PushFailed("fcm_account_key is not configured")
        try:
            r = self.http.request("POST", self.url, json_body=body,
                                  headers={"Authorization": self.account_key, "Content-Type": "application/json"})
        except Exception as e:  # noqa: BLE001
            raise PushFailed(f"FCM unreachable: {type(e).__name__}") from None
        if r.status != 200 or not isinstance(r.body, dict):
            raise PushFailed(f"FCM answered {r.status}")
        if body.get("registration_ids") and r.body.get("failure") and not r.body.get("success"):
            raise PushFailed(f"FCM delivered to no device: {str(r.body.get('results'))[:200]}")


class Senders:
    """The three channel clients over one HTTP session; a context manager that closes it."""

    def __init__(self, cfg: ChannelConfig):
        self.cfg = cfg
        self.http = HttpClient(cfg.http_timeout_secs, RetryPolicy(attempts=max(1, cfg.http_retries + 1)))
        self.email = SmtpSender(cfg)
        self.sms = Msg91Sender(cfg, self.http)
        self.push = FcmSender(cfg, self.http)

    @property
    def smtp_password(self) -> str:
        """The password the SMTP client will use (options first, then the SDK's env variable)."""
        return self.email.password

    def __repr__(self) -> str:
        return f"Senders({self.cfg!r})"

    def __enter__(self) -> Senders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()
