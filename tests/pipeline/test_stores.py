"""CassandraClient and RedisClient against the real servers."""

from __future__ import annotations

import pytest
from cassandra import InvalidRequest

from pipelines.io.cassandra import CassandraClient, CassandraConfig
from pipelines.io.redis_store import RedisClient, RedisConfig
from pipelines.io.retry import RetryPolicy


@pytest.fixture
def db(stack):
    client = CassandraClient(CassandraConfig(hosts=("127.0.0.1",), port=stack["cassandra"], keyspace="lern_beam",
                                             consistency="LOCAL_ONE"))
    yield client
    client.close()


def test_execute_many_runs_prepared_statements_concurrently_in_order(db, run_id):
    insert = "INSERT INTO smoke_event (mid, shard, payload, batch_size) VALUES (?, ?, ?, ?)"
    rows = [(f"{run_id}-{i}", i % 3, f"p{i}", 50) for i in range(50)]
    assert db.execute_many(insert, rows) == [[] for _ in rows]
    select = "SELECT mid, payload FROM smoke_event WHERE mid = ?"
    results = db.execute_many(select, [(r[0],) for r in rows])
    assert [res[0].payload for res in results] == [f"p{i}" for i in range(50)], "results line up with params"
    assert len(db._prepared) == 2, "each statement is prepared once"


def test_execute_many_raises_non_transient_errors_at_once(db):
    with pytest.raises(InvalidRequest, match="nope"):
        db.execute_many("INSERT INTO smoke_event (mid, nope) VALUES (?, ?)", [("x", 1)])
    with pytest.raises(TypeError, match="shard"):
        db.execute_many("INSERT INTO smoke_event (mid, shard) VALUES (?, ?)", [("x", "not-an-int")])


def test_redis_client_gives_up_after_retries_when_down():
    client = RedisClient(RedisConfig(port=1), RetryPolicy(attempts=2, initial_backoff_secs=0.01))
    with pytest.raises(Exception, match="(?i)connect"):
        client.call(lambda c: c.ping())


def test_redis_client_selects_the_configured_db(stack, run_id):
    client = RedisClient(RedisConfig(port=stack["redis"], db=7))
    client.call(lambda c: c.set(run_id, "v", ex=60))
    other = RedisClient(RedisConfig(port=stack["redis"], db=0))
    assert client.call(lambda c: c.get(run_id)) == b"v"
    assert other.call(lambda c: c.get(run_id)) is None
    client.call(lambda c: c.delete(run_id))
