"""50 submissions in a row to the same session cluster (minutes; run by hand):

    LERN_SLOW=1 .venv/bin/python -m pytest tests/e2e/test_cluster_slow.py -s

Each submission used to ship the job server's whole class path (~190 MB) as user code, and the
TaskManager died of ``OutOfMemoryError: Metaspace`` at the 8th. Now the submitted jar holds one
class (the runner and Kafka IO are on the cluster's class path): every job must finish, on the
same TaskManager, with its metaspace flat.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.e2e import cluster_helpers as fl
from tests.e2e.kafka_helpers import consume_all, create_topics, produce

pytestmark = [pytest.mark.slow, pytest.mark.cluster,
              pytest.mark.skipif(os.environ.get("LERN_SLOW") != "1", reason="minutes long: LERN_SLOW=1 to run")]

SUBMISSIONS = int(os.environ.get("LERN_SUBMISSIONS", "50"))


def metaspace_mb(tm_id: str) -> float:
    got = fl.rest(f"/taskmanagers/{tm_id}/metrics?get=Status.JVM.Memory.Metaspace.Used")
    return float(got[0]["value"]) / 2**20


def test_fifty_submissions_in_a_row(stack, run_id):
    assert fl.cluster_up(), "run `make up`"
    (tm,) = fl.rest("/taskmanagers")["taskmanagers"]
    topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "out", "failed")}
    create_topics(*topics.values())
    produce(topics["in"], [json.dumps({"mid": f"{run_id}-0"}).encode()])
    used = [metaspace_mb(tm["id"])]
    for n in range(SUBMISSIONS):
        name = f"{run_id}-{n}"
        log = fl.job_log(name)
        proc = fl.submit("lern-smoke", [
            "--runner=FlinkRunner", f"--flink_master={fl.MASTER}", f"--kafka_input_topic={topics['in']}",
            f"--kafka_output_topic={topics['out']}", f"--kafka_output_failed_topic={topics['failed']}",
            f"--kafka_groupid={name}", "--kafka_auto_offset_reset=earliest", "--max_num_records=1",
        ], log)
        assert proc.wait(300) == 0, f"submission {n + 1}: {log.read_text()[-3000:]}"
        used.append(metaspace_mb(tm["id"]))
        print(f"[submissions] {n + 1:3d} ok, TaskManager metaspace {used[-1]:.1f} MiB", flush=True)
    assert [t["id"] for t in fl.rest("/taskmanagers")["taskmanagers"]] == [tm["id"]], "same TaskManager throughout"
    # Every job read the same record: the first wrote it out, the others found its mid in the
    # Redis dedup store (so each ran its whole pipeline, Redis and Kafka included).
    assert len(consume_all(topics["out"], expected=2, timeout=10)) == 1
    # Flat: the Beam/Kafka classes are loaded once from the class path; a job's own class loader
    # holds one class. Allow some growth for JIT'd lambdas and caches, not 190 MB per job.
    assert used[-1] - used[1] < 64, f"metaspace grew from {used[1]:.0f} to {used[-1]:.0f} MiB"
