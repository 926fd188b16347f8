"""user-cache-updater-2.0: keeps the Redis user metadata cache in step with user AUDIT events.

    python -m pipelines.user_cache --runner=FlinkRunner [--config user-cache-updater-v2.conf]
    python -m pipelines.user_cache --input audit.jsonl --output_dir out/
    python -m pipelines.user_cache --user_ids u1,u2 [--user_ids_file ids.txt] --output_dir out/

Reads ``<env>.telemetry.audit``; for a user event (Create/Update/Delete) it derives the cached
fields from the event and, for the registered-user producer, from the user read API, and
rewrites ``user:<id>`` in Redis db ``redis-meta.database.userstore.id``. ``--user_ids`` /
``--user_ids_file`` is a batch refresh: each user is read from the API and its hash rewritten.
The reference has no output topic; events that cannot be processed go to
``kafka.output.failed.topic``. See docs/user_cache.md.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain.user_cache import user_events
from pipelines.io.events import ReadEvents, WriteFailures
from pipelines.options.user_cache import (
    DEFAULT_USER_READ_API,
    UserCacheOptions,
    refresh_ids,
    settings,
    user_store_config,
)
from pipelines.transforms.user_cache import UpdateUserCache
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

JOB_NAME = "UserCacheUpdaterJobV2"  # the reference job name: metric group and failed-event jobName
FAILED_METRIC = "failed-message-count"
VALIDATION = ValidationMetrics(failed=FAILED_METRIC, skipped="skipped-message-count",
                               total="total-audit-events-count")


def defaults(env: str) -> dict[str, Any]:
    return {
        "kafka.input.topic": f"{env}.telemetry.audit",
        "kafka.groupId": f"{env}-user-cache-updater-group",
        "kafka.output.failed.topic": f"{env}.user.cache.updater.failed",
        "user_read_api": DEFAULT_USER_READ_API,
    }


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    s, redis_cfg = settings(opts), user_store_config(opts)
    ids = refresh_ids(o)
    if ids:
        _updated, failed = (p
                            | "UserIds" >> beam.Create(ids)
                            | "Spread" >> beam.Reshuffle()
                            | "Refresh" >> UpdateUserCache(JOB_NAME, s, redis_cfg, refresh=True))
        failures = [failed]
    else:
        if o.get("user_ids") is not None or o.get("user_ids_file"):
            raise SystemExit("--user_ids/--user_ids_file selected no user id")
        events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
        user_audits, invalid = events | "Select" >> ValidateEvents(JOB_NAME, user_events, VALIDATION)
        _updated, failed = user_audits | "Update" >> UpdateUserCache(JOB_NAME, s, redis_cfg)
        failures = [parse_failed, invalid, failed]
    tuple(failures) | "Failures" >> WriteFailures(io, o["kafka_output_failed_topic"])


main = job.entrypoint(build, defaults, extra_groups=(UserCacheOptions,))


if __name__ == "__main__":
    sys.exit(main())
