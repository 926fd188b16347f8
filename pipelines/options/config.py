"""Reference-style HOCON ``--config FILE`` support, as pure functions (no Beam).

Operators already have a ``.conf`` file for every reference Flink job (keys like
``kafka.input.topic``, ``lms-cassandra.keyspace``, ``redis.database.relationCache.id``).
This module loads such a file and turns it into ordinary ``--dest=value`` flags, so
one mechanism (argparse, inside Beam's ``PipelineOptions``) handles options whether
they come from the file or from the command line.

Precedence rule: the flags from the file go *before* the command-line flags. argparse
keeps the last value it sees for an option, so an explicit command-line flag always
overrides the file, and the file overrides the option's default. ``parse_job_options``
(``options/cli.py``) also drops the file flags the command line overrides before anything
parses them, so a flag can correct a bad value in a shared file.

Reference tuning keys lern-beam does not apply as such (per-operator parallelism, Jedis pool
settings, the state backend, Flink's task keys off FlinkRunner) are listed once, in
:data:`TUNING_KEYS`; an operator who sets one gets one warning naming it and why.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from pyhocon import ConfigFactory, ConfigTree
from pyhocon.exceptions import ConfigException

_LOG = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration the job cannot start with (bad file, bad value, clashing keys). The
    message names the key and where it came from; a job's ``main`` prints it without a traceback."""

CONFIG_FLAGS = ("--config", "--config.file.path")
"""Spellings of the config-file flag; the second is the reference's own flag name."""

ALIASES: tuple[tuple[str, str], ...] = (
    # dp-core (release-5.3.0) read separate producer/consumer broker lists and the
    # assessment-aggregator deployment template still sets them (spec §0). The consumer
    # spelling is listed first: reading is what every job does.
    ("kafka.consumer.broker-servers", "kafka.broker-servers"),
    ("kafka.producer.broker-servers", "kafka.broker-servers"),
    # The assessment-aggregator docs name its failed topic kafka.output.failed.topic
    # while the job reads kafka.failed.topic (spec §2.10).
    ("kafka.output.failed.topic", "kafka.failed.topic"),
    # The assessment-aggregator docs misspell the activity table key (spec §2.10).
    ("lms-cassandra.activityytable", "lms-cassandra.activitytable"),
)
"""(alias, canonical) pairs. An alias fills its canonical key only when the canonical
key is absent from the file; the alias key itself is kept (it may be a real key of
another job, e.g. merge-user-courses reads kafka.output.failed.topic). When several
aliases target one key, the first one present in this table wins."""

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def option_dest(key: str) -> str:
    """The one naming rule from a reference config key to a Beam option dest.

    Lower-case, then every run of characters other than ``a-z0-9`` becomes ``_``
    (leading/trailing ones are dropped), e.g. ``lms-cassandra.keyspace`` ->
    ``lms_cassandra_keyspace``, ``redis.database.relationCache.id`` ->
    ``redis_database_relationcache_id``. Being lossy is deliberate: it gives every
    reference key exactly one flag name that is a valid Python identifier.
    """
    return _NON_ALNUM.sub("_", key.lower()).strip("_")


# ---------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------

def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turns ``{"a.b": 1}`` into ``{"a": {"b": 1}}`` for building a fallback tree."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return root


