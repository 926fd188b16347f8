"""JSON over HTTP to Sunbird services, with timeouts and bounded retries on transient faults.

A connection error, a timeout or a 5xx is transient (retried with backoff); a 4xx is an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from pipelines.io.retry import RetryPolicy, call_with_retries


class TransientHttpError(Exception):
    """A 5xx answer, retried like a connection fault."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Any  # parsed JSON, or the text when the body is not JSON


class HttpClient:
    def __init__(self, timeout_secs: float = 10.0, retry: RetryPolicy = RetryPolicy()):
        self.timeout_secs, self.retry = timeout_secs, retry
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def request(self, method: str, url: str, json_body: Any = None, headers: dict | None = None) -> HttpResponse:
        def once() -> HttpResponse:
            r = self.session.request(method, url, json=json_body, headers=headers, timeout=self.timeout_secs)
            if r.status_code >= 500:
                raise TransientHttpError(f"{method} {url} answered {r.status_code}: {r.text[:200]}")
            try:
                body = r.json()
            except ValueError:
                body = r.text
            return HttpResponse(r.status_code, body)

        transient = (requests.ConnectionError, requests.Timeout, TransientHttpError)
        return call_with_retries(once, self.retry, transient, f"{method} {url}")

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
