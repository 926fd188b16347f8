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
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import job
from pipelines.domain.failures import FAILED_TAG
from pipelines.io.events import ReadEvents, WriteEvents
from pipelines.io.redis_store import RedisConfig
from pipelines.options.fields import add_option, parse_bool, parse_json, ref_option
from pipelines.transforms.user_cache import REMOVABLE_FIELDS, CacheSettings, UpdateUserCache

JOB_NAME = "UserCacheUpdaterJobV2"  # the reference job name: metric group and failed-event jobName
FAILED_METRIC = "failed-message-count"
DEFAULT_USER_READ_API = "/api/user/v1/read/"


def defaults(env: str) -> dict[str, Any]:
    return {
        "kafka.input.topic": f"{env}.telemetry.audit",
        "kafka.groupId": f"{env}-user-cache-updater-group",
        "kafka.output.failed.topic": f"{env}.user.cache.updater.failed",
        "user_read_api": DEFAULT_USER_READ_API,
    }


def _list(value: Any) -> tuple[str, ...]:
    """A conf list (JSON from the loader) or a comma-separated flag value."""
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    text = str(value).strip()
    if text.startswith("["):
        return tuple(str(v) for v in parse_json(text))
    return tuple(v.strip() for v in text.split(",") if v.strip())


class UserCacheOptions(PipelineOptions):
    """user-cache-updater-2.0: user metadata derivation and the batch refresh."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "regd.user.producer.pid", default="learner-service",
                   help="context.pdata.pid of events whose user is read from the user API.")
        ref_option(parser, "user.self.signin.types", default=["google", "self"], type=_list,
                   help="SignupType cdata ids cached as the self-signed-in key (JSON list or a,b).")
        ref_option(parser, "user.validated.types", default=["sso"], type=_list,
                   help="SignupType cdata ids cached as the validated key.")
        ref_option(parser, "user.self.signin.key", default="Self-Signed-In", help="usersignintype for self sign-in.")
        ref_option(parser, "user.valid.key", default="Validated", help="usersignintype for validated users.")
        ref_option(parser, "user.read.url.fields", default="locations,organisations",
                   help="fields= query of the user read call.")
        ref_option(parser, "user.read.api.error", default=["CLIENT_ERROR"], type=_list,
                   help="responseCodes that, with params.err UOS_USRRED0006, mean a blocked/deleted user.")
        ref_option(parser, "user.redis.removeable-fields", default=list(REMOVABLE_FIELDS), type=_list,
                   help="Location fields removed from the hash when the profile no longer has them.")
        add_option(parser, "user_cache_key_expiry_enabled", default=False, type=parse_bool,
                   help="Expire user hashes after redis-meta.database.key.expiry.seconds. The reference reads "
                        "that key but never expires user hashes (exhaust reports need every user), so off by "
                        "default (not a reference key).")
        add_option(parser, "user_ids", default=None,
                   help="Batch refresh: comma-separated user ids to re-read from the user API and rewrite "
                        "(no Kafka input; not a reference key).")
        add_option(parser, "user_ids_file", default=None,
                   help="Batch refresh: a file with one user id per line (# comments allowed).")


def refresh_ids(o: dict) -> list[str]:
    ids: list[str] = []
    if o.get("user_ids"):
        ids += [x.strip() for x in str(o["user_ids"]).split(",")]
    if o.get("user_ids_file"):
        for line in Path(o["user_ids_file"]).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                ids.append(line)
    return list(dict.fromkeys(i for i in ids if i))


def _read_api_path(value: Any) -> str:
    """``user_read_api``, guarding a loader collision: in HOCON ``user.read.api.error`` makes
    ``user.read.api`` an object, which has the same dest; a conf without ``user_read_api`` then
    hands us that object as JSON."""
    text = str(value or "")
    return DEFAULT_USER_READ_API if not text or text.lstrip().startswith("{") else text


def settings(opts) -> CacheSettings:
    o = job.values(opts)
    return CacheSettings(
        regd_producer_pid=o["regd_user_producer_pid"],
        self_signin_types=_list(o["user_self_signin_types"]), validated_types=_list(o["user_validated_types"]),
        self_signin_key=o["user_self_signin_key"], validated_key=o["user_valid_key"],
        read_fields=o["user_read_url_fields"], read_api_errors=_list(o["user_read_api_error"]),
        removable_fields=_list(o["user_redis_removeable_fields"]),
        user_read_url=str(o["service_userorg_basepath"]).rstrip("/") + _read_api_path(o["user_read_api"]),
        framework_read_url=str(o["service_taxonomy_basepath"]).rstrip("/") + str(o["framework_read_api"]),
        key_expiry_secs=int(o["redis_meta_database_key_expiry_seconds"]) if o["user_cache_key_expiry_enabled"]
        else None,
        http_timeout_secs=float(o["http_timeout_secs"]), http_retries=int(o["http_retries"]),
    )


def user_store_config(opts) -> RedisConfig:
    o = job.values(opts)
    return RedisConfig(host=o["redis_meta_host"], port=int(o["redis_meta_port"]),
                       db=int(o["redis_meta_database_userstore_id"]))


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    io = job.event_io(opts)
    s, redis_cfg = settings(opts), user_store_config(opts)
    ids = refresh_ids(o)
    if ids:
        out = (p
               | "UserIds" >> beam.Create(ids)
               | "Spread" >> beam.Reshuffle()
               | "Refresh" >> beam.ParDo(UpdateUserCache(JOB_NAME, s, redis_cfg, refresh=True)).with_outputs(
                   FAILED_TAG, main="done"))
        failures = [out[FAILED_TAG]]
    else:
        if o.get("user_ids") is not None or o.get("user_ids_file"):
            raise SystemExit("--user_ids/--user_ids_file selected no user id")
        events, parse_failed = p | "Read" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, FAILED_METRIC)
        out = events | "Update" >> beam.ParDo(UpdateUserCache(JOB_NAME, s, redis_cfg)).with_outputs(
            FAILED_TAG, main="done")
        failures = [parse_failed, out[FAILED_TAG]]
    tuple(failures) | "Failures" >> beam.Flatten() | "WriteFailed" >> WriteEvents(io, o["kafka_output_failed_topic"])


def run(argv: list[str] | None = None) -> dict[str, int]:
    """Runs the job (a refresh with ``--user_ids``/``--user_ids_file`` is a bounded batch run)."""
    return job.run(build, argv, defaults, extra_groups=(UserCacheOptions,))


def main(argv=None) -> int:
    job.setup_logging()
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
