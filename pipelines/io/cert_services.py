"""The Sunbird service calls of the certificate jobs other than RC: user read, content read,
notification and user feed (reference ``IssueCertificateHelper``, ``NotifierFunction``,
``CreateUserFeedFunction``).

A context-manager client over the retried HTTP client: connection errors, timeouts and 5xx are
retried; what is left is a ``ServiceUnavailable``; an answer that is not success is a
``ServiceRejected`` with the status. A blocked user and unknown content are answers (``None``),
not errors, because the reference treats them as skips.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import requests

from pipelines.io.http import HttpClient, HttpResponse, TransientHttpError
from pipelines.io.retry import RetryPolicy

JSON_HEADERS = {"Content-Type": "application/json"}
USER_BLOCKED_CODES = ("UOS_USRRED0006", "USER_ACCOUNT_BLOCKED")
NOTIFICATION_PATH = "/v2/notification"
USER_FEED_PATH = "/private/user/feed/v1/create"


class ServiceError(Exception):
    """A Sunbird service call did not do what was asked; the message says which and why."""


class ServiceUnavailable(ServiceError):
    """No answer after the retries."""


class ServiceRejected(ServiceError):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class CertServices:
    def __init__(self, content_base: str, learner_base: str, timeout_secs: float = 10.0, retries: int = 3):
        self.content_base, self.learner_base = content_base, learner_base
        self.http = HttpClient(timeout_secs, RetryPolicy(attempts=retries + 1))

    def __enter__(self) -> CertServices:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _call(self, what: str, method: str, url: str, body: Any = None) -> HttpResponse:
        try:
            return self.http.request(method, url, body, JSON_HEADERS)
        except (requests.ConnectionError, requests.Timeout, TransientHttpError) as e:
            raise ServiceUnavailable(f"{what} unavailable: {e}") from e

    def read_user(self, user_id: str, path: str, query: str = "") -> dict | None:
        """``GET {learner}{path}/{id}[?query]``: the profile, or ``None`` for a blocked user."""
        url = f"{self.learner_base}{path}/{quote(user_id, safe='')}" + (f"?{query}" if query else "")
        r = self._call(f"user read for {user_id}", "GET", url)
        if r.status == 200 and isinstance(r.body, dict):
            return ((r.body.get("result") or {}).get("response")) or {}
        if r.status == 400 and any(code in json.dumps(r.body) for code in USER_BLOCKED_CODES):
            return None
        raise ServiceRejected(f"user read for {user_id} answered {r.status}", r.status)

    def read_content(self, content_id: str, api: str, fields: str | None = None) -> dict | None:
        """``GET {content}{api}/{id}[?fields=...]``: the content's metadata, or ``None`` when unknown."""
        url = f"{self.content_base}{api}/{quote(content_id, safe='')}" + (f"?fields={fields}" if fields else "")
        r = self._call(f"content read for {content_id}", "GET", url)
        if r.status == 200 and isinstance(r.body, dict) and str(r.body.get("responseCode", "OK")).upper() == "OK":
            return (r.body.get("result") or {}).get("content") or {}
        return None

    def _post(self, what: str, path: str, body: dict) -> None:
        r = self._call(what, "POST", f"{self.learner_base}{path}", body)
        if r.status != 200:
            raise ServiceRejected(f"{what} answered {r.status}", r.status)

    def notify(self, body: dict) -> None:
        self._post("notification", NOTIFICATION_PATH, body)

    def create_feed(self, body: dict) -> None:
        self._post("user feed", USER_FEED_PATH, body)
