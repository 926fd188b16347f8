"""Cassandra sessions for DoFns: opened in ``setup``, prepared statements, bulk concurrent execution.

The reference inlines values into CQL strings, one statement per event, and on HEAD reconnects
with a plain cluster that silently drops LOCAL_QUORUM. Here statements are prepared once,
executed concurrently in bulk, at the configured consistency, with bounded retries.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import ConsistencyLevel, OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from pipelines.io.retry import RetryPolicy, call_with_retries

TRANSIENT = (NoHostAvailable, OperationTimedOut, ReadTimeout, WriteTimeout, Unavailable)


@dataclass(frozen=True)
class CassandraConfig:
    hosts: tuple[str, ...] = ("localhost",)
    port: int = 9042
    keyspace: str | None = None
    consistency: str = "LOCAL_QUORUM"
    concurrency: int = 128
    request_timeout_secs: float = 20.0


class CassandraClient:
    """One cluster connection per DoFn instance; statements prepared once and cached."""

    def __init__(self, cfg: CassandraConfig, retry: RetryPolicy = RetryPolicy()):
        self.cfg, self.retry = cfg, retry
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._prepared: dict[str, Any] = {}

    @property
    def session(self) -> Session:
        if self._session is None:
            profile = ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
                consistency_level=ConsistencyLevel.name_to_value[self.cfg.consistency],
                request_timeout=self.cfg.request_timeout_secs,
            )

            def connect() -> Session:
                self._cluster = Cluster(list(self.cfg.hosts), port=self.cfg.port, connect_timeout=10,
                                        execution_profiles={EXEC_PROFILE_DEFAULT: profile})
                return self._cluster.connect(self.cfg.keyspace)

            self._session = call_with_retries(connect, self.retry, TRANSIENT, "cassandra connect")
        return self._session

    def prepare(self, cql: str):
        stmt = self._prepared.get(cql)
        if stmt is None:
            stmt = self._prepared[cql] = call_with_retries(
                lambda: self.session.prepare(cql), self.retry, TRANSIENT, "cassandra prepare")
        return stmt

    def execute(self, cql: str, params: Sequence[Any] = ()) -> list:
        stmt = self.prepare(cql)
        return list(call_with_retries(lambda: self.session.execute(stmt, params), self.retry, TRANSIENT, cql))

    def execute_many(self, cql: str, rows: Iterable[Sequence[Any]]) -> list[list]:
        """Runs one prepared statement for every parameter row concurrently; returns rows per call.

        Only the failed calls of a round are retried, so a transient fault costs one statement,
        not the whole batch.
        """
        stmt = self.prepare(cql)
        pending = list(enumerate(rows))
        results: dict[int, list] = {}
        for delay in [0.0, *self.retry.delays()]:
            if delay:
                time.sleep(delay)
            outcomes = execute_concurrent_with_args(
                self.session, stmt, [p for _, p in pending], concurrency=self.cfg.concurrency,
                raise_on_first_error=False)
            failed = []
            for (i, params), (ok, res) in zip(pending, outcomes, strict=True):
                if ok:
                    results[i] = list(res)
                elif isinstance(res, TRANSIENT):
                    failed.append((i, params))
                else:
                    raise res
            if not failed:
                return [results[i] for i in sorted(results)]
            pending = failed
        raise RuntimeError(f"{len(pending)} statements still failing after retries: {cql}")

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
        self._cluster = self._session = None
        self._prepared.clear()
