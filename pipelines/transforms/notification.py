"""notification-job: the pure rules (validation, routing, templates, retries) and the senders.

Reference: ``notification/notification-job`` (``NotificationFunction``) and the channel code of
``notification/notification-sdk`` (``Email``/``SmtpEMailServiceImpl``, ``Msg91SmsProviderImpl``,
``FCMHttpNotificationServiceImpl``). A ``BE_JOB_REQUEST`` with ``edata.action =
broadcast-topic-notification-all`` carries ``edata.request.notification``: ``mode`` (email, phone,
device), ``ids`` (addresses, phone numbers or device tokens), ``template.data`` (+ ``params``),
``config.subject``/``config.topic`` and, for devices, ``rawData``.

A send that fails is re-queued to the input topic with ``edata.iteration + 1`` while
``iteration < max iterations`` (reference: 2); after that it is dead-lettered. A request that can
never succeed (unknown mode, no ids, invalid addresses, empty text) is dead-lettered at once.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any
from urllib.parse import quote_plus

import apache_beam as beam
from apache_beam import pvalue

from pipelines.domain.errors import InvalidRequest, Skip
from pipelines.domain.failures import FAILED_TAG, failed_event
from pipelines.io.http import HttpClient
from pipelines.io.retry import RetryPolicy
from pipelines.metrics import counter

ACTION = "broadcast-topic-notification-all"
MODES = ("email", "phone", "device")
RETRY_TAG = "retry"
DEFAULT_MAX_ITERATIONS = 2  # the reference's max_iteration_count_samza_job
DEDUP_PREFIX = "notification:"


class InvalidNotification(InvalidRequest):
    """A request that can never be sent; it is dead-lettered, never re-queued."""


class SendFailed(Exception):
    """The channel did not accept the notification (may succeed on a later iteration)."""


@dataclass(frozen=True)
class Notification:
    mode: str
    ids: tuple[str, ...]
    subject: str
    text: str  # template.data with params substituted (HTML-escaped for email)
    topic: str | None = None
    raw_data: Any = None


# ----------------------------------------------------------------------------- templates

_REF = re.compile(r"\$(!?)(?:\{([A-Za-z][A-Za-z0-9_-]*)\}|([A-Za-z][A-Za-z0-9_-]*))")


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render(template: str, params: dict[str, Any] | None, html_body: bool) -> str:
    """Velocity-style ``$name``/``${name}`` (``$!name`` renders empty when missing).

    One pass with a substitution function: a value is inserted as data, never re-read as a
    template, so ``$other`` or ``{0}`` inside a value stays literal. Values are HTML-escaped when
    the body is HTML. An unknown reference is left as written, as Velocity does.
    """
    params = params or {}

    def sub(m: re.Match) -> str:
        quiet, name = m.group(1), m.group(2) or m.group(3)
        if name not in params:
            return "" if quiet else m.group(0)
        text = _param_text(params[name])
        return html.escape(text, quote=True) if html_body else text

    return _REF.sub(sub, template)


# ----------------------------------------------------------------------------- validation

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def valid_email(addr: str) -> bool:
    """A bare addr-spec (no display name, no CR/LF), as javax.mail's InternetAddress would need."""
    if not isinstance(addr, str) or len(addr) > 254 or addr != addr.strip():
        return False
    name, parsed = parseaddr(addr)
    return not name and parsed == addr and bool(_EMAIL.match(addr))


def valid_phone(number: str) -> bool:
    """The SDK drops numbers shorter than 10 characters; here they must also be digits (+ allowed)."""
    return isinstance(number, str) and len(number) >= 10 and bool(re.fullmatch(r"\+?[0-9]{10,15}", number))


def iteration_of(event: dict) -> int:
    """``edata.iteration``; missing or unreadable means the first attempt (1)."""
    value = (event.get("edata") or {}).get("iteration")
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 1


