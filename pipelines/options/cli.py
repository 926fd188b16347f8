"""Command-line entry helpers: ``parse_job_options``, ``--help`` and ``--print_options``.

Beam 2.62's own ``--help`` is useless for us: ``PipelineOptions(['--help'])`` builds a
parser holding only the arguments of the class being instantiated (none, for the base
class), prints an empty usage and exits. So ``-h``/``--help`` is intercepted here and
answered from a parser that holds the job's option groups, each under its own heading (the
job's own groups first, then the shared ones), followed by the two Beam groups an operator of
these jobs uses (``StandardOptions``: ``--runner``, ``--streaming``; ``FlinkRunnerOptions``).
Beam's twenty other groups (Dataflow, Spark, S3, ...) made ``--help`` 1,000+ lines, so they are
listed by ``--help_all`` only, with a pointer at the end of ``--help``.

Where an option's value comes from, lowest first: the group default, the job's own reference
defaults, the ``--config`` file, the command line, then the flags ``pipelines.runner`` adds for
the runner. ``--print_options`` shows the result with its source, secrets masked.
"""

from __future__ import annotations

import argparse
import functools
import logging
import re
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, NamedTuple

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

from pipelines.options.config import (
    CONFIG_FLAGS,
    ConfigError,
    config_to_argv,
    find_config_path,
    flag_names,
    option_dest,
    read_config,
    render_value,
    warn_tuning_keys,
)
from pipelines.options.fields import (
    REFERENCE_KEYS,
    add_option,
    option_defaults,
    parse_bool,
    reference_defaults,
)
from pipelines.options.groups import JOB_GROUPS, JobOptions

_LOG = logging.getLogger(__name__)

HELP_FLAGS = ("-h", "--help")
HELP_ALL_FLAGS = ("--help_all", "--help-all")
BEAM_GROUPS_IN_HELP = ("StandardOptions", "FlinkRunnerOptions")
"""Beam's option groups ``--help`` shows after the job's (by class name); ``--help_all`` shows all."""


