"""The user read and framework read APIs, as user-cache-updater-2.0 calls them.

``GET <service.userorg.basePath><user_read_api><id>?fields=<user.read.url.fields>`` and
``GET <service.taxonomy.basePath><framework_read_api><framework id>``. Ids are percent-encoded as
one path segment: the reference concatenated them raw, so an id such as ``u1?fields=x#`` turned
into a different request (another ``fields=``, the real query cut off as a fragment).

The framework's category codes are cached per worker for a day, as the reference's Guava cache;
an empty answer is not cached. Transport faults (after the HTTP client's retries) raise
``UserApiUnavailable``; interpreting a user read answer is ``domain.user_cache.read_outcome``.
"""

from __future__ import annotations

from urllib.parse import quote

from pipelines.io.http import HttpClient, HttpResponse
from pipelines.io.retry import RetryPolicy
from pipelines.io.search import TTLCache

FRAMEWORK_CACHE_SECS = 86400  # the reference's Guava cache: one day


class UserApiUnavailable(Exception):
    """The user or framework read API could not be reached (after retries) or answered 5xx."""


def path_segment(value: str) -> str:
    """``value`` as one URL path segment: every reserved character (``/ ? # % &`` ...) escaped."""
    return quote(value, safe="")


def user_read_url(base_url: str, user_id: str, fields: str) -> str:
    """The user read URL for one user; ``fields`` keeps its commas (``locations,organisations``)."""
    return f"{base_url}{path_segment(user_id)}?fields={quote(fields, safe=',')}"


class UserApi:
    """The two read calls over one HTTP session; a context manager that closes it."""

    def __init__(self, user_read_url: str, framework_read_url: str, read_fields: str,
                 timeout_secs: float = 10.0, retries: int = 3):
        self.user_read_base, self.framework_read_base, self.read_fields = \
            user_read_url, framework_read_url, read_fields
        self.http = HttpClient(timeout_secs, RetryPolicy(attempts=max(1, retries + 1)))
        self._frameworks = TTLCache(FRAMEWORK_CACHE_SECS)

    def __enter__(self) -> UserApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_user(self, user_id: str) -> HttpResponse:
        try:
            return self.http.request("GET", user_read_url(self.user_read_base, user_id, self.read_fields))
        except Exception as e:  # noqa: BLE001 - transient faults after retries
            raise UserApiUnavailable(f"user read failed: {type(e).__name__}: {str(e)[:200]}") from None

    def categories(self, framework_id: str) -> list[str]:
        """The category codes of a framework (``result.framework.categories[].code``)."""
        hit = self._frameworks.get(framework_id)
        if hit is not None:
            return hit
        try:
            r = self.http.request("GET", f"{self.framework_read_base}{path_segment(framework_id)}")
        except Exception as e:  # noqa: BLE001 - transient faults after retries
            raise UserApiUnavailable(f"framework read failed: {type(e).__name__}: {str(e)[:200]}") from None
        codes: list[str] = []
        body = r.body if isinstance(r.body, dict) else {}
        ok = str(body.get("responseCode", "")).upper() == "OK" and isinstance(body.get("result"), dict)
        fw = body["result"].get("framework") if ok else None
        if isinstance(fw, dict):
            codes = [c["code"] for c in fw.get("categories") or []
                     if isinstance(c, dict) and isinstance(c.get("code"), str)]
        if codes:  # like the reference, an empty answer is not cached
            self._frameworks.put(framework_id, codes)
        return codes

    def close(self) -> None:
        self.http.close()
