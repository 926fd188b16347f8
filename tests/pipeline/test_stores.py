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
    assert db.prepare(insert) is db.prepare(insert), "each statement is prepared once"
    assert db.prepare(select) is db.prepare(select)


def test_clients_of_one_config_share_one_session_until_the_last_closes(stack):
    cfg = CassandraConfig(hosts=("127.0.0.1",), port=stack["cassandra"], keyspace="lern_beam", consistency="LOCAL_ONE")
    a, b = CassandraClient(cfg), CassandraClient(cfg)
    assert a.session is b.session, "one cluster per worker process, not per DoFn"
    cluster = a.session.cluster
    a.close()
    assert not cluster.is_shutdown, "b still uses it"
    assert b.execute("SELECT release_version FROM system.local")[0].release_version
    b.close()
    assert cluster.is_shutdown, "the last close shuts the cluster down"


def test_execute_batches_writes_every_statement(db, run_id):
    insert = "INSERT INTO smoke_event (mid, shard, payload, batch_size) VALUES (?, ?, ?, ?)"
    rows = [(f"{run_id}-b{i}", i % 3, f"p{i}", 7) for i in range(120)]
    db.execute_batches([(insert, r) for r in rows], max_statements=25)
    db.execute_batches([(insert, r) for r in rows[:10]], logged=True)
    got = db.execute_many("SELECT payload FROM smoke_event WHERE mid = ?", [(r[0],) for r in rows])
    assert [res[0].payload for res in got] == [r[2] for r in rows]


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
