"""Redis connections: one client per DoFn instance, db index chosen at connect time like the reference."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from pipelines.io.retry import RetryPolicy, call_with_retries

TRANSIENT = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


@dataclass(frozen=True)
class RedisConfig:
    host: str = "localhost"
    port: int = 6379
    db: int = 0
    socket_timeout_secs: float = 5.0


class RedisClient:
    """A lazily connected client whose calls are retried with backoff and reconnect."""

    def __init__(self, cfg: RedisConfig, retry: RetryPolicy = RetryPolicy()):
        self.cfg, self.retry = cfg, retry
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis(
                host=self.cfg.host, port=self.cfg.port, db=self.cfg.db,
                socket_timeout=self.cfg.socket_timeout_secs, socket_connect_timeout=self.cfg.socket_timeout_secs)
        return self._client

    def _reconnect(self, _err: BaseException) -> None:
        self.close()

    def call(self, fn, what: str = "redis"):
        """Runs ``fn(client)`` with retries; the client is rebuilt after a connection fault."""
        return call_with_retries(lambda: fn(self.client), self.retry, TRANSIENT, what, self._reconnect)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