def _leaf_paths(tree: ConfigTree, prefix: tuple[str, ...] = ()) -> Iterable[tuple[str, ...]]:
    """Paths (as key tuples) of every non-object value written in an unresolved tree."""
    for key, value in tree.items():
        path = (*prefix, key.strip('"'))
        if isinstance(value, ConfigTree):
            yield from _leaf_paths(value, path)
        else:
            yield path


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, child in value.items():
            _flatten(child, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def load_conf(path: str | os.PathLike[str], fallback: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Loads a HOCON file into a flat ``{dotted.key: value}`` dict, aliases applied.

    * ``include "x.conf"`` / ``include file("x.conf")`` resolve relative to the file;
      a missing include is skipped with a warning, as HOCON specifies (the reference's
      packaged confs include ``base-config.conf`` from the classpath, which an operator
      may not have next to the file).
    * Substitutions (``${job.env}".telemetry.assess"``) resolve against the file, then
      ``fallback`` (flat dotted keys; callers pass the reference defaults so
      ``${job.env}`` still resolves without base-config.conf), then environment
      variables, mirroring the reference's ``ConfigFactory.systemEnvironment()``
      fallback. ``${?VAR}`` that resolves nowhere drops the key.
    * Only keys written in the file (or its includes) are returned: fallback values
      must not come back as if the operator had set them.
    """
    path = os.fspath(path)
    try:
        raw = ConfigFactory.parse_file(path, resolve=False)
        resolved = raw.with_fallback(ConfigFactory.from_dict(_nest(fallback or {})), resolve=True)
    except (ConfigException, OSError) as exc:
        raise ConfigError(f"cannot load config file {path!r}: {exc}") from exc
    plain = resolved.as_plain_ordered_dict()
    flat: dict[str, Any] = {}
    for keys in _leaf_paths(raw):
        node: Any = plain
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                break
            node = node[key]
        else:
            _flatten(node, ".".join(keys), flat)
    return apply_aliases(flat)


def apply_aliases(conf: Mapping[str, Any]) -> dict[str, Any]:
    """Returns a copy of ``conf`` where each absent canonical key is filled from its alias."""
    out = dict(conf)
    filled_by: dict[str, str] = {}
    for alias, canonical in ALIASES:
        if alias not in conf:
            continue
        if canonical not in conf and canonical not in filled_by:
            out[canonical] = conf[alias]
            filled_by[canonical] = alias
        elif canonical in filled_by and conf[alias] != out[canonical]:
            _LOG.warning("config: %s=%r ignored, %s already set from %s=%r",
                         alias, conf[alias], canonical, filled_by[canonical], out[canonical])
    return out


# ---------------------------------------------------------------------------------
# Conf -> argv
# ---------------------------------------------------------------------------------

def render_value(value: Any) -> str:
    """How a conf value is written as a flag value: HOCON booleans as ``true``/``false``
    (what the bool options parse), lists and objects as JSON, anything else as ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, Mapping)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class ConfigArgs(NamedTuple):
    """Result of :func:`config_to_argv`; unpacks as ``argv, unknown``."""

    argv: list[str]
    unknown: list[str]


def _unflatten_under(conf: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return _nest({k[len(prefix) + 1:]: v for k, v in conf.items() if k.startswith(prefix + ".")})


def config_to_argv(conf: Mapping[str, Any], known_dests: Iterable[str]) -> ConfigArgs:
    """Turns a flat conf into ``--dest=value`` flags for the dests a job knows.

    Keys whose dest is unknown are returned in ``unknown`` (sorted) for the caller to
    log at debug level: an operator's full reference .conf has many keys a given job
    does not use, and that must not be an error. ``null`` values are skipped (treated
    as unset). A known dest that names an *object* in the conf (e.g.
    ``schema.supportedVersion``) gets the whole object as JSON. Two different keys
    that map to the same dest with different values are an error, since silently
    picking one would hide a misconfiguration.
    """
    known = set(known_dests)
    values: dict[str, tuple[str, Any]] = {}
    used: set[str] = set()

    def put(dest: str, key: str, value: Any) -> None:
        if dest in values and values[dest][1] != value:
            raise ConfigError(
                f"config keys {values[dest][0]!r} and {key!r} both set option --{dest} "
                f"({values[dest][1]!r} vs {value!r})")
        values.setdefault(dest, (key, value))

    for key, value in conf.items():
        dest = option_dest(key)
        if dest in known:
            used.add(key)
            if value is not None:
                put(dest, key, value)
    # Known dests naming an object: collect its leaves back into a dict.
    for key in conf:
        parts = key.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            dest = option_dest(prefix)
            if dest in known and dest not in values:
                put(dest, prefix, _unflatten_under(conf, prefix))
            if dest in known and values.get(dest, ("",))[0] == prefix:
                used.add(key)
    argv = [f"--{dest}={render_value(value)}" for dest, (_, value) in sorted(values.items())]
    return ConfigArgs(argv, sorted(set(conf) - used))


# ---------------------------------------------------------------------------------
# argv handling
# ---------------------------------------------------------------------------------

def find_config_path(argv: Sequence[str]) -> str | None:
    """The file named by the last ``--config FILE`` / ``--config=FILE`` (or the
    reference's ``--config.file.path``) in ``argv``; ``None`` when absent. Parsing stops
    at ``--`` like argparse does."""
    found: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name in CONFIG_FLAGS:
            if eq:
                found = value
            elif i + 1 < len(argv):
                found = argv[i + 1]
                i += 1
            else:
                raise ConfigError(f"{name} needs a file path")
        i += 1
    return found


def with_config(argv: Sequence[str], parser_dests: Iterable[str],
                fallback: Mapping[str, Any] | None = None) -> list[str]:
    """Returns ``argv`` with the flags from its ``--config`` file prepended.

    Prepending is the precedence rule: argparse keeps the last occurrence, so explicit
    command-line flags override the file. ``parser_dests`` are the dests the job's
    option groups define; other keys in the file are logged at debug level and ignored.
    ``fallback`` is passed to :func:`load_conf` for substitutions. ``argv`` is returned
    unchanged (as a new list) when it names no config file.
    """
    path = find_config_path(argv)
    if path is None:
        return list(argv)
    _, flags = read_config(path, parser_dests, fallback)
    _LOG.info("config %s: %d options set from file", path, len(flags))
    return [*flags, *argv]


def read_config(path: str, parser_dests: Iterable[str],
                fallback: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The file's keys (flat, all of them) and the ``--dest=value`` flags they set for
    ``parser_dests``; keys no dest reads are logged at debug level (a full reference .conf has
    many keys a given job does not use)."""
    conf = load_conf(path, fallback)
    flags, unknown = config_to_argv(conf, parser_dests)
    if unknown:
        _LOG.debug("config %s: %d keys not used by this job: %s", path, len(unknown), ", ".join(unknown))
    return conf, flags


def flag_names(argv: Sequence[str]) -> set[str]:
    """Names of the ``--name`` / ``--name=value`` flags in ``argv`` before any ``--``.

    Every lern-beam option is spelled ``--<dest>``, so for them this is the set of dests the
    command line sets (the Beam parser that reads them disallows abbreviations)."""
    names: set[str] = set()
    for arg in argv:
        if arg == "--":
            break
        if arg.startswith("--"):
            names.add(arg[2:].partition("=")[0])
    return names


# ---------------------------------------------------------------------------------
# Reference tuning keys lern-beam does not apply itself
# ---------------------------------------------------------------------------------

class TuningKey(NamedTuple):
    """A reference tuning key (or an fnmatch pattern of keys) and what becomes of it."""

    pattern: str
    on_flink: str | None
    """What ``pipelines.runner`` turns the key into on FlinkRunner; None when nothing does."""
    why: str
    """Why the key changes nothing (off Flink, for keys with ``on_flink``)."""


_ONE_PARALLELISM = ("a Beam pipeline has one parallelism (task.parallelism, FlinkRunner --parallelism) "
                    "and every step runs at it")
_CHECKPOINT_STORAGE = ("checkpoints go where the Flink cluster keeps them: --flink_checkpoints_dir "
                       "(state.checkpoints.dir)")

TUNING_KEYS: tuple[TuningKey, ...] = (
    TuningKey("task.parallelism", "--parallelism", "only FlinkRunner runs steps in parallel"),
    TuningKey("task.checkpointing.interval", "--checkpointing_interval",
              "only FlinkRunner checkpoints (offsets are committed on checkpoints)"),
    TuningKey("task.checkpointing.pause.between.seconds", "--min_pause_between_checkpoints",
              "only FlinkRunner checkpoints"),
    TuningKey("task.checkpointing.timeout", "--checkpoint_timeout_millis", "only FlinkRunner checkpoints"),
    TuningKey("task.checkpointing.compressed", "execution.checkpointing.snapshot-compression (session cluster)",
              "only FlinkRunner checkpoints"),
    TuningKey("task.restart-strategy.attempts", "a fixed-delay restart strategy (session cluster)",
              "only a Flink cluster restarts a failed job"),
    TuningKey("task.restart-strategy.delay", "a fixed-delay restart strategy (session cluster)",
              "only a Flink cluster restarts a failed job"),
    TuningKey("task.consumer.parallelism", None, _ONE_PARALLELISM),
    TuningKey("task.*.parallelism", None, _ONE_PARALLELISM),
    TuningKey("threshold.batch.read.interval", None,
              "a partial batch is flushed after 1 s in streaming and at the end of the input in batch "
              "(on a Flink cluster it only sets the default --rewind_ms)"),
    TuningKey("threshold.batch.write.size", None,
              "the jobs size their Cassandra write batches themselves (by statements, not rows)"),
    TuningKey("lms-cassandra.isMultiDCEnabled", None,
              "the Cassandra driver always routes token-aware to the local data centre "
              "(DCAwareRoundRobinPolicy), what true selects in the reference"),
    TuningKey("redis.connection.*", None,
              "Jedis pool settings; each worker holds one redis-py client with its own connection pool"),
    TuningKey("job.enable.distributed.checkpointing", None, _CHECKPOINT_STORAGE),
    TuningKey("job.statebackend.*", None, _CHECKPOINT_STORAGE),
)
"""The ONE list of reference tuning keys lern-beam accepts but does not apply as such. Keys with
``on_flink`` are mapped by ``pipelines.runner.runner_defaults`` on FlinkRunner (which names what
it cannot apply there); elsewhere they change nothing. Matched against a key in order, first
match wins (so ``task.parallelism`` is not a per-operator ``task.*.parallelism``)."""

_warned: set[str] = set()


def tuning_key(key: str) -> TuningKey | None:
    """The entry of :data:`TUNING_KEYS` a reference key falls under, if any."""
    for entry in TUNING_KEYS:
        if fnmatch.fnmatchcase(key, entry.pattern):
            return entry
    return None


def tuning_key_warnings(keys: Mapping[str, Any], flink: bool, parallelism: Any = None) -> dict[str, str]:
    """key -> why it is ignored, for the reference tuning keys in ``keys`` (the ones the operator
    set) that change nothing on this run.

    On FlinkRunner the keys it maps are left to ``pipelines.runner`` (it applies them, or says
    which it cannot apply). A parallelism key equal to ``parallelism`` (task.parallelism) is not
    reported: the step runs at that parallelism anyway.
    """
    out: dict[str, str] = {}
    for key, value in keys.items():
        entry = tuning_key(key)
        if entry is None or value is None:
            continue
        if entry.on_flink:
            if not flink:
                out[key] = f"{entry.why}; on FlinkRunner it becomes {entry.on_flink}"
            continue
        if key.endswith(".parallelism") and (str(value) == str(parallelism)
                                             or flink and key == "task.consumer.parallelism"):
            continue  # the step runs at that parallelism anyway / the runner warns about it on Flink
        out[key] = entry.why
    return out


def warn_tuning_keys(keys: Mapping[str, Any], flink: bool, parallelism: Any = None) -> list[str]:
    """Logs :func:`tuning_key_warnings` at WARNING, once per key per process (a job parses its
    options more than once), keys ignored for the same reason on one line; returns the lines."""
    by_reason: dict[str, list[str]] = {}
    for key, why in tuning_key_warnings(keys, flink, parallelism).items():
        if key not in _warned:
            _warned.add(key)
            by_reason.setdefault(why, []).append(f"{key}={render_value(keys[key])}")
    logged = []
    for why, settings in by_reason.items():
        message = f"config: {', '.join(settings)} {'is' if len(settings) == 1 else 'are'} ignored: {why}"
        _LOG.warning("%s", message)
        logged.append(message)
    return logged
