"""Cassandra sessions for DoFns: one per worker process, prepared statements, bulk execution.

The reference inlines values into CQL strings, one statement per event, and on HEAD reconnects
with a plain cluster that silently drops LOCAL_QUORUM. Here statements are prepared once,
executed concurrently in bulk (or as batches of many statements per request), at the configured
consistency, with bounded retries.

Costs that matter, measured on the activity job: the Python driver spends ~0.4 ms of CPU per
request inside the GIL, and its default row factory builds a new namedtuple class for every
response. So DoFns share one cluster per process and config (``_SESSIONS``, refcounted so the
last ``close`` shuts it down: Beam's ``Shared`` would leave the shutdown to the garbage
collector), rows come from a factory that caches the Row class per column set, and writes that
can go together go as batches (``execute_batches``): one request instead of dozens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import namedtuple
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cassandra import ConsistencyLevel, OperationTimedOut, ProtocolVersion, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType

from pipelines.io.retry import RetriesExhausted, RetryPolicy, call_with_retries

TRANSIENT = (NoHostAvailable, OperationTimedOut, ReadTimeout, WriteTimeout, Unavailable)
Statement = tuple[str, Sequence[Any]]


@dataclass(frozen=True)
class CassandraConfig:
    hosts: tuple[str, ...] = ("localhost",)
    port: int = 9042
    keyspace: str | None = None
    consistency: str = "LOCAL_QUORUM"
    concurrency: int = 128
    request_timeout_secs: float = 20.0
    protocol_version: int = ProtocolVersion.V5  # Cassandra 4+; set explicitly so the driver does not probe


@lru_cache(maxsize=256)
def _row_class(fields: tuple[str, ...]) -> type:
    return namedtuple("Row", fields, rename=True)  # noqa: PYI024 - rows are built by the driver


def cached_row_factory(colnames: Sequence[str], rows: Sequence[Sequence[Any]]) -> list:
    """The driver's ``named_tuple_factory`` without building a new class for every response."""
    cls = _row_class(tuple(colnames))
    return [cls._make(r) for r in rows]


class BatchWarningsOnce(logging.Filter):
    """Lets the server's warnings about our batches through once per kind and process.

    ``execute_batches`` sends UNLOGGED batches over many partitions and above Cassandra's 5 KiB
    warn threshold on purpose (bench/README.md: one request instead of dozens). The server warns
    on every such request and the driver logs each warning: ~20,000 identical lines per 100k
    events of a backfill. The first of each kind stays, so an operator still sees it; anything
    else the server says is logged as before."""

    KINDS = ("Unlogged batch covering", "Batch for [")

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = next((k for k in self.KINDS if k in message), None)
        if kind is None:
            return True
        if kind in self.seen:
            return False
        self.seen.add(kind)
        record.msg, record.args = f"{message} (further warnings of this kind are not logged)", None
        return True


def _quiet_batch_warnings() -> None:
    driver_log = logging.getLogger("cassandra.protocol")
    if not any(isinstance(f, BatchWarningsOnce) for f in driver_log.filters):
        driver_log.addFilter(BatchWarningsOnce())


class _SharedSession:
    """One cluster + session for every client of a process with the same config."""

    def __init__(self, cfg: CassandraConfig, retry: RetryPolicy):
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            consistency_level=ConsistencyLevel.name_to_value[cfg.consistency],
            request_timeout=cfg.request_timeout_secs,
            row_factory=cached_row_factory,
        )

        def connect() -> tuple[Cluster, Session]:
            cluster = Cluster(list(cfg.hosts), port=cfg.port, connect_timeout=10, protocol_version=cfg.protocol_version,
                              execution_profiles={EXEC_PROFILE_DEFAULT: profile})
            return cluster, cluster.connect(cfg.keyspace)

        _quiet_batch_warnings()
        self.cluster, self.session = call_with_retries(connect, retry, TRANSIENT, "cassandra connect")
        self.prepared: dict[str, Any] = {}
        self.users = 0


_SESSIONS: dict[CassandraConfig, _SharedSession] = {}
_SESSIONS_LOCK = threading.Lock()


class CassandraClient:
    """A DoFn's handle on its process's shared session; statements prepared once per process."""

    def __init__(self, cfg: CassandraConfig, retry: RetryPolicy = RetryPolicy()):
        self.cfg, self.retry = cfg, retry
        self._shared: _SharedSession | None = None

    def _acquire(self) -> _SharedSession:
        if self._shared is None:
            with _SESSIONS_LOCK:
                shared = _SESSIONS.get(self.cfg)
                if shared is None:
                    shared = _SESSIONS[self.cfg] = _SharedSession(self.cfg, self.retry)
                shared.users += 1
                self._shared = shared
        return self._shared

    @property
    def session(self) -> Session:
        return self._acquire().session

    def prepare(self, cql: str):
        prepared = self._acquire().prepared
        stmt = prepared.get(cql)
        if stmt is None:
            stmt = prepared[cql] = call_with_retries(
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
        raise RetriesExhausted(f"{len(pending)} statements still failing after retries: {cql}")

    def execute_batches(self, statements: Sequence[Statement | list[Statement]], logged: bool = False,
                        max_statements: int = 50) -> None:
        """Writes ``(cql, params)`` statements as batches of about ``max_statements``, concurrently.

        One request per batch instead of one per statement. A list of statements is a group that
        always lands in one batch (a group larger than ``max_statements`` gets a batch of its
        own). A LOGGED batch is all-or-nothing across tables and partitions (used where two tables
        must change together); an UNLOGGED one only saves requests. Batches are retried whole on
        a transient fault: every statement given here must be an idempotent value write (no
        counters, no appends, no LWT).
        """
        kind = BatchType.LOGGED if logged else BatchType.UNLOGGED
        batches: list[BatchStatement] = []
        batch, size = None, 0
        for item in statements:
            group = item if isinstance(item, list) else [item]
            if batch is None or size + len(group) > max_statements:
                batch, size = BatchStatement(batch_type=kind), 0
                batches.append(batch)
            for cql, params in group:
                batch.add(self.prepare(cql), params)
            size += len(group)
        if not batches:
            return
        pending = batches
        for delay in [0.0, *self.retry.delays()]:
            if delay:
                time.sleep(delay)
            outcomes = execute_concurrent(self.session, [(b, None) for b in pending],
                                          concurrency=self.cfg.concurrency, raise_on_first_error=False)
            failed = []
            for batch, (ok, res) in zip(pending, outcomes, strict=True):
                if ok:
                    continue
                if not isinstance(res, TRANSIENT):
                    raise res
                failed.append(batch)
            if not failed:
                return
            pending = failed
        raise RetriesExhausted(f"{len(pending)} batches still failing after retries")

    def close(self) -> None:
        """Releases this handle; the last one of a config shuts its cluster down."""
        if self._shared is None:
            return
        with _SESSIONS_LOCK:
            shared, self._shared = self._shared, None
            shared.users -= 1
            if shared.users <= 0 and _SESSIONS.get(self.cfg) is shared:
                del _SESSIONS[self.cfg]
                shared.cluster.shutdown()
