"""replay-failed: re-drive a job's failed topic (or failed file) into its input, once the cause is gone.

    # batch: a failed file of a backfill -> a JSONL input for the rerun
    python -m pipelines.replay_failed --input out/local.activity.agg.failed.jsonl \\
        --to_topic local.coursebatch.job.request --output_dir replay/ [--stages read,write]
    # streaming deployment: the failed topic -> the input topic, bounded by time
    python -m pipelines.replay_failed --runner=FlinkRunner --kafka_input_topic local.activity.agg.failed \\
        --to_topic local.coursebatch.job.request --max_read_time_secs 60 [--stages read,write]

Each failed record becomes the event it was made from (``domain.failures.original_event``: the
decoration removed, an earlier one restored, null-valued keys kept). ``--stages`` keeps only the
failures of those stages (``read``/``write``: store faults; ``validate``: bad requests, which only
fail again unless the job's rules changed). A record of an unparsable payload (``raw``) cannot be
replayed and is counted (``unreplayable-record-count``), as is every record left out by
``--stages``. Replaying is safe: every job is idempotent under replay.
"""

from __future__ import annotations

import sys
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import job
from pipelines.domain.errors import Skip
from pipelines.domain.failures import original_event
from pipelines.io.events import ReadEvents, WriteEvents, WriteFailures
from pipelines.options.fields import add_option
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

JOB_NAME = "replay-failed"
VALIDATION = ValidationMetrics(failed="failed-record-count", skipped="left-out-record-count",
                               total="failed-record-read-count", valid="replayed-record-count")


class ReplayOptions(PipelineOptions):
    """replay-failed: where the replayed events go, and which failures to replay."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        add_option(parser, "to_topic", default=None,
                   help="The job's input topic the events go back to (in batch: <output_dir>/<to_topic>.jsonl).")
        add_option(parser, "stages", default=None,
                   help="Comma-separated failure stages to replay (e.g. read,write); default: all.")


def replayable(stages: frozenset[str] | None):
    """The parser: a failed record -> its original event; ``Skip`` for what is not replayed."""

    def parse(failed: dict) -> list[dict]:
        stage = (failed.get("failInfo") or {}).get("stage")
        if stages is not None and stage not in stages:
            raise Skip(f"stage {stage!r} not selected")
        event = original_event(failed)
        if event is None:
            raise Skip("an unparsable payload cannot be replayed")
        return [event]

    return parse


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    if not o.get("to_topic"):
        raise SystemExit("error: --to_topic is required (the job's input topic)")
    io = job.event_io(opts)
    stages = frozenset(s.strip() for s in o["stages"].split(",") if s.strip()) if o.get("stages") else None
    records, unparsable = p | "ReadFailed" >> ReadEvents(io, o["kafka_input_topic"], JOB_NAME, "failed-record-count")
    events, invalid = records | "Originals" >> ValidateEvents(JOB_NAME, replayable(stages), VALIDATION)
    events | "WriteInput" >> WriteEvents(io, o["to_topic"], keep_nulls=True)
    (unparsable, invalid) | "WriteUnreplayable" >> WriteFailures(io, f"{o['to_topic']}.unreplayable")


def defaults(env: str) -> dict[str, Any]:
    return {"kafka.groupId": f"{env}-replay-failed-group", "kafka.auto.offset.reset": "earliest"}


main = job.entrypoint(build, defaults, extra_groups=(ReplayOptions,))


if __name__ == "__main__":
    sys.exit(main())
