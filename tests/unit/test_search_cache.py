from pipelines.io.search import TTLCache, status_request


def test_ttl_cache_expires_entries_after_ttl():
    now = [100.0]
    cache = TTLCache(60, clock=lambda: now[0])
    assert cache.get("c") is None
    cache.put("c", "Live")
    now[0] = 159.9
    assert cache.get("c") == "Live"
    now[0] = 160.0
    assert cache.get("c") is None, "expired at put time + ttl"
    cache.put("c", "Retired")
    assert cache.get("c") == "Retired"


def test_status_request_is_the_reference_search_body():
    assert status_request("do_1") == {"request": {
        "filters": {"objectType": "Collection", "identifier": "do_1", "status": ["Live", "Unlisted", "Retired"]},
        "fields": ["status"]}}
