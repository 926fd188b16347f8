"""UpdateUserCache: user AUDIT events (or user ids to refresh) -> the ``user:<id>`` hashes in Redis.

::

    events --> _UpdateFn: plan (domain.user_cache, reading io.user_api) --> write (Redis MULTI/EXEC)
                   |--> updated user ids
                   '--> failed (user/framework read unusable, Redis down after retries)

The derivation rules are ``pipelines.domain.user_cache``; the read APIs are
``pipelines.io.user_api``. This module calls them and writes the hash: the write is the only
logic here, because the stale fields to remove must be computed from the hash the transaction
replaces (``WATCH``), not from a copy read earlier.
"""

from __future__ import annotations

import apache_beam as beam

from pipelines.domain import user_cache as U
from pipelines.io.redis_store import RedisClient, RedisConfig
from pipelines.io.user_api import UserApi, UserApiUnavailable
from pipelines.metrics import counter
from pipelines.options.user_cache import CacheSettings
from pipelines.transforms.failures import FAILED_TAG, fail, raise_outage

UPDATED_TAG = "updated"


class _Reader:
    """``domain.user_cache.UserReader`` over the API client: answers interpreted by the rules."""

    def __init__(self, api: UserApi, api_errors: tuple[str, ...]):
        self.api, self.api_errors = api, api_errors

    def read_user(self, user_id: str) -> tuple[str, dict | None]:
        r = self.api.read_user(user_id)
        return U.read_outcome(r.status, r.body, self.api_errors)

    def categories(self, framework_id: str) -> list[str]:
        return self.api.categories(framework_id)


def _write(redis: RedisClient, u: U.Update, removable: tuple[str, ...], expiry_secs: int | None) -> None:
    key = f"{U.KEY_PREFIX}{u.user_id}"
    if u.delete:
        redis.call(lambda c: c.delete(key), "user cache delete")
        return
    values = U.stringify(u.fields)

    def txn(pipe):
        # WATCH key (redis-py's transaction helper retries if it changes before EXEC), so the
        # stale fields are computed from the hash the MULTI/EXEC replaces: readers never see a
        # half-cleaned hash and two writers of one user cannot interleave.
        existing = pipe.hgetall(key) if u.regd else {}
        drop = U.stale_fields({k.decode(): v.decode() for k, v in existing.items()}, values,
                              removable) if u.regd else []
        pipe.multi()
        if drop:
            pipe.hdel(key, *drop)
        pipe.hset(key, mapping=values)
        if expiry_secs:
            pipe.expire(key, expiry_secs)

    redis.call(lambda c: c.transaction(txn, key), "user cache write")


class _UpdateFn(beam.DoFn):
    def __init__(self, job_name: str, s: CacheSettings, redis_cfg: RedisConfig, refresh: bool):
        self.job_name, self.s, self.redis_cfg, self.refresh = job_name, s, redis_cfg, refresh
        self.skipped = counter(job_name, "skipped-message-count")
        self.success = counter(job_name, "success-message-count")
        self.cache_hit = counter(job_name, "user-cache-hit")
        self.api_ok = counter(job_name, "api-read-success-count")
        self.api_miss = counter(job_name, "api-read-miss-count")
        self.deleted = counter(job_name, "user-cache-deleted-count")
        self.failed = counter(job_name, "failed-message-count")
        self.refreshed = counter(job_name, "refresh-user-count")

    def setup(self):
        s = self.s
        self.api = UserApi(s.user_read_url, s.framework_read_url, s.read_fields, s.http_timeout_secs,
                           s.http_retries).__enter__()
        self.reader = _Reader(self.api, s.rules.read_api_errors)
        self.redis = RedisClient(self.redis_cfg)

    def process(self, item):
        if self.refresh:
            self.refreshed.inc()
        try:
            if self.refresh:
                update, api = U.plan_refresh(item, self.reader)
            else:
                update, api = U.plan_event(item, self.s.rules, self.reader)
        except U.Skip:
            self.skipped.inc()
            return
        except (U.UserReadFailed, UserApiUnavailable) as e:
            self.api_miss.inc()
            self.failed.inc()
            yield self._fail(item, str(e), "user-read")
            return
        except Exception as e:  # noqa: BLE001 - unexpected data never stops the job
            self.failed.inc()
            yield self._fail(item, f"{type(e).__name__}: {e}", "process")
            return
        if api == "ok":
            self.api_ok.inc()
        elif api is not None:
            self.api_miss.inc()
        if update is None:
            self.skipped.inc()
            return
        try:
            _write(self.redis, update, self.s.rules.removable_fields, self.s.key_expiry_secs)
        except Exception as e:  # noqa: BLE001 - Redis down after retries
            raise_outage(e, self.s.dead_letter_outages)
            self.failed.inc()
            yield self._fail(item, f"user cache write failed: {e}", "write")
            return
        if update.delete:
            self.deleted.inc()
        else:
            self.success.inc()
            self.cache_hit.inc()
        yield update.user_id

    def _fail(self, item, reason: str, stage: str):
        event = item if isinstance(item, dict) else {"object": {"id": item, "type": "User"},
                                                     "edata": {"state": "Refresh"}}
        return fail(self.job_name, reason, event, stage=stage)

    def teardown(self):
        self.api.__exit__(None, None, None)
        self.redis.close()


class UpdateUserCache(beam.PTransform):
    """``updated, failed = events | UpdateUserCache(job_name, settings, redis_cfg)``.

    ``events`` are user AUDIT events (non-user events are counted as skipped); with
    ``refresh=True`` the input is user ids, each re-read from the user API and rewritten (an
    unknown user's hash is deleted, a blocked one left as it is). ``updated`` holds the ids whose
    hash was written or deleted; ``failed`` the failed-topic records.
    """

    def __init__(self, job_name: str, settings: CacheSettings, redis_cfg: RedisConfig, refresh: bool = False):
        super().__init__()
        self.job_name, self.settings, self.redis_cfg, self.refresh = job_name, settings, redis_cfg, refresh

    def expand(self, items):
        out = items | "Update" >> beam.ParDo(
            _UpdateFn(self.job_name, self.settings, self.redis_cfg, self.refresh)).with_outputs(
            FAILED_TAG, main=UPDATED_TAG)
        return out[UPDATED_TAG], out[FAILED_TAG]
