"""What every job module shares: options -> store configs, running, and the end-of-run report.

A job module defines ``JOB_NAME``, its reference defaults, and ``build(p, opts)``; ``main`` here
parses options (``--config`` file, then flags), runs the pipeline in batch or streaming mode and,
for batch runs, prints the metric table the reference only exposed as Flink gauges.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.io.cassandra import CassandraConfig
from pipelines.io.events import EventIO, KafkaConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.metrics import counter_totals, format_table
from pipelines.options import parse_job_options

ROOT = Path(__file__).resolve().parent.parent
LOCAL_FLINK_JOB_SERVER_JAR = ROOT / ".stack" / "jars" / "flink-job-server.jar"
Build = Callable[[beam.Pipeline, PipelineOptions], Any]
Defaults = dict[str, Any] | Callable[[str], dict[str, Any]]


def values(opts: PipelineOptions) -> dict[str, Any]:
    return opts.get_all_options(drop_default=False)


def event_io(opts: PipelineOptions) -> EventIO:
    o = values(opts)
    kafka = KafkaConfig(
        bootstrap_servers=o["kafka_broker_servers"],
        group_id=o.get("kafka_groupid"),
        auto_offset_reset=o.get("kafka_auto_offset_reset"),
        expansion_service=o["expansion_service"],
        max_num_records=o.get("max_num_records"),
        max_read_time_secs=o.get("max_read_time_secs"),
        start_read_time_ms=o.get("start_read_time_ms"),
        producer_overrides={
            "linger.ms": str(o["kafka_producer_linger_ms"]),
            "batch.size": str(o["kafka_producer_batch_size"]),
            "compression.type": str(o["kafka_producer_compression_type"]),
            "max.request.size": str(o["kafka_producer_max_request_size"]),
        },
    )
    return EventIO(kafka=kafka, input=o.get("input"), output_dir=o.get("output_dir"))


BOUNDED_SOURCES = ("input", "from_cassandra", "user_ids", "user_ids_file")
"""Options that replace the Kafka source with a bounded one (JSONL, a Cassandra scan, a list of ids)."""


def bounded(opts: PipelineOptions) -> bool:
    """A bounded run: batches flush at end of input, not on a timer, and the job is not streaming."""
    o = values(opts)
    return any(o.get(name) for name in BOUNDED_SOURCES)


def cassandra_config(opts: PipelineOptions, keyspace: str | None = None) -> CassandraConfig:
    o = values(opts)
    hosts = tuple(h.strip() for h in str(o["lms_cassandra_host"]).split(",") if h.strip())
    return CassandraConfig(hosts=hosts, port=int(o["lms_cassandra_port"]),
                           keyspace=keyspace or o["lms_cassandra_keyspace"],
                           consistency=o["lms_cassandra_consistency"])


def dedup_redis_config(opts: PipelineOptions) -> RedisConfig:
    o = values(opts)
    return RedisConfig(host=o["dedup_redis_host"], port=int(o["dedup_redis_port"]),
                       db=int(o["dedup_redis_database_index"]))


def runner_defaults(opts: PipelineOptions, argv: Sequence[str]) -> list[str]:
    """Flags a job adds for its runner unless the operator gave them.

    Streaming unless a bounded source is given (``BOUNDED_SOURCES``). On Flink: checkpoints every
    ``task.checkpointing.interval`` ms like the reference (Kafka offsets are committed when a
    checkpoint completes, so without checkpoints a restarted job would re-read everything), except
    for a bounded read (``--max_num_records``/``--max_read_time_secs``): with checkpointing on,
    Beam's Flink runner never shuts a finished source down, so the job would never end. And,
    for a local ``[local]`` mini-cluster, the stack's job server jar and LOOPBACK workers. An
    operator with a real cluster passes ``--flink_master``/``--environment_type`` (or
    ``--job_endpoint``) and these stay out of the way.
    """
    o = values(opts)
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    extra: list[str] = []
    if not bounded(opts) and "--streaming" not in given:
        extra.append("--streaming")
    if opts.view_as(StandardOptions).runner in ("FlinkRunner", "flink"):
        bounded_read = o.get("max_num_records") is not None or o.get("max_read_time_secs") is not None
        if "--checkpointing_interval" not in given and not bounded_read:
            extra.append(f"--checkpointing_interval={o['task_checkpointing_interval']}")
        if not given & {"--flink_job_server_jar", "--job_endpoint"} and LOCAL_FLINK_JOB_SERVER_JAR.exists():
            extra.append(f"--flink_job_server_jar={LOCAL_FLINK_JOB_SERVER_JAR}")
        if "--environment_type" not in given:
            extra.append("--environment_type=LOOPBACK")
    return extra


def job_options(argv: Sequence[str], defaults: Defaults | None,
                extra_groups: Sequence[type[PipelineOptions]] = ()) -> PipelineOptions:
    """Parses a job's options. ``defaults`` may be a function of ``job.env``: the reference names
    its topics and groups ``${job.env}.<name>``, so the env (flag or conf) is read first.
    ``extra_groups`` are the job's own option groups (keys no other job reads)."""
    if callable(defaults):
        # Without -h: the first pass only reads the env, so that --help then shows its defaults.
        first = parse_job_options([a for a in argv if a not in ("-h", "--help")], extra_groups=extra_groups)
        defaults = defaults(values(first)["job_env"])
    return parse_job_options(list(argv), extra_groups=extra_groups, defaults=defaults or {})


def run(build: Build, argv: Sequence[str] | None, defaults: Defaults | None = None,
        extra_groups: Sequence[type[PipelineOptions]] = ()) -> dict[str, int]:
    """Builds and runs a job; returns the final counter totals (also printed for batch runs)."""
    args = list(sys.argv[1:] if argv is None else argv)
    opts = job_options(args, defaults, extra_groups)
    extra = runner_defaults(opts, args)
    if extra:
        opts = job_options([*args, *extra], defaults, extra_groups)
    p = beam.Pipeline(options=opts)
    build(p, opts)
    result = p.run()
    result.wait_until_finish()
    totals = counter_totals(result)
    if not opts.view_as(StandardOptions).streaming or os.environ.get("LERN_PRINT_METRICS"):
        print(format_table(totals))
    return totals


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
