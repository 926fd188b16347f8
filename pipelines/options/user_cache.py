"""user-cache-updater-2.0's options (reference keys of user-cache-updater-v2.conf) and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.domain.user_cache import REMOVABLE_FIELDS, UserFieldRules
from pipelines.io.redis_store import RedisConfig
from pipelines.options.fields import add_option, parse_bool, parse_json, ref_option
from pipelines.options.settings import dead_letter_outages, values

DEFAULT_USER_READ_API = "/api/user/v1/read/"


def string_list(value: Any) -> list[str]:
    """A conf list (JSON from the loader: ``["google","self"]``) or a comma-separated flag value.

    A ``list``, not a tuple: Beam serialises every option value into the pipeline proto as a JSON
    ``Struct``, which has no tuple, so a tuple made every run with a reference conf fail
    (``ParseError ... tuple ... user_self_signin_types``). The settings builder makes it a tuple.
    """
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        parsed = parse_json(text)
        if not isinstance(parsed, list):
            raise ValueError(f"expected a list, got {text!r}")
        return [str(v) for v in parsed]
    return [v.strip() for v in text.split(",") if v.strip()]


class UserCacheOptions(PipelineOptions):
    """user-cache-updater-2.0: user metadata derivation and the batch refresh."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        ref_option(parser, "regd.user.producer.pid", default="learner-service",
                   help="context.pdata.pid of events whose user is read from the user API.")
        ref_option(parser, "user.self.signin.types", default=["google", "self"], type=string_list,
                   help="SignupType cdata ids cached as the self-signed-in key (JSON list or a,b).")
        ref_option(parser, "user.validated.types", default=["sso"], type=string_list,
                   help="SignupType cdata ids cached as the validated key.")
        ref_option(parser, "user.self.signin.key", default="Self-Signed-In", help="usersignintype for self sign-in.")
        ref_option(parser, "user.valid.key", default="Validated", help="usersignintype for validated users.")
        ref_option(parser, "user.read.url.fields", default="locations,organisations",
                   help="fields= query of the user read call.")
        ref_option(parser, "user.read.api.error", default=["CLIENT_ERROR"], type=string_list,
                   help="responseCodes that, with params.err UOS_USRRED0006, mean a blocked/deleted user.")
        ref_option(parser, "user.redis.removeable-fields", default=list(REMOVABLE_FIELDS), type=string_list,
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


@dataclass(frozen=True)
class CacheSettings:
    rules: UserFieldRules = field(default_factory=UserFieldRules)
    read_fields: str = "locations,organisations"
    user_read_url: str = "http://localhost:9000/api/user/v1/read/"
    framework_read_url: str = "http://localhost:9000/api/framework/v1/read/"
    key_expiry_secs: int | None = None  # the reference never expires user hashes
    http_timeout_secs: float = 10.0
    http_retries: int = 3
    dead_letter_outages: bool = True  # batch; streaming waits an outage out (restart from checkpoint)


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
    o = values(opts)
    rules = UserFieldRules(
        regd_producer_pid=o["regd_user_producer_pid"],
        self_signin_types=tuple(string_list(o["user_self_signin_types"])),
        validated_types=tuple(string_list(o["user_validated_types"])),
        self_signin_key=o["user_self_signin_key"], validated_key=o["user_valid_key"],
        read_api_errors=tuple(string_list(o["user_read_api_error"])),
        removable_fields=tuple(string_list(o["user_redis_removeable_fields"])),
    )
    return CacheSettings(
        dead_letter_outages=dead_letter_outages(opts),
        rules=rules, read_fields=o["user_read_url_fields"],
        user_read_url=str(o["service_userorg_basepath"]).rstrip("/") + _read_api_path(o["user_read_api"]),
        framework_read_url=str(o["service_taxonomy_basepath"]).rstrip("/") + str(o["framework_read_api"]),
        key_expiry_secs=int(o["redis_meta_database_key_expiry_seconds"]) if o["user_cache_key_expiry_enabled"]
        else None,
        http_timeout_secs=float(o["http_timeout_secs"]), http_retries=int(o["http_retries"]),
    )


def user_store_config(opts) -> RedisConfig:
    o = values(opts)
    return RedisConfig(host=o["redis_meta_host"], port=int(o["redis_meta_port"]),
                       db=int(o["redis_meta_database_userstore_id"]))
