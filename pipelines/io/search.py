"""Collection status from the composite search service, cached with a TTL like the reference.

The progress jobs ask only when a course's leaf nodes are missing from the relation cache: a
retired collection makes the event a counted skip, anything else a failed event.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pipelines.io.http import HttpClient


class SearchError(Exception):
    """The search service could not say (after retries); the reason goes on the failed event."""


class TTLCache:
    """A tiny per-worker cache whose entries expire ``ttl_secs`` after they were put."""

    def __init__(self, ttl_secs: float, clock: Callable[[], float] = time.monotonic):
        self.ttl_secs, self.clock = ttl_secs, clock
        self._entries: dict[str, tuple[float, str]] = {}

    def get(self, key: str) -> str | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        expires, value = hit
        if self.clock() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: str, value: str) -> None:
        self._entries[key] = (self.clock() + self.ttl_secs, value)


def status_request(collection_id: str) -> dict:
    """The reference's search body: a collection in Live, Unlisted or Retired state, status only."""
    return {"request": {"filters": {"objectType": "Collection", "identifier": collection_id,
                                    "status": ["Live", "Unlisted", "Retired"]},
                        "fields": ["status"]}}


class CollectionStatus:
    def __init__(self, search_base_url: str, http: HttpClient, cache: TTLCache):
        self.url = search_base_url.rstrip("/") + "/v3/search"
        self.http, self.cache = http, cache

    def status(self, collection_id: str) -> str:
        cached = self.cache.get(collection_id)
        if cached is not None:
            return cached
        try:
            resp = self.http.request("POST", self.url, status_request(collection_id))
        except Exception as e:  # noqa: BLE001 - after retries
            raise SearchError(f"search service unavailable: {e}") from e
        if resp.status != 200 or not isinstance(resp.body, dict):
            raise SearchError(f"search service answered {resp.status}")
        result = resp.body.get("result") or {}
        if not result.get("count"):
            raise SearchError(f"no published or retired collection with id {collection_id}")
        status = str((result.get("content") or [{}])[0].get("status", ""))
        self.cache.put(collection_id, status)
        return status
