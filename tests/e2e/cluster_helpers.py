"""The stack's Flink session cluster from a test: its REST API, its processes, and a streaming job
submitted to it the way an operator does (the job's console script with ``--flink_master``).

Crash tests kill real processes: ``kill_taskmanager`` sends SIGKILL to the TaskManager's process
group (the JVM and the Python SDK workers it started), as a lost machine or container would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipelines import runner

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STACK_PY = ROOT / "local" / "stack.py"
RUN = runner.STACK / "run"
MASTER = runner.DEFAULT_CLUSTER


def rest(path: str, timeout: float = 5):
    with urllib.request.urlopen(f"http://{MASTER}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def cluster_up() -> bool:
    try:
        return bool(rest("/overview", timeout=2).get("taskmanagers"))
    except Exception:  # noqa: BLE001
        return False


def stack(*args: str, timeout: float = 300) -> None:
    """``local/stack.py`` as ``make up`` runs it (e.g. ``stack("up", "flink-taskmanager")``)."""
    subprocess.run([sys.executable, str(STACK_PY), *args], check=True, timeout=timeout,
                   stdout=subprocess.DEVNULL)


def pid_of(server: str) -> int:
    return int((RUN / f"{server}.pid").read_text())


def kill9(server: str) -> None:
    """SIGKILL to a stack server's whole process group (its JVM and any worker it started)."""
    os.killpg(pid_of(server), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid_of(server), 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"{server} still alive after SIGKILL")


def jobs_named(name: str) -> list[dict]:
    return [j for j in rest("/jobs/overview")["jobs"] if j["name"] == name]


def running_job(name: str, timeout: float = 120) -> dict:
    """The job named ``name`` once its tasks all run (source included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for j in jobs_named(name):
            if j["state"] == "RUNNING":
                detail = rest(f"/jobs/{j['jid']}")
                if all(v["status"] == "RUNNING" for v in detail["vertices"]):
                    return j
        time.sleep(0.5)
    raise AssertionError(f"job {name} not running within {timeout}s: {jobs_named(name)}")


def completed_checkpoints(jid: str) -> int:
    try:
        return rest(f"/jobs/{jid}/checkpoints")["counts"]["completed"]
    except Exception:  # noqa: BLE001 - a restarting job may not answer yet
        return 0


def wait_checkpoint_after(jid: str, count: int, timeout: float = 60) -> int:
    """Waits for a checkpoint of ``jid`` beyond ``count`` completed ones; returns the new count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = completed_checkpoints(jid)
        if n > count:
            return n
        time.sleep(0.3)
    raise AssertionError(f"no checkpoint of {jid} completed within {timeout}s")


def job_log(name: str) -> Path:
    """Where a test's job output goes: kept under .stack/logs/e2e/ (pytest prunes its tmp dirs)."""
    d = runner.STACK / "logs" / "e2e"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{name}.log"


def submit(script: str, args: list[str], log: Path) -> subprocess.Popen:
    """Starts a job's console script (``lern-activity`` ...) as its own process group."""
    return subprocess.Popen([str(VENV_BIN / script), *args], stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=ROOT)


def cancel_all(name: str) -> None:
    for j in jobs_named(name):
        if j["state"] in runner.ACTIVE_STATES:
            try:
                runner.rest(MASTER, f"/jobs/{j['jid']}?mode=cancel", method="PATCH")
            except RuntimeError:
                pass


def stop_run(name: str, proc: subprocess.Popen) -> None:
    """A run's cleanup: cancel its jobs on the cluster and kill its submitter's process group."""
    cancel_all(name)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def smoke_args(topics: dict[str, str], group: str, *extra: str) -> list[str]:
    """``lern-smoke`` on the session cluster: ``topics`` in/out/failed, read from the start under
    consumer group ``group``, plus ``extra`` flags."""
    return ["--runner=FlinkRunner", f"--flink_master={MASTER}", f"--kafka_input_topic={topics['in']}",
            f"--kafka_output_topic={topics['out']}", f"--kafka_output_failed_topic={topics['failed']}",
            f"--kafka_groupid={group}", "--kafka_auto_offset_reset=earliest", *extra]