class CommandOptions(PipelineOptions):
    """What the command does instead of running the job."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        add_option(parser, "print_options", default=False, type=parse_bool,
                   help="Print the effective options (defaults, then the job's defaults, the --config file, "
                        "command-line flags and the runner's flags) with where each value came from, "
                        "secrets masked, and exit 0 without running the job.")
        add_option(parser, "help_all", default=False, type=parse_bool,
                   help="Show this help with every Beam option group (Dataflow, Spark, S3, ...) and exit.")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults and never wraps inside a config key such as ``lms-cassandra.host``
    (argparse breaks lines at hyphens by default)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)


class _GroupAdapter:
    """Lets a group's ``_add_argparse_args`` write into an argparse argument group.

    Beam groups call ``add_argument`` and sometimes ``add_value_provider_argument``
    (a method of Beam's parser, not of argparse groups); both are routed to the group,
    anything else to the parser.
    """

    def __init__(self, parser: _BeamArgumentParser, group: Any) -> None:
        self._parser = parser
        self._group = group

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        return self._group.add_argument(*args, **kwargs)

    def add_value_provider_argument(self, *args: Any, **kwargs: Any) -> Any:
        return _BeamArgumentParser.add_value_provider_argument(self, *args, **kwargs)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


def registered_groups(first: Iterable[type[PipelineOptions]] = ()) -> list[type[PipelineOptions]]:
    """``first`` followed by every other option class Beam would parse, lern-beam's before Beam's.

    Beam's ``get_all_options`` uses the direct subclasses of ``PipelineOptions``, keeping
    the last class per ``str(cls)``; the same rule is used here so help shows what Beam
    actually accepts.
    """
    by_name: dict[str, type[PipelineOptions]] = {}
    for cls in PipelineOptions.__subclasses__():
        by_name[str(cls)] = cls
    ordered = list(dict.fromkeys(first))
    rest = [cls for cls in by_name.values() if cls not in ordered]
    return ordered + [cls for cls in rest if not is_beam_group(cls)] + [cls for cls in rest if is_beam_group(cls)]


def is_beam_group(cls: type) -> bool:
    """An option group of Apache Beam itself (not of lern-beam)."""
    return cls.__module__.startswith("apache_beam.")


def help_groups(first: Iterable[type[PipelineOptions]], everything: bool = False
                ) -> tuple[list[type[PipelineOptions]], list[type[PipelineOptions]]]:
    """(groups ``--help`` shows, Beam groups it leaves to ``--help_all``)."""
    shown, hidden = [], []
    for cls in registered_groups((*first, CommandOptions)):
        keep = everything or not is_beam_group(cls) or cls.__name__ in BEAM_GROUPS_IN_HELP
        (shown if keep else hidden).append(cls)
    return shown, hidden


def build_help_parser(groups: Iterable[type[PipelineOptions]] = JOB_GROUPS,
                      prog: str | None = None,
                      defaults: Mapping[str, Any] | None = None,
                      everything: bool = False) -> argparse.ArgumentParser:
    """A parser holding ``groups``, every other registered lern-beam group, then Beam's
    ``StandardOptions`` and ``FlinkRunnerOptions`` (all of Beam's groups with ``everything``),
    one argument group per class titled with its name and docstring's first line.
    ``defaults`` (a job's own, keyed by reference key or dest) replace the shown defaults."""
    shown, hidden = help_groups(groups, everything)
    epilog = None
    if hidden:
        epilog = (f"Beam's {len(hidden)} other option groups ({', '.join(c.__name__ for c in hidden[:4])}, ...) "
                  "are listed by --help_all.")
    parser = _BeamArgumentParser(
        prog=prog, usage="%(prog)s [options]", formatter_class=_HelpFormatter, epilog=epilog,
        description="Options may also come from a reference-style HOCON file given with --config; "
                    "command-line flags override the file. --print_options shows the effective options "
                    "without running the job.")
    for cls in shown:
        doc = (cls.__doc__ or "").strip().splitlines()
        group = parser.add_argument_group(cls.__name__, doc[0] if doc else None)
        cls._add_argparse_args(_GroupAdapter(parser, group))  # Beam's extension hook
    if defaults:
        parser.set_defaults(**{option_dest(key): value for key, value in defaults.items()})
    return parser


def print_help(groups: Iterable[type[PipelineOptions]] = JOB_GROUPS, file: IO[str] | None = None,
               prog: str | None = None, defaults: Mapping[str, Any] | None = None,
               everything: bool = False) -> None:
    """Prints help for ``groups`` (see :func:`build_help_parser`)."""
    build_help_parser(groups, prog, defaults, everything).print_help(file)


def help_flag(argv: Sequence[str]) -> str | None:
    """The help flag ``argv`` asks for before any ``--`` terminator, if any."""
    for arg in argv:
        if arg == "--":
            return None
        if arg in HELP_FLAGS or arg.partition("=")[0] in HELP_ALL_FLAGS:
            return arg
    return None


def wants_help(argv: Sequence[str]) -> bool:
    """True when ``argv`` asks for help (``-h``, ``--help``, ``--help_all``) before any ``--``."""
    return help_flag(argv) is not None


def job_options_class(extra_groups: Sequence[type[PipelineOptions]] = ()) -> type[PipelineOptions]:
    """One class combining the shared groups, ``extra_groups`` and :class:`CommandOptions`.

    Instances expose every option as an attribute (``opts.kafka_input_topic``) without
    ``view_as``. The class subclasses the groups, not ``PipelineOptions`` directly, so
    Beam does not register it a second time.
    """
    return _combined(tuple(extra_groups))


@functools.cache
def _combined(extra_groups: tuple[type[PipelineOptions], ...]) -> type[PipelineOptions]:
    bases = tuple(dict.fromkeys((*extra_groups, JobOptions, CommandOptions)))
    return type("JobOptions", bases, {"__doc__": "All option groups of one job."})


class OptionLayers(NamedTuple):
    """A job's options as flags, by source, lowest precedence first (see :func:`option_layers`)."""

    job: list[str]
    """The job's reference defaults as ``--dest=value`` flags."""
    file: list[str]
    """The ``--config`` file's keys as flags, minus the options the command line sets."""
    command_line: list[str]
    path: str | None
    """The config file, if any."""
    conf: dict[str, Any]
    """The config file's keys (all of them, also those no option reads), flat."""

    def argv(self, runner_flags: Sequence[str] = ()) -> list[str]:
        return [*self.job, *self.file, *self.command_line, *runner_flags]


def option_layers(args: Sequence[str], groups: Sequence[type[PipelineOptions]],
                  defaults: Mapping[str, Any] | None = None) -> OptionLayers:
    """Splits where a job's options come from, and checks the values that did not come from the
    command line.

    A file value the command line overrides is dropped here, before anything parses it, so a bad
    value in a shared .conf can be corrected with a flag (``--config x.conf --redis_port=6380``);
    a bad value that is not overridden is a :class:`ConfigError` naming the key and the file.
    """
    dest_defaults = option_defaults(groups)
    job_flags, unknown = config_to_argv(defaults or {}, dest_defaults)
    if unknown:
        raise ConfigError(f"job defaults name options no group declares: {unknown}")
    _check_values(job_flags, groups, "job defaults")
    path = find_config_path(args)
    conf: dict[str, Any] = {}
    file_flags: list[str] = []
    if path is not None:
        conf, flags = read_config(path, dest_defaults, {**reference_defaults(dest_defaults), **(defaults or {})})
        given = flag_names(args)
        file_flags = [f for f in flags if f[2:].partition("=")[0] not in given]
        _LOG.info("config %s: %d options set from file (%d overridden by flags)", path, len(file_flags),
                  len(flags) - len(file_flags))
        _check_values(file_flags, groups, f"config file {path}")
    return OptionLayers(job_flags, file_flags, list(args), path, conf)


def parse_job_options(argv: Sequence[str] | None = None,
                      extra_groups: Sequence[type[PipelineOptions]] = (),
                      defaults: Mapping[str, Any] | None = None,
                      prog: str | None = None) -> PipelineOptions:
    """Builds a job's options from ``argv`` (default ``sys.argv[1:]``).

    Precedence, lowest first: group defaults, then ``defaults`` (the job's own reference
    defaults, keyed by reference key or dest, e.g. ``{"kafka.groupId": "local-x-group"}``),
    then the ``--config`` file, then explicit flags. ``-h``/``--help`` prints the job's groups
    (``--help_all``: and all of Beam's) and exits 0. Unknown flags are left to Beam (runner
    options and the like). Reference tuning keys that change nothing on this run are named in a
    warning, once per key (``config.TUNING_KEYS``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    groups = (*extra_groups, *JOB_GROUPS)
    flag = help_flag(args)
    if flag is not None:
        print_help(groups, prog=prog, defaults=defaults, everything=flag not in HELP_FLAGS)
        raise SystemExit(0)
    layers = option_layers(args, groups, defaults)
    _warn_tuning_keys(layers, parse_quietly(layers.argv(), (*groups, StandardOptions)))
    return job_options_class(extra_groups)(layers.argv())


def parse_quietly(argv: Sequence[str], groups: Iterable[type[PipelineOptions]]) -> dict[str, Any]:
    """dest -> value of ``groups``' options in ``argv``, other flags skipped without the warning
    Beam's ``get_all_options`` logs for each (runner flags only the Java side knows)."""
    return _parse(argv, groups)[0]


def _parse(argv: Sequence[str], groups: Iterable[type[PipelineOptions]],
           source: str = "command line") -> tuple[dict[str, Any], list[str]]:
    """(dest -> value, flags no group reads). A bad value is reported in one line naming the
    option, its reference key and ``source``, instead of argparse's page of usage: on the command
    line as argparse does (message on stderr, exit 2), else as a :class:`ConfigError`."""
    parser = _BeamArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    for group in groups:
        group._add_argparse_args(parser)  # Beam's extension hook
    try:
        namespace, unknown = parser.parse_known_args(list(argv))
    except argparse.ArgumentError as exc:
        dest = (exc.argument_name or "").split("/")[0].lstrip("-")
        key = REFERENCE_KEYS.get(dest, dest)
        why = "not a valid value (secret, not shown)" if is_secret(dest) else exc.message
        message = f"{source}: bad value for {key} ({exc.argument_name}): {why}"
        if source == "command line":
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(2) from None
        raise ConfigError(f"{message}; fix it there or override it with --{dest}=...") from None
    return vars(namespace), unknown


def _warn_tuning_keys(layers: OptionLayers, values: Mapping[str, Any]) -> None:
    keys: dict[str, Any] = dict(layers.conf)
    by_dest = {option_dest(key): key for key in keys}
    for dest in flag_names(layers.command_line):
        if dest in REFERENCE_KEYS and dest in values:
            keys[by_dest.get(dest, REFERENCE_KEYS[dest])] = values[dest]
    runner = str(values.get("runner") or "")
    warn_tuning_keys(keys, flink="flink" in runner.lower(), parallelism=values.get("task_parallelism"))


def _check_values(flags: Sequence[str], groups: Iterable[type[PipelineOptions]], source: str) -> None:
    """Parses flags that did not come from the command line on their own, so a bad value
    is reported with its .conf key and file (the operator never typed that flag) instead
    of as an argparse error about a flag plus a page of usage."""
    if flags:
        _parse(flags, groups, source)


# ---------------------------------------------------------------------------------
# --print_options
# ---------------------------------------------------------------------------------

_SECRET_WORDS = frozenset({"password", "passwd", "pwd", "secret", "token", "auth", "credential",
                           "credentials", "apikey"})
_SECRET_PAIRS = frozenset({("api", "key"), ("auth", "key"), ("account", "key"), ("access", "key"),
                           ("private", "key"), ("connection", "string")})
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
MASK = "****"


def is_secret(dest: str) -> bool:
    """Whether an option holds a secret, by the words of its dest: password, secret, token, auth,
    an api/auth/account/access/private key (``sms_auth_key``, ``fcm_account_key``,
    ``service_rc_rcapikey``). A key that only *names* something is not one: ``kafka_groupid``,
    ``user_valid_key``, ``redis_meta_database_key_expiry_seconds``."""
    words = option_dest(dest).split("_")
    return (any(w in _SECRET_WORDS or w.endswith(("apikey", "password")) for w in words)
            or any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False)))


def shown_value(dest: str, value: Any) -> str:
    """How ``--print_options`` shows a value: secrets as ``****`` when set, credentials in URLs
    (``scheme://user:pass@host``) masked, None as ``(unset)``."""
    if value is None:
        return "(unset)"
    if is_secret(dest) and value not in ("", [], {}):
        return MASK
    return _URL_USERINFO.sub(MASK + "@", render_value(value))


def format_options(argv: Sequence[str], groups: Sequence[type[PipelineOptions]],
                   sources: Mapping[str, str]) -> list[str]:
    """Lines of ``--print_options`` for the options ``argv`` sets: every option of ``groups`` (the
    job's), then the options of any other group that were set, lern-beam's before Beam's;
    ``--dest=value``, its source and its reference key. ``sources`` maps a dest to where its
    value came from (else "default")."""
    every_group = registered_groups((*groups, CommandOptions))
    values, unknown = _parse(argv, every_group)
    lines: list[str] = []
    seen: set[str] = set()
    for cls in every_group:
        complete = cls in groups
        rows = []
        for dest, default in option_defaults([cls]).items():
            value = values.get(dest, default)
            source = sources.get(dest, "default")
            if dest in seen or (not complete and source == "default" and value == default):
                continue
            seen.add(dest)
            flag = f"--{dest}={shown_value(dest, value)}"
            key = REFERENCE_KEYS.get(dest)
            rows.append(f"  {flag:<60} {source:<7} {key or ''}".rstrip())
        if rows:
            doc = (cls.__doc__ or "").strip().splitlines()
            lines.append(f"{cls.__name__}: {doc[0] if doc else ''}".rstrip())
            lines += rows
    others = [arg for arg in unknown if arg.startswith("--")]
    if others:
        lines.append("Other flags: no Python option group reads them; passed on to the runner as they are.")
        for arg in others:
            name, eq, value = arg[2:].partition("=")
            flag = f"--{name}={shown_value(name, value)}" if eq else arg
            lines.append(f"  {flag:<60} {sources.get(name, 'flag')}")
    return lines


def print_options(argv: Sequence[str], extra_groups: Sequence[type[PipelineOptions]] = (),
                  defaults: Mapping[str, Any] | None = None, runner_flags: Sequence[str] = (),
                  prog: str | None = None, file: IO[str] | None = None) -> None:
    """Prints the options a job would run with (``--print_options``), secrets masked.

    ``runner_flags`` are the flags ``pipelines.runner`` adds (they are effective too). The job's
    own groups come first, then the shared ones, then whatever else was set (cluster, Beam)."""
    groups = (*extra_groups, *JOB_GROUPS)
    layers = option_layers(list(argv), groups, defaults)
    sources: dict[str, str] = {}
    for label, flags in (("job", layers.job), ("file", layers.file), ("flag", layers.command_line),
                         ("runner", runner_flags)):
        for name in flag_names(flags):
            sources["config" if f"--{name}" in CONFIG_FLAGS else name] = label
    out = file or sys.stdout
    print(f"# {prog or 'job'}: effective options, secrets masked as {MASK}. Source of each value, "
          "lowest precedence first: default, job (the job's defaults), "
          f"file ({layers.path or 'no --config'}), flag, runner (added for the runner).", file=out)
    for line in format_options(layers.argv(runner_flags), groups, sources):
        print(line, file=out)