def parse_notification(event: dict) -> Notification:
    """Event -> what to send. Raises ``Skip`` (not a notification) or ``InvalidNotification``."""
    edata = event.get("edata")
    if not isinstance(edata, dict) or not edata:
        raise Skip("edata is missing or empty")
    action = edata.get("action")
    if not isinstance(action, str) or action.lower() != ACTION:
        raise Skip(f"action is not {ACTION}: {action!r}")
    request = edata.get("request")
    notification = request.get("notification") if isinstance(request, dict) else None
    if not isinstance(notification, dict):
        raise InvalidNotification("edata.request.notification is missing or not an object")
    mode = notification.get("mode")
    mode = mode.strip().lower() if isinstance(mode, str) else None
    if mode not in MODES:
        raise InvalidNotification(f"unknown notification mode: {notification.get('mode')!r}")
    config = notification.get("config") if isinstance(notification.get("config"), dict) else {}
    template = notification.get("template") if isinstance(notification.get("template"), dict) else {}
    params = template.get("params") if isinstance(template.get("params"), dict) else {}
    data = template.get("data")
    if data is not None and not isinstance(data, str):
        raise InvalidNotification("template.data is not a string")
    ids = notification.get("ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise InvalidNotification("ids is not a list of strings")
    ids = tuple(i for i in (ids or []) if i.strip())
    topic = config.get("topic") if isinstance(config.get("topic"), str) and config.get("topic") else None

    if mode == "email":
        if not ids:
            raise InvalidNotification("email notification without ids")
        bad = [i for i in ids if not valid_email(i)]
        if bad:
            raise InvalidNotification(f"invalid email address(es): {bad}")
        subject = config.get("subject") if isinstance(config.get("subject"), str) else ""
        subject = " ".join(render(subject, params, html_body=False).split())  # no header injection
        body = render(data or "", params, html_body=True)
        return Notification("email", ids, subject, body)
    if mode == "phone":
        if not ids:
            raise InvalidNotification("phone notification without ids")
        bad = [i for i in ids if not valid_phone(i)]
        if bad:
            raise InvalidNotification(f"invalid phone number(s): {bad}")
        text = render(data or "", params, html_body=False)
        if not text.strip():
            raise InvalidNotification("phone notification with an empty text")
        return Notification("phone", ids, "", text)
    if not ids and not topic:
        raise InvalidNotification("device notification without ids or config.topic")
    return Notification("device", ids, "", render(data or "", params, html_body=False), topic,
                        notification.get("rawData"))


def retry_event(event: dict, max_iterations: int) -> dict | None:
    """The re-queued copy (``iteration + 1``; the reference always wrote 2), or None when exhausted."""
    it = iteration_of(event)
    if it >= max_iterations:
        return None
    out = copy.deepcopy(event)
    out["edata"]["iteration"] = it + 1
    return out


def dedup_key(event: dict) -> str | None:
    """Key checked before sending: the ``mid`` and this attempt's iteration.

    The iteration is part of the key so that a re-queued attempt (same ``mid``) is not taken for
    a duplicate; after a successful send every iteration's key is marked (``sent_keys``), so a
    replay of any attempt of that notification is dropped.
    """
    mid = event.get("mid")
    if not isinstance(mid, str) or not mid:
        return None
    return f"{DEDUP_PREFIX}{mid}:{iteration_of(event)}"


def sent_keys(event: dict, max_iterations: int) -> list[str]:
    mid = event.get("mid")
    if not isinstance(mid, str) or not mid:
        return []
    top = max(max_iterations, iteration_of(event))
    return [f"{DEDUP_PREFIX}{mid}:{i}" for i in range(0, top + 1)]


# ----------------------------------------------------------------------------- channel payloads


def java_url_encode(text: str) -> str:
    """``java.net.URLEncoder.encode(text, "UTF-8")``, which the SDK applies to the SMS text."""
    return quote_plus(text, safe="*").replace("~", "%7E")


def sms_payload(n: Notification, sender: str, route: str, country: str) -> dict:
    """MSG91 v2 ``sendsms`` body, as ``Msg91SmsProviderImpl.bulkSms`` builds it."""
    return {"sender": sender, "route": route, "country": country,
            "sms": [{"message": java_url_encode(n.text), "to": list(n.ids)}]}


def fcm_payload(n: Notification, dry_run: bool = False) -> dict:
    """Legacy FCM HTTP body: ``data`` = rawData, to the devices, else to ``/topics/<topic>``.

    The reference serialises ``rawData`` to JSON and parses it back into ``data`` (a null rawData
    made it fail); here a missing or non-object rawData is sent as ``{}``.
    """
    data = n.raw_data if isinstance(n.raw_data, dict) else {}
    body: dict[str, Any] = {"data": data, "dry_run": dry_run}
    if n.ids:
        body["registration_ids"] = list(n.ids)
    else:
        body["to"] = f"/topics/{n.topic}"
    return body


def build_email(n: Notification, from_email: str) -> EmailMessage:
    """One HTML message; several recipients are Bcc (no To header), like ``SmtpEMailServiceImpl``."""
    msg = EmailMessage()
    msg["From"] = from_email
    if len(n.ids) == 1:
        msg["To"] = n.ids[0]
    msg["Subject"] = n.subject
    msg.set_content(n.text, subtype="html", charset="utf-8")
    return msg


# ----------------------------------------------------------------------------- senders


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
    max_iterations: int = DEFAULT_MAX_ITERATIONS

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"ChannelConfig(smtp={self.smtp_host}:{self.smtp_port}, tls={self.smtp_tls})"


PASSWORD_ENV = "sunbird_mail_server_password"  # the notification-sdk's own env fallbacks
SMS_KEY_ENV = "sunbird_msg_91_auth"
FCM_KEY_ENV = "sunbird_notification_fcm_account_key"


class Senders:
    """Email over SMTP, SMS and FCM over HTTP; each ``send_*`` raises ``SendFailed``.

    Secrets left empty in the options are read from the SDK's environment variables here, on the
    worker, so they are never serialised into the pipeline (options and DoFns are).
    """

    def __init__(self, cfg: ChannelConfig):
        self.cfg = cfg
        self.smtp_password = cfg.smtp_password or os.environ.get(PASSWORD_ENV, "")
        self.sms_auth_key = cfg.sms_auth_key or os.environ.get(SMS_KEY_ENV, "")
        self.fcm_account_key = cfg.fcm_account_key or os.environ.get(FCM_KEY_ENV, "")
        self.http = HttpClient(cfg.http_timeout_secs, RetryPolicy(attempts=max(1, cfg.http_retries + 1)))

    def send(self, n: Notification) -> None:
        {"email": self.send_email, "phone": self.send_sms, "device": self.send_push}[n.mode](n)

    def send_email(self, n: Notification) -> None:
        c = self.cfg
        msg = build_email(n, c.from_email)
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
                    smtp.login(c.smtp_username, self.smtp_password)
                refused = smtp.send_message(msg, from_addr=c.from_email, to_addrs=list(n.ids))
        except smtplib.SMTPAuthenticationError as e:
            raise SendFailed(f"SMTP login refused ({e.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as e:
            raise SendFailed(f"SMTP send failed: {type(e).__name__}: {_short(e)}") from None
        except Exception as e:  # noqa: BLE001 - e.g. encoding: retried, then dead-lettered, never a crash
            raise SendFailed(f"email could not be sent: {type(e).__name__}: {_short(e)}") from None
        if refused:
            raise SendFailed(f"SMTP refused recipients: {sorted(refused)}")

    def send_sms(self, n: Notification) -> None:
        c = self.cfg
        if not self.sms_auth_key:
            raise SendFailed("sms_auth_key is not configured")
        body = sms_payload(n, c.sms_sender, c.sms_route, c.sms_country)
        try:
            r = self.http.request("POST", c.sms_url, json_body=body,
                                  headers={"authkey": self.sms_auth_key, "content-type": "application/json"})
        except Exception as e:  # noqa: BLE001 - connection faults after retries
            raise SendFailed(f"SMS provider unreachable: {type(e).__name__}") from None
        if r.status != 200:
            raise SendFailed(f"SMS provider answered {r.status}")

    def send_push(self, n: Notification) -> None:
        c = self.cfg
        if not self.fcm_account_key:
            raise SendFailed("fcm_account_key is not configured")
        try:
            r = self.http.request("POST", c.fcm_url, json_body=fcm_payload(n),
                                  headers={"Authorization": self.fcm_account_key, "Content-Type": "application/json"})
        except Exception as e:  # noqa: BLE001
            raise SendFailed(f"FCM unreachable: {type(e).__name__}") from None
        if r.status != 200 or not isinstance(r.body, dict):
            raise SendFailed(f"FCM answered {r.status}")
        if n.ids and r.body.get("failure") and not r.body.get("success"):
            raise SendFailed(f"FCM delivered to no device: {r.body.get('results')}")

    def close(self) -> None:
        self.http.close()


def _short(e: BaseException) -> str:
    return str(e).replace("\n", " ")[:200]


# ----------------------------------------------------------------------------- DoFns


class ValidateNotification(beam.DoFn):
    """Counts every event; skips non-notifications; dead-letters requests that can never be sent."""

    def __init__(self, job_name: str, dead_letter_metric: str):
        self.job_name = job_name
        self.total = counter(job_name, "total-events-count")
        self.skipped = counter(job_name, "skipped-event-count")
        self.invalid = counter(job_name, dead_letter_metric)

    def process(self, event: dict):
        self.total.inc()
        try:
            parse_notification(event)
        except Skip:
            self.skipped.inc()
            return
        except InvalidNotification as e:
            self.invalid.inc()
            yield pvalue.TaggedOutput(FAILED_TAG, failed_event(self.job_name, str(e), event, stage="validate"))
            return
        yield event


class SendNotifications(beam.DoFn):
    """Sends each notification; sent events on the main output, re-queued ones on ``RETRY_TAG``."""

    def __init__(self, job_name: str, cfg: ChannelConfig, dead_letter_metric: str):
        self.job_name, self.cfg = job_name, cfg
        self.success = counter(job_name, "success-events-count")
        self.requeued = counter(job_name, "failed-events-count")
        self.exhausted = counter(job_name, dead_letter_metric)
        self.by_mode = {m: counter(job_name, f"{m}-sent-count") for m in MODES}

    def setup(self):
        self.senders = Senders(self.cfg)

    def process(self, event: dict):
        n = parse_notification(event)  # validated upstream
        try:
            self.senders.send(n)
        except SendFailed as e:
            again = retry_event(event, self.cfg.max_iterations)
            if again is not None:
                self.requeued.inc()
                yield pvalue.TaggedOutput(RETRY_TAG, again)
            else:
                self.exhausted.inc()
                reason = f"{e} (iteration {iteration_of(event)} of {self.cfg.max_iterations})"
                yield pvalue.TaggedOutput(FAILED_TAG, failed_event(self.job_name, reason, event, stage="send"))
            return
        self.success.inc()
        self.by_mode[n.mode].inc()
        yield event

    def teardown(self):
        self.senders.close()
