"""Bounded runs in bounded memory: batches cut from bundles, outputs written a bundle at a time.

A backfill's memory must not grow with its input (issue 11). On DirectRunner that means no
``GroupByKey`` over events anywhere in a bounded job: DirectRunner keeps a grouped PCollection of
a bounded run whole. bench/backfill.py measures the memory; these tests pin the shape and the
behaviour that makes it possible.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import common_urns
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import activity, job
from pipelines.io.jsonl import WriteJsonl, concatenate
from pipelines.options.settings import bounded_grouping
from pipelines.transforms.batching import ShardedBatches, shard_of

GBK = common_urns.primitives.GROUP_BY_KEY.urn


@pytest.mark.parametrize("argv, expected", [
    ([], "bundle"),
    (["--runner=DirectRunner"], "bundle"),
    (["--direct_num_workers=2"], "shuffle"),
    (["--direct_num_workers=0"], "shuffle"),
    (["--runner=FlinkRunner"], "shuffle"),
    (["--runner=FlinkRunner", "--parallelism=2"], "shuffle"),
    (["--runner=FlinkRunner", "--parallelism=1"], "bundle"),
    (["--runner=pipelines.runner.ClusterFlinkRunner", "--parallelism=1"], "bundle"),
    (["--runner=pipelines.runner.ClusterFlinkRunner", "--parallelism=2"], "shuffle"),
    (["--runner=PrismRunner"], "shuffle"),
    (["--runner=FlinkRunner", "--parallelism=2", "--bounded_grouping=bundle"], "bundle"),
    (["--bounded_grouping=shuffle"], "shuffle"),
])
def test_bounded_grouping_cuts_from_bundles_only_where_bundles_run_one_at_a_time(argv, expected):
    assert bounded_grouping(PipelineOptions(argv)) == expected


def _events(n: int) -> list[dict]:
    return [{"user": f"u{i % 7}", "seq": i} for i in range(n)]


def _check_batches(size: int, shards: int, n: int):
    def check(batches):
        seen = Counter()
        for shard, batch in batches:
            assert 1 <= len(batch) <= size, f"batch of {len(batch)}"
            for ev in batch:
                assert shard_of(ev["user"], shards) == shard, "event in another shard's batch"
                seen[ev["seq"]] += 1
        assert seen == Counter(range(n)), "every event exactly once"
    return check


@pytest.mark.parametrize("grouping", ["bundle", "shuffle"])
def test_sharded_batches_of_a_bounded_run_hold_every_event_once_in_its_shard(grouping):
    n, size, shards = 53, 4, 3
    with TestPipeline(options=PipelineOptions([f"--bounded_grouping={grouping}"])) as p:
        batches = (p | beam.Create(_events(n))
                   | ShardedBatches(lambda e: e["user"], shards, size, max_buffering_secs=None))
        assert_that(batches, _check_batches(size, shards, n))


def test_bundle_batches_keep_arrival_order_within_a_shard():
    with TestPipeline() as p:
        batches = (p | beam.Create([_events(30)], reshuffle=False) | beam.FlatMap(lambda evs: evs)
                   | ShardedBatches(lambda e: e["user"], 2, 5, max_buffering_secs=None))
        per_shard = batches | beam.combiners.ToList()

        def in_order(all_batches):
            seqs: dict[int, list[int]] = {}
            for shard, batch in all_batches[0]:
                seqs.setdefault(shard, []).extend(ev["seq"] for ev in batch)
            for shard, got in seqs.items():
                assert got == sorted(got), f"shard {shard} out of order: {got}"
        assert_that(per_shard, in_order)


def _transform_urns(argv: list[str]) -> Counter:
    opts = job.job_options(argv, activity.defaults)
    p = beam.Pipeline(options=opts)
    activity.build(p, opts)
    proto = p.to_runner_api()
    return Counter(t.spec.urn for t in proto.components.transforms.values())


def test_a_bounded_activity_run_on_one_direct_worker_groups_nothing(tmp_path):
    (tmp_path / "in.jsonl").write_text("{}\n")
    argv = [f"--input={tmp_path / 'in.jsonl'}", f"--output_dir={tmp_path / 'out'}"]
    assert _transform_urns(argv)[GBK] == 0
    assert _transform_urns([*argv, "--bounded_grouping=shuffle"])[GBK] > 0


def test_write_jsonl_writes_one_file_and_removes_its_parts(tmp_path):
    target = str(tmp_path / "topic.jsonl")
    lines = [json.dumps({"n": i}) for i in range(250)]
    with TestPipeline() as p:
        done = p | beam.Create(lines) | WriteJsonl(target)
        assert_that(done, equal_to([target]))
    assert sorted(open(target).read().splitlines()) == sorted(lines)
    assert os.listdir(tmp_path) == ["topic.jsonl"], "parts and temporary files are gone"


def test_write_jsonl_of_nothing_is_an_empty_file(tmp_path):
    target = str(tmp_path / "empty.jsonl")
    with TestPipeline() as p:
        _ = p | beam.Create([], reshuffle=False).with_output_types(str) | WriteJsonl(target)
    assert open(target).read() == ""


def test_concatenate_joins_the_committed_parts_only_and_replaces_an_old_file(tmp_path):
    parts_dir = tmp_path / ".t.parts-x"
    parts_dir.mkdir()
    for name, body in [("a.part", "1\n2\n"), ("b.part", "3\n"), ("stray.part", "retried bundle\n")]:
        (parts_dir / name).write_text(body)
    target = tmp_path / "t.jsonl"
    target.write_text("old run\n")
    out = list(concatenate(b"", str(target), str(parts_dir),
                           [str(parts_dir / "a.part"), str(parts_dir / "b.part")]))
    assert out == [str(target)]
    assert target.read_text() == "1\n2\n3\n"
    assert not parts_dir.exists()
    assert sorted(os.listdir(tmp_path)) == ["t.jsonl"]


def test_a_flink_backfill_at_the_reference_parallelism_cuts_from_bundles(tmp_path):
    argv = [f"--input={tmp_path / 'in.jsonl'}", "--runner=FlinkRunner"]
    extra = job.runner_defaults(job.job_options(argv, activity.defaults), argv)
    assert "--parallelism=1" in extra, "task.parallelism (1 by default) becomes --parallelism"
    assert bounded_grouping(job.job_options([*argv, *extra], activity.defaults)) == "bundle"
    two = [*argv, "--task_parallelism=2"]
    extra = job.runner_defaults(job.job_options(two, activity.defaults), two)
    assert bounded_grouping(job.job_options([*two, *extra], activity.defaults)) == "shuffle"
