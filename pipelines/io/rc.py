"""Sunbird RC (registry) client: the certificate calls of collection-certificate-generator.

    with RCClient(base_url, "TrainingCertificate", api_key) as rc:
        kid = rc.public_key_id()
        osid = rc.create(body)           # POST {rc}/{entity}, Authorization: <api key>
        rc.delete(old_osid)              # DELETE {rc}/{entity}/{osid}
        rc.read(osid)                    # GET {rc}/{entity}/{osid}
        rc.revoke(osid)                  # POST {rc}/{entity}/{osid}/revoke -> "revoked" | "already-revoked"
        rc.search({"recipient.id": {"eq": user}})

A client per DoFn, opened in ``setup`` and closed in ``teardown`` (Beam's ``requestresponse``
``Caller`` shape). Connection errors, timeouts and 5xx are retried with backoff by the HTTP
client; what is left is raised as a typed error, so the caller decides: ``RCUnavailable`` (no
answer after the retries: the event is dead-lettered and replayed later), ``RCRejected`` (RC
answered, but not with what was asked; ``RCNotFound`` for an unknown record).
"""

from __future__ import annotations

from typing import Any

import requests

from pipelines.io.http import HttpClient, HttpResponse, TransientHttpError
from pipelines.io.retry import RetryPolicy, call_with_retries

JSON_HEADERS = {"Content-Type": "application/json"}
ALREADY_REVOKED = "already revoked"  # Sunbird RC's 500 answer to a second revoke of one credential


class RCError(Exception):
    """A Sunbird RC call did not do what was asked; the message says which call and why."""


class RCUnavailable(RCError):
    """No answer after the retries (connection error, timeout, 5xx)."""


class RCRejected(RCError):
    """RC answered, but not with success (``status`` and a prefix of the body in the message)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class RCNotFound(RCRejected):
    """No record with that id."""


class RCClient:
    def __init__(self, base_url: str, entity: str, api_key: str = "", timeout_secs: float = 10.0,
                 retries: int = 3):
        if not base_url or not entity:
            raise ValueError("RCClient needs service.rc.basePath and service.rc.entity")
        self.base_url, self.entity, self.api_key = base_url.rstrip("/"), entity, api_key
        self.http = HttpClient(timeout_secs, RetryPolicy(attempts=retries + 1))

    def __enter__(self) -> RCClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _url(self, *parts: str) -> str:
        return "/".join([self.base_url, *parts])

    def _call(self, what: str, method: str, url: str, body: Any = None, headers: dict | None = None) -> HttpResponse:
        try:
            return self.http.request(method, url, body, headers or JSON_HEADERS)
        except (requests.ConnectionError, requests.Timeout, TransientHttpError) as e:
            raise RCUnavailable(f"RC {what} unavailable: {e}") from e

    @staticmethod
    def _rejected(what: str, r: HttpResponse) -> RCRejected:
        cls = RCNotFound if r.status == 404 else RCRejected
        return cls(f"RC {what} answered {r.status}: {str(r.body)[:200]}", r.status)

    def public_key_id(self) -> str:
        """``POST {rc}/PublicKey/search {"filters":{}}``: the signing key's ``osid`` (the issuer ``kid``)."""
        r = self._call("public key search", "POST", self._url("PublicKey", "search"), {"filters": {}})
        if r.status != 200 or not isinstance(r.body, list) or not r.body or not isinstance(r.body[0], dict):
            raise self._rejected("public key search", r)
        return r.body[0].get("osid")

    def create(self, body: dict[str, Any]) -> str:
        """``POST {rc}/{entity}`` with the API key; the new record's ``osid``."""
        r = self._call("create", "POST", self._url(self.entity), body,
                       {**JSON_HEADERS, "Authorization": self.api_key})
        result = r.body.get("result") if isinstance(r.body, dict) else None
        osid = ((result or {}).get(self.entity) or {}).get("osid") if isinstance(result, dict) else None
        if r.status != 200 or not osid:
            raise self._rejected("create", r)
        return osid

    def delete(self, osid: str) -> None:
        """``DELETE {rc}/{entity}/{osid}``."""
        r = self._call("delete", "DELETE", self._url(self.entity, osid))
        if r.status != 200:
            raise self._rejected("delete", r)

    def search(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """``POST {rc}/{entity}/search``: the matching records (RC answers a bare JSON list)."""
        r = self._call("search", "POST", self._url(self.entity, "search"), {"filters": filters})
        if r.status != 200 or not isinstance(r.body, list):
            raise self._rejected("search", r)
        return [rec for rec in r.body if isinstance(rec, dict)]

    def read(self, osid: str) -> dict[str, Any]:
        """``GET {rc}/{entity}/{osid}``: the record (``RCNotFound`` for an unknown id)."""
        r = self._call("read", "GET", self._url(self.entity, osid), headers={"Authorization": self.api_key})
        if r.status != 200 or not isinstance(r.body, dict):
            raise self._rejected("read", r)
        return r.body

    def revoke(self, osid: str) -> str:
        """``POST {rc}/{entity}/{osid}/revoke``: ``"revoked"``, or ``"already-revoked"`` for RC's answer to
        a repeat (HTTP 500 "Credential is already revoked"), which is done, not failed, and not retried.

        Other 5xx answers and connection faults are retried like every call; what is left raises
        ``RCUnavailable``; a 4xx raises ``RCRejected`` (``RCNotFound`` for an unknown id).
        """
        url = self._url(self.entity, osid, "revoke")

        def once() -> HttpResponse:
            r = self.http.session.request("POST", url, json={}, timeout=self.http.timeout_secs,
                                          headers={**JSON_HEADERS, "Authorization": self.api_key})
            if r.status_code >= 500 and ALREADY_REVOKED not in r.text.lower():
                raise TransientHttpError(f"POST {url} answered {r.status_code}: {r.text[:200]}")
            try:
                return HttpResponse(r.status_code, r.json())
            except ValueError:
                return HttpResponse(r.status_code, r.text)

        try:
            r = call_with_retries(once, self.http.retry, (requests.ConnectionError, requests.Timeout,
                                                          TransientHttpError), f"POST {url}")
        except (requests.ConnectionError, requests.Timeout, TransientHttpError) as e:
            raise RCUnavailable(f"RC revoke unavailable: {e}") from e
        if r.status >= 500:
            return "already-revoked"
        if r.status != 200:
            raise self._rejected("revoke", r)
        return "revoked"
