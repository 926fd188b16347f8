"""pipelines.runner: the flags a job gets for each kind of Flink, and which snapshot a resume picks."""

from __future__ import annotations

import os
import time

from pipelines import activity, job, runner


def flags(*argv: str) -> list[str]:
    opts = job.job_options(list(argv), activity.defaults)
    return runner.runner_defaults(opts, list(argv), job.bounded(opts))


def test_local_mini_cluster_keeps_loopback_and_maps_the_reference_checkpoint_keys():
    got = flags("--runner=FlinkRunner", "--flink_master=[local]", "--task_checkpointing_interval=2000")
    assert "--streaming" in got and "--environment_type=LOOPBACK" in got
    assert "--checkpointing_interval=2000" in got
    assert "--min_pause_between_checkpoints=2000" in got, "the 30 s reference pause is capped at the interval"
    assert "--checkpoint_timeout_millis=600000" in got and "--parallelism=1" in got
    assert not any(f.startswith("--runner=") for f in got)


def test_cluster_submission_uses_process_workers_and_retained_checkpoints(tmp_path):
    got = flags("--runner=FlinkRunner", "--flink_master=localhost:8081", "--kafka_groupid=g1",
                f"--flink_checkpoints_dir={tmp_path}", f"--flink_savepoints_dir={tmp_path}", "--resume=never")
    assert "--runner=pipelines.runner.ClusterFlinkRunner" in got
    assert "--flink_submit_uber_jar" in got and f"--flink_job_server_jar={runner.CLUSTER_SUBMIT_JAR}" in got
    assert "--environment_type=PROCESS" in got
    assert any(f.startswith("--environment_config=") and str(runner.BOOT) in f for f in got)
    assert "--job_name=g1" in got
    assert "--externalized_checkpoints_enabled=true" in got


def test_bounded_read_gets_no_checkpointing_and_operator_flags_win():
    got = flags("--runner=FlinkRunner", "--flink_master=localhost:8081", "--max_num_records=5",
                "--environment_type=EXTERNAL", "--job_name=mine")
    assert not any(f.startswith(("--checkpointing_interval", "--externalized")) for f in got)
    assert not any(f.startswith(("--environment_type", "--job_name")) for f in got)


def test_job_config_maps_restart_strategy_and_compression():
    conf = runner.flink_job_config({"job_name": "j", "task_checkpointing_compressed": True,
                                    "task_restart_strategy_attempts": 3, "task_restart_strategy_delay": 30000}, True)
    assert conf["restart-strategy.type"] == "fixed-delay"
    assert conf["restart-strategy.fixed-delay.attempts"] == "3"
    assert conf["restart-strategy.fixed-delay.delay"] == "30000 ms"
    assert conf["execution.checkpointing.snapshot-compression"] == "true"
    assert conf["state.checkpoints.dir"].endswith("/checkpoints/j")


def test_latest_snapshot_is_the_newest_complete_checkpoint_or_savepoint(tmp_path):
    cps, sps = tmp_path / "cp", tmp_path / "sp"
    assert runner.latest_snapshot("j", cps, sps) is None
    old = cps / "j" / "job1" / "chk-3"
    old.mkdir(parents=True)
    (old / "_metadata").write_bytes(b"x")
    (cps / "j" / "job1" / "chk-4").mkdir()  # in progress: no _metadata yet
    assert runner.latest_snapshot("j", cps, sps) == old
    sp = sps / "j" / "savepoint-abc"
    sp.mkdir(parents=True)
    (sp / "_metadata").write_bytes(b"x")
    later = time.time() + 5
    os.utime(sp / "_metadata", (later, later))
    assert runner.latest_snapshot("j", cps, sps) == sp
