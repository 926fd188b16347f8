"""Shared test fixtures: the local stack's addresses and per-test isolation helpers.

Pipeline and e2e tests need the real servers from ``make up``. When one is missing the test
fails with the command to run; it is never skipped, because a skipped integration test would
hide exactly the failure it exists to catch.
"""

from __future__ import annotations

import socket
import uuid

import pytest

HOST = "127.0.0.1"
PORTS = {"kafka": 9092, "cassandra": 9042, "redis": 6379, "expansion-service": 8097,
         "sunbird-emulator": 9000, "smtp": 2525}


def _open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


@pytest.fixture(scope="session")
def stack() -> dict[str, int]:
    down = [name for name, port in PORTS.items() if not _open(port)]
    if down:
        pytest.fail(f"local stack not answering ({', '.join(down)}): run `make up`", pytrace=False)
    return PORTS


@pytest.fixture
def run_id() -> str:
    """A unique prefix for ids this test writes, so tests never see each other's rows or keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def cql(stack):
    """A session on the LMS keyspace of the local Cassandra."""
    from cassandra.cluster import Cluster

    cluster = Cluster([HOST], port=stack["cassandra"])
    yield cluster.connect("sunbird_courses")
    cluster.shutdown()
