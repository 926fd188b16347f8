"""CollectionStatus against the Sunbird emulator: retries on 5xx, caches, reports unknown collections."""

import pytest
import requests

from pipelines.io.http import HttpClient
from pipelines.io.retry import RetryPolicy
from pipelines.io.search import CollectionStatus, SearchError, TTLCache

EMULATOR = "http://127.0.0.1:9000"


def searches(run_id: str) -> int:
    reqs = requests.get(f"{EMULATOR}/__emulator/requests", params={"path_prefix": "/v3/search"}, timeout=10).json()
    return sum(1 for r in reqs if r["body"]["request"]["filters"]["identifier"] == run_id)


def test_status_is_retried_through_5xx_then_cached(stack, run_id):
    requests.post(f"{EMULATOR}/__emulator/seed", json={"contents": {
        run_id: {"objectType": "Collection", "status": "Retired"}}}, timeout=10).raise_for_status()
    requests.post(f"{EMULATOR}/__emulator/faults", json={"path_prefix": "/v3/search", "status": 503, "times": 2},
                  timeout=10).raise_for_status()
    client = CollectionStatus(EMULATOR, HttpClient(5, RetryPolicy(attempts=4, initial_backoff_secs=0.05)),
                              TTLCache(60))
    assert client.status(run_id) == "Retired"
    assert searches(run_id) == 3, "two 503s, then the answer"
    assert client.status(run_id) == "Retired"
    assert searches(run_id) == 3, "second lookup served from the cache"


def test_unknown_collection_and_persistent_failure_raise_with_a_reason(stack, run_id):
    client = CollectionStatus(EMULATOR, HttpClient(5, RetryPolicy(attempts=2, initial_backoff_secs=0.01)),
                              TTLCache(60))
    with pytest.raises(SearchError, match=f"no published or retired collection with id {run_id}"):
        client.status(run_id)
    requests.post(f"{EMULATOR}/__emulator/faults", json={"path_prefix": "/v3/search", "status": 500, "times": 2},
                  timeout=10).raise_for_status()
    with pytest.raises(SearchError, match="search service unavailable"):
        client.status(run_id)
