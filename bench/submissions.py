"""N job submissions in a row to the stack's Flink session cluster (minutes; run by hand).

    .venv/bin/python bench/submissions.py [--count 50]

Each submission used to ship the job server's whole class path (~190 MB) as user code, and the
TaskManager died of ``OutOfMemoryError: Metaspace`` at the 8th. Now the submitted jar holds one
class (the runner and Kafka IO are on the cluster's class path). The script submits a bounded
``lern-smoke`` run N times on the same topic, checks that every one finished on the same
TaskManager, that the record went out once (the later runs found its mid in the dedup store),
and prints the TaskManager's metaspace after each submission; it exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e import cluster_helpers as fl  # noqa: E402
from tests.e2e.kafka_helpers import consume_all, create_topics, produce  # noqa: E402


def metaspace_mb(tm_id: str) -> float:
    got = fl.rest(f"/taskmanagers/{tm_id}/metrics?get=Status.JVM.Memory.Metaspace.Used")
    return float(got[0]["value"]) / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=50, help="submissions (default 50)")
    args = ap.parse_args()
    if not fl.cluster_up():
        print("the stack's Flink cluster is not up: run `make up`", file=sys.stderr)
        return 2
    run_id = f"sub{uuid.uuid4().hex[:8]}"
    (tm,) = fl.rest("/taskmanagers")["taskmanagers"]
    topics = {k: f"bench.{run_id}.{k}" for k in ("in", "out", "failed")}
    create_topics(*topics.values())
    produce(topics["in"], [json.dumps({"mid": f"{run_id}-0"}).encode()])
    used = [metaspace_mb(tm["id"])]
    for n in range(args.count):
        name = f"{run_id}-{n}"
        log = fl.job_log(name)
        proc = fl.submit("lern-smoke", fl.smoke_args(topics, name, "--max_num_records=1"), log)
        if proc.wait(300) != 0:
            print(f"submission {n + 1} failed: {log.read_text()[-3000:]}", file=sys.stderr)
            return 1
        used.append(metaspace_mb(tm["id"]))
        print(f"[submissions] {n + 1:3d} ok, TaskManager metaspace {used[-1]:.1f} MiB", flush=True)
    same_tm = [t["id"] for t in fl.rest("/taskmanagers")["taskmanagers"]] == [tm["id"]]
    outputs = len(consume_all(topics["out"], expected=2, timeout=10))
    growth = used[-1] - used[1]
    print(json.dumps({"submissions": args.count, "same_taskmanager": same_tm, "outputs": outputs,
                      "metaspace_mib_first": round(used[1], 1), "metaspace_mib_last": round(used[-1], 1)}))
    # Flat: a job's own class loader holds one class. Some growth for JIT'd lambdas and caches.
    return 0 if same_tm and outputs == 1 and growth < 64 else 1


if __name__ == "__main__":
    sys.exit(main())
