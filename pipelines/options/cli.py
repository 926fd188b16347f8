"""Command-line entry helpers: ``parse_job_options`` and a ``--help`` that lists every group.

Beam 2.62's own ``--help`` is useless for us: ``PipelineOptions(['--help'])`` builds a
parser holding only the arguments of the class being instantiated (none, for the base
class), prints an empty usage and exits. So ``-h``/``--help`` is intercepted here and
answered from a parser that holds every registered option group, each under its own
heading, job groups first.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from pipelines.options.config import config_to_argv, find_config_path, option_dest, with_config
from pipelines.options.fields import REFERENCE_KEYS, option_defaults, reference_defaults
from pipelines.options.groups import JOB_GROUPS, JobOptions

HELP_FLAGS = ("-h", "--help")


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
    """``first`` followed by every other option class Beam would parse.

    Beam's ``get_all_options`` uses the direct subclasses of ``PipelineOptions``, keeping
    the last class per ``str(cls)``; the same rule is used here so help shows what Beam
    actually accepts.
    """
    by_name: dict[str, type[PipelineOptions]] = {}
    for cls in PipelineOptions.__subclasses__():
        by_name[str(cls)] = cls
    ordered = list(dict.fromkeys(first))
    ordered += [cls for cls in by_name.values() if cls not in ordered]
    return ordered


def build_help_parser(groups: Iterable[type[PipelineOptions]] = JOB_GROUPS,
                      prog: str | None = None,
                      defaults: Mapping[str, Any] | None = None) -> argparse.ArgumentParser:
    """A parser holding ``groups`` and then all other registered option classes, one
    argument group per class titled with its name and docstring's first line.
    ``defaults`` (a job's own, keyed by reference key or dest) replace the shown defaults."""
    parser = _BeamArgumentParser(
        prog=prog, usage="%(prog)s [options]", formatter_class=_HelpFormatter,
        description="Options may also come from a reference-style HOCON file given with --config; "
                    "command-line flags override the file.")
    for cls in registered_groups(groups):
        doc = (cls.__doc__ or "").strip().splitlines()
        group = parser.add_argument_group(cls.__name__, doc[0] if doc else None)
        cls._add_argparse_args(_GroupAdapter(parser, group))  # Beam's extension hook
    if defaults:
        parser.set_defaults(**{option_dest(key): value for key, value in defaults.items()})
    return parser


def print_help(groups: Iterable[type[PipelineOptions]] = JOB_GROUPS, file: IO[str] | None = None,
               prog: str | None = None, defaults: Mapping[str, Any] | None = None) -> None:
    """Prints help for ``groups`` and every other registered option class."""
    build_help_parser(groups, prog, defaults).print_help(file)


def wants_help(argv: Sequence[str]) -> bool:
    """True when ``argv`` asks for help before any ``--`` terminator."""
    for arg in argv:
        if arg == "--":
            return False
        if arg in HELP_FLAGS:
            return True
    return False


def job_options_class(extra_groups: Sequence[type[PipelineOptions]] = ()) -> type[PipelineOptions]:
    """One class combining the shared groups and ``extra_groups``.

    Instances expose every option as an attribute (``opts.kafka_input_topic``) without
    ``view_as``. The class subclasses the groups, not ``PipelineOptions`` directly, so
    Beam does not register it a second time.
    """
    if not extra_groups:
        return JobOptions
    bases = tuple(dict.fromkeys((*extra_groups, JobOptions)))
    return type("JobOptions", bases, {"__doc__": "All option groups of one job."})


def parse_job_options(argv: Sequence[str] | None = None,
                      extra_groups: Sequence[type[PipelineOptions]] = (),
                      defaults: Mapping[str, Any] | None = None,
                      prog: str | None = None) -> PipelineOptions:
    """Builds a job's options from ``argv`` (default ``sys.argv[1:]``).

    Precedence, lowest first: group defaults, then ``defaults`` (the job's own reference
    defaults, keyed by reference key or dest, e.g. ``{"kafka.groupId": "local-x-group"}``),
    then the ``--config`` file, then explicit flags. ``-h``/``--help`` prints every group
    and exits 0. Unknown flags are left to Beam (runner options and the like).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    groups = (*extra_groups, *JOB_GROUPS)
    if wants_help(args):
        print_help((*JOB_GROUPS, *extra_groups), prog=prog, defaults=defaults)
        raise SystemExit(0)
    dest_defaults = option_defaults(groups)
    job_flags, unknown = config_to_argv(defaults or {}, dest_defaults)
    if unknown:
        raise ValueError(f"job defaults name options no group declares: {unknown}")
    _check_values(job_flags, groups, "job defaults")
    fallback = {**reference_defaults(dest_defaults), **(defaults or {})}
    merged = with_config(args, dest_defaults, fallback)
    _check_values(merged[:len(merged) - len(args)], groups, f"config file {find_config_path(args)}")
    return job_options_class(extra_groups)([*job_flags, *merged])


def _check_values(flags: Sequence[str], groups: Iterable[type[PipelineOptions]], source: str) -> None:
    """Parses flags that did not come from the command line on their own, so a bad value
    is reported with its .conf key and file (the operator never typed that flag) instead
    of as an argparse error about a flag plus a page of usage."""
    if not flags:
        return
    parser = _BeamArgumentParser(add_help=False, exit_on_error=False)
    for group in groups:
        group._add_argparse_args(parser)  # Beam's extension hook
    try:
        parser.parse_known_args(list(flags))
    except argparse.ArgumentError as exc:
        dest = (exc.argument_name or "").split("/")[0].lstrip("-")
        key = REFERENCE_KEYS.get(dest, dest)
        raise ValueError(f"{source}: bad value for {key} ({exc.argument_name}): {exc.message}") from exc
