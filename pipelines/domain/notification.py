"""notification-job's rules: what a request asks for, how its text is rendered, when it is retried.

Reference: ``notification/notification-job`` (``NotificationFunction``) and the payloads of
``notification/notification-sdk`` (``Email``/``SmtpEMailServiceImpl``, ``Msg91SmsProviderImpl``,
``FCMHttpNotificationServiceImpl``). A ``BE_JOB_REQUEST`` with ``edata.action =
broadcast-topic-notification-all`` carries ``edata.request.notification``: ``mode`` (email, phone,
device), ``ids`` (addresses, phone numbers or device tokens), ``template.data`` (+ ``params``),
``config.subject``/``config.topic`` and, for devices, ``rawData``.

A send that fails is re-queued to the input topic with ``edata.iteration + 1`` while
``iteration < max iterations`` (reference: 2); after that it is dead-lettered. A request that can
never succeed (unknown mode, no ids, invalid addresses, empty text, an iteration outside
``0..max iterations``) is dead-lettered at once. Pure functions: no Beam, no IO; the senders are
``pipelines.io.senders``.
"""

from __future__ import annotations

import copy
import html
import json
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any
from urllib.parse import quote_plus

from pipelines.domain.errors import InvalidRequest, Skip

ACTION = "broadcast-topic-notification-all"
MODES = ("email", "phone", "device")
DEFAULT_MAX_ITERATIONS = 2  # the reference's max_iteration_count_samza_job
MAX_ITERATIONS_LIMIT = 100
"""The largest ``max_iteration_count`` an operator may set: after a send one dedup key per
iteration is written, so the count must stay small (a request re-sent 100 times is already a
misconfiguration)."""
DEDUP_PREFIX = "notification:"


class InvalidNotification(InvalidRequest):
    """A request that can never be sent; it is dead-lettered, never re-queued."""


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


_DIGITS = re.compile(r"[0-9]{1,9}")  # at most 9 digits: never a huge int() of an attacker's string


def _whole_number(value: Any) -> int | None:
    """An int (not a bool) or a short string of digits; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    return None


def iteration_of(event: dict) -> int:
    """``edata.iteration``; missing or unreadable means the first attempt (1).

    Only for events that passed ``check_iteration`` does this equal the attempt number; the
    validation step rejects the unreadable ones before anything is sent.
    """
    edata = event.get("edata")
    value = _whole_number(edata.get("iteration")) if isinstance(edata, dict) else None
    return 1 if value is None else value


def check_iteration(edata: dict, max_iterations: int) -> int:
    """The attempt number of a request, or ``InvalidNotification`` with the reason.

    Missing or null is the first attempt (1). Otherwise it must be a whole number (an int or a
    string of digits) in ``0..max_iterations``: the job re-queues up to ``max_iterations`` and
    never writes more, so a larger, negative, fractional or non-numeric value did not come from
    this job or its producers. The reference cast it to ``Int`` (a float or string crashed the
    task) and marked nothing; here every sent request marks one dedup key per iteration, so an
    unbounded value (3,000,000, or 1e40) would write that many keys.
    """
    if edata.get("iteration") is None:
        return 1
    it = _whole_number(edata["iteration"])
    if it is None or not 0 <= it <= max_iterations:
        shown = repr(edata["iteration"])
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise InvalidNotification(
            f"edata.iteration must be a whole number from 0 to {max_iterations} (max_iteration_count), "
            f"got {shown}")
    return it


def parse_notification(event: dict, max_iterations: int = DEFAULT_MAX_ITERATIONS) -> Notification:
    """Event -> what to send. Raises ``Skip`` (not a notification) or ``InvalidNotification``."""
    edata = event.get("edata")
    if not isinstance(edata, dict) or not edata:
        raise Skip("edata is missing or empty")
    action = edata.get("action")
    if not isinstance(action, str) or action.lower() != ACTION:
        raise Skip(f"action is not {ACTION}: {action!r}")
    check_iteration(edata, max_iterations)
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


@dataclass(frozen=True)
class RequestParser:
    """``ValidateEvents``' parser for this job: an event -> ``[event]`` once it is sendable.

    The event itself (not the parsed ``Notification``) goes on, because dedup, re-queueing and
    dead-lettering all work on the original event; the send step renders it again (cheap).
    """

    max_iterations: int = DEFAULT_MAX_ITERATIONS

    def __call__(self, event: dict) -> list[dict]:
        parse_notification(event, self.max_iterations)
        return [event]


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
    """The keys marked after a send: iterations ``0..max_iterations``, never more.

    Bounded by the configured maximum alone (not by the event's own iteration, which validation
    has already checked to be within it), so no event can make this list long.
    """
    mid = event.get("mid")
    if not isinstance(mid, str) or not mid:
        return []
    top = min(max(max_iterations, 0), MAX_ITERATIONS_LIMIT)
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
