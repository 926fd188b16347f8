"""What every job module shares: options, running, and the end-of-run report.

A job module defines ``JOB_NAME``, its reference defaults, ``build(p, opts)`` and
``main = job.entrypoint(build, defaults)``. ``main`` parses options (``--config`` file, then
flags), runs the pipeline in batch or streaming mode and, for batch runs, prints the metric table
the reference only exposed as Flink gauges. The option -> config builders (``values``,
``event_io``, ``cassandra_config``, ``dedup_redis_config``) live in ``pipelines.options.settings``
and are re-exported here for job modules.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.metrics import FAILED_RECORDS, INPUT_RECORDS, counter_totals, format_table
from pipelines.options import ConfigError, parse_job_options, print_options
from pipelines.options.cli import wants_help
from pipelines.options.settings import cassandra_config, dedup_redis_config, event_io, values

__all__ = ["bounded", "cassandra_config", "dedup_redis_config", "entrypoint", "event_io", "run", "values"]

ROOT = Path(__file__).resolve().parent.parent
LOCAL_FLINK_JOB_SERVER_JAR = ROOT / ".stack" / "jars" / "flink-job-server.jar"
Build = Callable[[beam.Pipeline, PipelineOptions], Any]
Defaults = dict[str, Any] | Callable[[str], dict[str, Any]]


BOUNDED_SOURCES = ("input", "from_cassandra", "user_ids", "user_ids_file")
"""Options that replace the Kafka source with a bounded one (JSONL, a Cassandra scan, a list of ids)."""


def bounded(opts: PipelineOptions) -> bool:
    """A bounded run: batches flush at end of input, not on a timer, and the job is not streaming."""
    o = values(opts)
    return any(o.get(name) for name in BOUNDED_SOURCES)


def runner_defaults(opts: PipelineOptions, argv: Sequence[str]) -> list[str]:
    """Flags a job adds for its runner unless the operator gave them: ``pipelines.runner``."""
    from pipelines import runner

    return runner.runner_defaults(opts, argv, bounded(opts))


def job_defaults(argv: Sequence[str], defaults: Defaults | None,
                 extra_groups: Sequence[type[PipelineOptions]] = ()) -> dict[str, Any]:
    """A job's reference defaults. ``defaults`` may be a function of ``job.env``: the reference names
    its topics and groups ``${job.env}.<name>``, so the env (flag or conf) is read first."""
    if not callable(defaults):
        return dict(defaults or {})
    # Without the help flags: the first pass only reads the env, so that --help then shows its defaults.
    first = parse_job_options([a for a in argv if not wants_help([a])], extra_groups=extra_groups)
    return defaults(values(first)["job_env"])


def job_options(argv: Sequence[str], defaults: Defaults | None,
                extra_groups: Sequence[type[PipelineOptions]] = ()) -> PipelineOptions:
    """Parses a job's options (:func:`job_defaults`, then ``--config`` file, then flags).
    ``extra_groups`` are the job's own option groups (keys no other job reads)."""
    from pipelines import runner  # noqa: F401 - registers ClusterOptions (--resume, ...) for --help

    return parse_job_options(list(argv), extra_groups=extra_groups,
                             defaults=job_defaults(argv, defaults, extra_groups))


class TooManyFailures(Exception):
    """A batch run whose failed records exceed ``--max_failed_fraction`` of its input records."""


def failure_check(totals: dict[str, int], max_fraction: float) -> str | None:
    """The summary of a batch run that failed too much, or ``None``."""
    read, failed = totals.get(INPUT_RECORDS, 0), totals.get(FAILED_RECORDS, 0)
    if read and failed / read > max_fraction:
        return (f"{failed} of {read} input records failed ({failed / read:.1%}), more than "
                f"--max_failed_fraction={max_fraction:g}: see the failed output, fix the cause, "
                f"then re-drive it with lern-replay-failed")
    return None


def run(build: Build, argv: Sequence[str] | None, defaults: Defaults | None = None,
        extra_groups: Sequence[type[PipelineOptions]] = (), check_failures: bool = False) -> dict[str, int]:
    """Builds and runs a job; returns the final counter totals (also printed for batch runs).

    With ``check_failures`` (the command line), a batch run over more failed records than
    ``--max_failed_fraction`` of its input raises ``TooManyFailures`` after printing its table.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    opts = job_options(args, defaults, extra_groups)
    extra = runner_defaults(opts, args)
    if extra:
        opts = job_options([*args, *extra], defaults, extra_groups)
    if values(opts).get("print_options"):
        print_options(args, extra_groups, job_defaults(args, defaults, extra_groups), extra,
                      prog=getattr(build, "__module__", None))
        return {}
    p = beam.Pipeline(options=opts)
    build(p, opts)
    result = p.run()
    result.wait_until_finish()
    totals = counter_totals(result)
    streaming = opts.view_as(StandardOptions).streaming
    if not streaming or os.environ.get("LERN_PRINT_METRICS"):
        print(format_table(totals))
    if check_failures and not streaming:
        summary = failure_check(totals, float(values(opts)["max_failed_fraction"]))
        if summary:
            raise TooManyFailures(summary)
    return totals


def importable(build: Build) -> Build:
    """``build`` as defined in its importable module, not in ``__main__``.

    ``python -m pipelines.activity`` runs the module as ``__main__``; DoFns defined there would be
    pickled as ``__main__.X``, which a worker process (Flink PROCESS/EXTERNAL, DirectRunner
    multi-processing) cannot unpickle. Importing the module under its real name (``__spec__.name``)
    and taking its ``build`` makes every class pickle by that name.
    """
    if build.__module__ != "__main__":
        return build
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is None or not spec.name or spec.name == "__main__":
        return build
    return getattr(importlib.import_module(spec.name), build.__name__)


def entrypoint(build: Build, defaults: Defaults | None = None,
               extra_groups: Sequence[type[PipelineOptions]] = ()) -> Callable[[Sequence[str] | None], int]:
    """The ``main`` of a job module (and of its console script): logging, options, run."""

    def main(argv: Sequence[str] | None = None) -> int:
        setup_logging()
        try:
            run(importable(build), argv, defaults, extra_groups, check_failures=True)
        except ConfigError as exc:
            raise SystemExit(f"error: {exc}") from None  # the message names the key and file
        except TooManyFailures as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        return 0

    return main


def not_implemented(job: str, issue: str) -> Callable[[Sequence[str] | None], int]:
    """The ``main`` of a job whose issue has not landed: real options and --help, then a clear exit."""

    def main(argv: Sequence[str] | None = None) -> int:
        parse_job_options(list(sys.argv[1:] if argv is None else argv))
        print(f"{job}: not implemented yet ({issue}); see README.md status table.", file=sys.stderr)
        return 2

    return main


def setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
