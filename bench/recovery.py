"""Recovery time of a streaming job on the stack's Flink session cluster after a kill -9.

    .venv/bin/python bench/recovery.py [--kill taskmanager|jobmanager] [--restart-delay-ms 30000] [--rate 20]

Starts ``lern-smoke`` (Kafka -> Redis dedup -> Cassandra -> Kafka) on the cluster exactly as
README "Running a job on the cluster" does, produces ``--rate`` events per second with unique
mids, and once output flows kills with SIGKILL:

* ``taskmanager``: the TaskManager's process group (JVM and Python workers); the stack starts a
  new TaskManager at once and Flink restores the job from its latest checkpoint after the restart
  strategy's delay (``task.restart-strategy.delay``, the reference's 30 s by default);
* ``jobmanager``: the submitting process and the JobManager (the job is lost, no HA); the stack
  restarts the JobManager and the same command resubmits the job, which resumes from its newest
  retained checkpoint.

It prints the time from the kill to the end of the longest output gap after it (output flows
again), to the first output record of an event produced after the kill (new output), and to the
last missing record being caught up,
and checks that every produced event came out (duplicates are counted: the Kafka sink is
at-least-once, the job's stores are idempotent). Needs ``make up``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer  # noqa: E402

from tests.e2e import cluster_helpers as fl  # noqa: E402
from tests.e2e.kafka_helpers import BOOTSTRAP, create_topics  # noqa: E402


class Feed(threading.Thread):
    """Produces ``rate`` events/s with mids ``<run>-<n>``, recording when each was sent."""

    def __init__(self, topic: str, run: str, rate: float):
        super().__init__(daemon=True)
        self.topic, self.prefix, self.rate = topic, run, rate
        self.sent: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:  # noqa: D102
        p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 0})
        n = 0
        while not self.stop.is_set():
            mid = f"{self.prefix}-{n}"
            p.produce(self.topic, json.dumps({"mid": mid, "n": n}).encode())
            p.poll(0)
            self.sent[mid] = time.monotonic()
            n += 1
            time.sleep(1 / self.rate)
        p.flush(30)


class Watch(threading.Thread):
    """Records when each output mid first arrives and how many times."""

    def __init__(self, topic: str):
        super().__init__(daemon=True)
        self.topic = topic
        self.first: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.arrivals: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:  # noqa: D102
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"bench-{uuid.uuid4().hex}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([self.topic])
        while not self.stop.is_set():
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            now = time.monotonic()
            mid = json.loads(m.value())["mid"]
            self.first.setdefault(mid, now)
            self.count[mid] = self.count.get(mid, 0) + 1
            self.arrivals.append((now, mid))
        c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kill", choices=["taskmanager", "jobmanager"], default="taskmanager")
    ap.add_argument("--restart-delay-ms", type=int, default=30000,
                    help="task.restart-strategy.delay (reference default 30000)")
    ap.add_argument("--checkpoint-ms", type=int, default=10000, help="task.checkpointing.interval")
    ap.add_argument("--rate", type=float, default=20, help="events per second")
    ap.add_argument("--warmup", type=float, default=15, help="seconds of output before the kill")
    ap.add_argument("--after", type=float, default=30, help="seconds of feed after recovery")
    a = ap.parse_args()
    if not fl.cluster_up():
        raise SystemExit("Flink session cluster not answering on localhost:8081: run `make up`")

    run = f"rec{uuid.uuid4().hex[:8]}"
    topics = {k: f"bench.{run}.{k}" for k in ("in", "out", "failed")}
    create_topics(*topics.values())
    args = fl.smoke_args(topics, run, f"--task_checkpointing_interval={a.checkpoint_ms}",
                         f"--task_restart_strategy_delay={a.restart_delay_ms}")
    log = fl.job_log(run)
    watch, feed = Watch(topics["out"]), Feed(topics["in"], run, a.rate)
    watch.start()
    proc = fl.submit("lern-smoke", args, log)
    try:
        jid = fl.running_job(run, timeout=180)["jid"]
        feed.start()
        t = time.monotonic()
        while len(watch.first) < 5 or time.monotonic() - t < a.warmup:
            if time.monotonic() - t > 300:
                raise SystemExit(f"no output within 300 s; see {log}")
            time.sleep(0.2)
        fl.wait_checkpoint_after(jid, fl.completed_checkpoints(jid))
        kill = time.monotonic()
        if a.kill == "taskmanager":
            fl.kill9("flink-taskmanager")
            fl.stack("up", "flink-taskmanager")
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            fl.kill9("flink-jobmanager")
            fl.stack("up", "flink-jobmanager")
            while not fl.cluster_up():
                time.sleep(0.2)
            proc = fl.submit("lern-smoke", args, log)
        stack_back = time.monotonic() - kill
        while not any(feed.sent.get(m, 0) > kill for m in list(watch.first)):
            if time.monotonic() - kill > 600:
                raise SystemExit(f"no new output within 600 s; see {log}")
            time.sleep(0.1)
        new_output = min(watch.first[m] for m in list(watch.first) if feed.sent.get(m, 0) > kill) - kill
        time.sleep(a.after)
        feed.stop.set()
        feed.join()
        deadline = time.monotonic() + 120
        while set(feed.sent) - set(watch.first) and time.monotonic() < deadline:
            time.sleep(0.5)
        missing = set(feed.sent) - set(watch.first)
        caught_up = max(watch.first[m] for m in feed.sent if m in watch.first) - kill
        dupes = sum(1 for m in feed.sent if watch.count.get(m, 0) > 1)
        # The outage is the longest silence on the output after the kill (a TaskManager may still
        # emit for a few seconds after its JobManager died); recovery is the end of that silence.
        after = [kill] + sorted(ts for ts, _ in watch.arrivals if ts > kill)
        gap, resumed = max((b - a_, b) for a_, b in zip(after, after[1:], strict=False))
    finally:
        watch.stop.set()
        fl.stop_run(run, proc)
    print(f"kill -9 {a.kill}, restart delay {a.restart_delay_ms} ms, checkpoints every {a.checkpoint_ms} ms, "
          f"{a.rate:g} events/s")
    print(f"  stack process back (registered):     {stack_back:6.1f} s")
    print(f"  kill -> output again (end of the {gap:.1f} s output gap): {resumed - kill:6.1f} s")
    print(f"  kill -> first output of an event produced after the kill: {new_output:6.1f} s")
    print(f"  kill -> last record out:             {caught_up:6.1f} s")
    print(f"  events {len(feed.sent)}, missing {len(missing)}, emitted more than once {dupes}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
