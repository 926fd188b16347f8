import pytest

from pipelines.domain.javafmt import java_string_hash
from pipelines.io.retry import RetryPolicy, call_with_retries
from pipelines.transforms.batching import chunks, shard_of
from pipelines.transforms.dedup import RecentKeys, mid_key, split_batch


def test_java_string_hash_matches_java():
    # Values computed with java.lang.String#hashCode.
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("user-1") == -836031825
    assert java_string_hash("polygenelubricants") == -2147483648
    assert java_string_hash("😀") == 1772899  # a surrogate pair counts as two UTF-16 units


def test_shard_of_is_java_remainder():
    assert shard_of("hello", 7) == 99162322 % 7
    assert shard_of("user-1", 1000) == -825  # Java: -836031825 % 1000
    assert shard_of("anything", 1) == 0


def test_chunks_splits_a_group_into_fixed_size_batches():
    assert list(chunks((3, iter(range(5))), 2)) == [(3, [0, 1]), (3, [2, 3]), (3, [4])]
    assert list(chunks((0, []), 2)) == []


def test_split_batch_uses_redis_answers_and_in_run_memory():
    recent = RecentKeys()
    batch = [{"mid": "a"}, {"mid": "b"}, {"x": 1}, {"mid": "a"}, {"mid": "c"}]
    unique, dups, keyless = split_batch(batch, mid_key, [False, True, False, False], recent)
    assert unique == [{"mid": "a"}, {"mid": "c"}]
    assert dups == [{"mid": "b"}, {"mid": "a"}]
    assert keyless == [{"x": 1}]
    # a later batch with a key let through before is a duplicate even if Redis has not seen it yet
    unique, dups, _ = split_batch([{"mid": "c"}, {"mid": "d"}], mid_key, [False, False], recent)
    assert unique == [{"mid": "d"}] and dups == [{"mid": "c"}]


def test_recent_keys_forgets_oldest_beyond_capacity():
    r = RecentKeys(capacity=2)
    for k in "abc":
        r.add(k)
    assert "a" not in r and "b" in r and "c" in r


def test_mid_key_requires_non_empty_string():
    assert mid_key({"mid": "m"}) == "m"
    assert mid_key({"mid": ""}) is None and mid_key({"mid": 5}) is None and mid_key({}) is None


def test_retry_retries_transient_then_succeeds():
    calls, sleeps, reconnects = [], [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    out = call_with_retries(flaky, RetryPolicy(attempts=4, initial_backoff_secs=0.1), (ConnectionError,),
                            on_retry=reconnects.append, sleep=sleeps.append)
    assert out == "ok" and len(calls) == 3 and len(sleeps) == 2 and len(reconnects) == 2
    assert 0.08 <= sleeps[0] <= 0.12 and 0.16 <= sleeps[1] <= 0.24


def test_retry_gives_up_after_attempts_and_raises_last_error():
    calls = []

    def down():
        calls.append(1)
        raise ConnectionError(f"down {len(calls)}")

    with pytest.raises(ConnectionError, match="down 3"):
        call_with_retries(down, RetryPolicy(attempts=3), (ConnectionError,), sleep=lambda s: None)
    assert len(calls) == 3


def test_retry_does_not_retry_non_transient_errors():
    calls = []

    def bad():
        calls.append(1)
        raise ValueError("bad request")

    with pytest.raises(ValueError):
        call_with_retries(bad, RetryPolicy(attempts=5), (ConnectionError,), sleep=lambda s: None)
    assert len(calls) == 1


def test_backoff_is_capped():
    delays = RetryPolicy(attempts=8, initial_backoff_secs=1, max_backoff_secs=3).delays()
    assert len(delays) == 7 and max(delays) <= 3 * 1.2


def test_an_outage_fails_a_streaming_bundle_and_is_dead_lettered_in_batch():
    import pytest
    import redis as redis_lib

    from pipelines.io.http import TransientHttpError
    from pipelines.io.retry import RetriesExhausted
    from pipelines.transforms.failures import StoreUnavailable, raise_outage

    for outage in (redis_lib.ConnectionError("down"), RetriesExhausted("3 statements still failing"),
                   TransientHttpError("503")):
        raise_outage(outage, dead_letter=True)  # batch: the caller dead-letters it
        with pytest.raises(StoreUnavailable):
            raise_outage(outage, dead_letter=False)
    try:
        raise ValueError("content read API unavailable") from TransientHttpError("502")
    except ValueError as wrapped:
        with pytest.raises(StoreUnavailable, match="content read API unavailable"):
            raise_outage(wrapped, dead_letter=False)
    raise_outage(ValueError("a bad value is the event's fault"), dead_letter=False)  # dead-lettered in both


def test_a_mark_younger_than_the_replay_window_lets_a_crash_replay_through():
    from pipelines.transforms.dedup import is_duplicate

    now = 1_700_000_600_000
    assert not is_duplicate(None, now, 0) and not is_duplicate(None, now, 60_000)
    assert is_duplicate(b"1700000599000", now, 0), "batch, or a window of 0: any mark is a duplicate"
    assert not is_duplicate(b"1700000599000", now, 60_000), "marked 1 s ago: a replay after a crash"
    assert is_duplicate(b"1700000500000", now, 60_000), "marked 100 s ago: a duplicate"
    assert is_duplicate(b"", now, 60_000), "the reference's mark has no time: always a duplicate"
