"""FlinkRunner glue: the flags a job gets for the Flink it runs on, submission to a session
cluster, resuming from retained checkpoints, and stopping with a savepoint.

Two kinds of Flink (``--flink_master``):

* ``[local]`` (or ``[auto]``): Beam starts its job server from ``.stack/jars/flink-job-server.jar``
  with an embedded mini-cluster, Python workers in the submitting process (``LOOPBACK``). Quick
  development runs; nothing survives the process.
* ``host:port`` (the stack's session cluster is ``localhost:8081``): the pipeline is submitted as
  a jar through Flink's REST API (``flink_submit_uber_jar``) with
  ``local/flink/ClusterJarRunner.java`` as entry class; the Beam runner and Kafka IO are on the
  cluster's class path, so a submission ships kilobytes. Python DoFns run in real worker
  processes that the TaskManager starts with Beam's boot program (``--environment_type=PROCESS``,
  ``.stack/bin/boot``) over the project venv. Checkpoints are externalized and retained, under
  ``<state.checkpoints.dir>/<job name>/``; a new submission of a job resumes from the newest
  retained checkpoint or savepoint of that job name (``--resume=auto``, the default).

Command line::

    python -m pipelines.runner stop JOB_NAME [--flink_master=localhost:8081]   # savepoint, then stop
    python -m pipelines.runner cancel JOB_NAME                                 # no savepoint
    python -m pipelines.runner list                                            # jobs on the cluster
    python -m pipelines.runner latest JOB_NAME                                 # what --resume=auto picks
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.portability import flink_runner, flink_uber_jar_job_server

from pipelines.options.settings import is_flink

_LOG = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
STACK = Path(os.environ.get("LERN_STACK_DIR", ROOT / ".stack"))
LOCAL_FLINK_JOB_SERVER_JAR = STACK / "jars" / "flink-job-server.jar"
CLUSTER_SUBMIT_JAR = STACK / "jars" / "flink-cluster-submit.jar"
BOOT = STACK / "bin" / "boot"
FLINK_DIR = STACK / "flink"
CHECKPOINTS = FLINK_DIR / "checkpoints"
SAVEPOINTS = FLINK_DIR / "savepoints"
ARTIFACTS = FLINK_DIR / "artifacts"
DEFAULT_CLUSTER = "localhost:8081"
MAGIC_MASTERS = ("[local]", "[auto]", "")
ACTIVE_STATES = ("CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "FAILING", "CANCELLING",
                 "RECONCILING", "SUSPENDED")


class ClusterOptions(PipelineOptions):
    """Running on a Flink session cluster (``--flink_master=host:port``)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument(
            "--resume", default="auto",
            help="Where a streaming job on a Flink cluster starts from. 'auto' (default): the newest "
                 "retained checkpoint or savepoint of this job name under the cluster's checkpoint and "
                 "savepoint directories, else the consumer group's committed offsets rewound by "
                 "--rewind_ms (the safety net when no checkpoint survived). 'never': committed offsets "
                 "as they are. Or a checkpoint/savepoint path.")
        parser.add_argument(
            "--rewind_ms", type=int, default=None,
            help="With --resume=auto and no checkpoint: start this many ms before the committed "
                 "offsets (default: 2 x (threshold.batch.read.interval + task.checkpointing.interval)), "
                 "to re-read what was buffered when the offsets were committed. Processing is idempotent.")
        parser.add_argument(
            "--flink_checkpoints_dir", default=str(CHECKPOINTS),
            help="Local directory of retained checkpoints (the cluster's state.checkpoints.dir); the job's "
                 "own checkpoints go to <dir>/<job name>/.")
        parser.add_argument(
            "--flink_savepoints_dir", default=str(SAVEPOINTS),
            help="Local directory of savepoints (state.savepoints.dir); `stop` writes to <dir>/<job name>/.")


# ------------------------------------------------------------------------------ runner flags


def _values(opts: PipelineOptions) -> dict[str, Any]:
    return opts.get_all_options(drop_default=False)


def cluster_master(opts: PipelineOptions) -> str | None:
    """``host:port`` of a real Flink cluster, or None for the embedded mini-cluster."""
    master = (_values(opts).get("flink_master") or "[auto]").strip()
    return None if master in MAGIC_MASTERS else master


REFERENCE_FLINK_KEYS = {
    # reference key (as option dest) -> FlinkRunner flag
    "task_parallelism": "--parallelism",
    "task_checkpointing_interval": "--checkpointing_interval",
    "task_checkpointing_pause_between_seconds": "--min_pause_between_checkpoints",
    "task_checkpointing_timeout": "--checkpoint_timeout_millis",
}


def runner_defaults(opts: PipelineOptions, argv: Sequence[str], bounded: bool) -> list[str]:
    """Flags a job adds for its runner unless the operator gave them (see the module docstring).

    Streaming unless ``bounded``. On Flink the reference's task keys become FlinkRunner options:
    ``task.parallelism`` -> ``--parallelism``, ``task.checkpointing.interval`` / ``.pause.between.seconds``
    / ``.timeout`` -> ``--checkpointing_interval`` / ``--min_pause_between_checkpoints`` /
    ``--checkpoint_timeout_millis``; on a cluster ``task.checkpointing.compressed`` and
    ``task.restart-strategy.*`` become the job's Flink configuration (snapshot compression, a
    fixed-delay restart strategy); keys that cannot take effect are named in a warning. A bounded
    Kafka read (``--max_num_records``/``--max_read_time_secs``) gets no checkpointing: with it,
    Beam's Flink runner never shuts a finished source down, so the job would never end.
    """
    o = _values(opts)
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    extra: list[str] = []
    if not bounded and "--streaming" not in given:
        extra.append("--streaming")
    if not is_flink(opts):
        return extra
    bounded_read = o.get("max_num_records") is not None or o.get("max_read_time_secs") is not None
    checkpointing = not bounded and not bounded_read
    for key, flag in REFERENCE_FLINK_KEYS.items():
        if flag in given or o.get(key) is None:
            continue
        if flag != "--parallelism" and not checkpointing:
            continue
        value = o[key]
        if key == "task_checkpointing_pause_between_seconds" and o.get("task_checkpointing_interval"):
            # A pause longer than the interval would stretch the interval the operator asked for.
            value = min(int(value), int(o["task_checkpointing_interval"]))
        extra.append(f"{flag}={value}")
    master = cluster_master(opts)
    if master is None:
        ignored = ["task.consumer.parallelism"] if o.get("task_consumer_parallelism") not in (
            None, o.get("task_parallelism")) else []
        ignored += ["task.checkpointing.compressed", "task.restart-strategy.attempts",
                    "task.restart-strategy.delay"] if checkpointing else []
        if ignored:
            _LOG.warning("FlinkRunner [local]: reference keys without effect on the embedded "
                         "mini-cluster: %s", ", ".join(ignored))
        if not given & {"--flink_job_server_jar", "--job_endpoint"} and LOCAL_FLINK_JOB_SERVER_JAR.exists():
            extra.append(f"--flink_job_server_jar={LOCAL_FLINK_JOB_SERVER_JAR}")
        if "--environment_type" not in given:
            extra.append("--environment_type=LOOPBACK")
        return extra

    if o.get("task_consumer_parallelism") not in (None, o.get("task_parallelism")):
        _LOG.warning("FlinkRunner: task.consumer.parallelism=%s ignored: a Beam pipeline has one "
                     "parallelism (task.parallelism=%s)", o["task_consumer_parallelism"], o.get("task_parallelism"))
    if "--job_endpoint" in given:
        return extra
    extra.append(f"--runner={ClusterFlinkRunner.__module__}.{ClusterFlinkRunner.__name__}")
    if "--flink_submit_uber_jar" not in given:
        extra.append("--flink_submit_uber_jar")
    if "--flink_job_server_jar" not in given:
        extra.append(f"--flink_job_server_jar={CLUSTER_SUBMIT_JAR}")
    if "--environment_type" not in given:
        extra += ["--environment_type=PROCESS", "--environment_config=" + json.dumps({"command": str(BOOT)})]
    if "--job_name" not in given:
        extra.append(f"--job_name={job_key(o)}")
    if checkpointing and "--start_read_time_ms" not in given:
        start = safety_net_start(o, argv)
        if start is not None:
            extra.append(f"--start_read_time_ms={start}")
    if checkpointing:
        if "--externalized_checkpoints_enabled" not in given:
            extra.append("--externalized_checkpoints_enabled=true")
        if "--retain_externalized_checkpoints_on_cancellation" not in given:
            extra.append("--retain_externalized_checkpoints_on_cancellation=true")
    return extra


def job_key(o: dict[str, Any]) -> str:
    """The name a streaming job has on the cluster and its checkpoints are kept under: the Beam
    ``--job_name`` if given, else the Kafka consumer group (one group per reference job)."""
    name = o.get("job_name") or o.get("kafka_groupid") or "lern-beam"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def flink_job_config(o: dict[str, Any], streaming_checkpoints: bool) -> dict[str, str]:
    """The per-job Flink configuration sent with the submission (REST ``flinkConfiguration``)."""
    conf: dict[str, str] = {}
    if streaming_checkpoints:
        name = job_key(o)
        conf["state.checkpoints.dir"] = Path(o.get("flink_checkpoints_dir") or CHECKPOINTS, name).resolve().as_uri()
        conf["state.savepoints.dir"] = Path(o.get("flink_savepoints_dir") or SAVEPOINTS, name).resolve().as_uri()
        conf["execution.checkpointing.externalized-checkpoint-retention"] = "RETAIN_ON_CANCELLATION"
        if o.get("task_checkpointing_compressed") is not None:
            conf["execution.checkpointing.snapshot-compression"] = str(bool(o["task_checkpointing_compressed"])).lower()
    if o.get("task_restart_strategy_attempts") is not None:
        conf["restart-strategy.type"] = "fixed-delay"
        conf["restart-strategy.fixed-delay.attempts"] = str(o["task_restart_strategy_attempts"])
        conf["restart-strategy.fixed-delay.delay"] = f"{int(o.get('task_restart_strategy_delay') or 0)} ms"
    return conf


def _flag(o: dict[str, Any], argv: Sequence[str], name: str) -> str | None:
    """An option of ``ClusterOptions``, also when the first parse ran before this module registered it."""
    if o.get(name) is not None:
        return str(o[name])
    for a in argv:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def safety_net_start(o: dict[str, Any], argv: Sequence[str]) -> int | None:
    """With ``--resume=auto`` and no retained checkpoint or savepoint of the job: a start time
    (epoch ms) before the consumer group's committed offsets, so that what was read and still
    buffered when they were committed is read again. None when there is a snapshot to restore,
    no committed offset, or ``--resume`` is not ``auto``."""
    if (_flag(o, argv, "resume") or "auto") != "auto":
        return None
    name = job_key({**o, "job_name": _flag(o, argv, "job_name") or o.get("job_name")})
    checkpoints = Path(_flag(o, argv, "flink_checkpoints_dir") or CHECKPOINTS)
    savepoints = Path(_flag(o, argv, "flink_savepoints_dir") or SAVEPOINTS)
    if latest_snapshot(name, checkpoints, savepoints) is not None:
        return None
    group, topic = o.get("kafka_groupid"), o.get("kafka_input_topic")
    if not group or not topic:
        return None
    last = last_committed_timestamp(str(o.get("kafka_broker_servers") or "localhost:9092"), group, topic)
    if last is None:
        return None
    rewind = _flag(o, argv, "rewind_ms")
    rewind_ms = int(rewind) if rewind is not None else 2 * (
        int(o.get("threshold_batch_read_interval") or 60) * 1000 + int(o.get("task_checkpointing_interval") or 60000))
    start = last - rewind_ms
    _LOG.warning("%s: no retained checkpoint or savepoint; starting %d ms before the committed offsets of group %s "
                 "(--start_read_time_ms=%d): what was buffered when they were committed is read again", name,
                 rewind_ms, group, start)
    print(f"[runner] {name}: no checkpoint; rewinding {rewind_ms} ms before the committed offsets", file=sys.stderr)
    return start


def last_committed_timestamp(bootstrap: str, group: str, topic: str) -> int | None:
    """The oldest timestamp, over the topic's partitions, of the last record the group committed."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        meta = c.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return None
        committed = c.committed([TopicPartition(topic, p) for p in meta.partitions], timeout=10)
        stamps = []
        for tp in committed:
            if tp.offset is None or tp.offset <= 0:
                continue
            c.assign([TopicPartition(topic, tp.partition, tp.offset - 1)])
            msg = c.poll(10)
            if msg is not None and not msg.error():
                stamps.append(msg.timestamp()[1])
        return min(stamps) if stamps else None
    finally:
        c.close()


# ----------------------------------------------------------------------- cluster submission


def rest(master: str, path: str, method: str = "GET", body: Any = None, timeout: float = 30) -> Any:
    base = master if master.startswith("http") else f"http://{master}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base.rstrip('/')}/{path.lstrip('/')}", data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"Flink REST {method} {path}: HTTP {e.code}: {e.read()[:4000]!r}") from e
    return json.loads(text) if text else None


def jobs(master: str) -> list[dict[str, Any]]:
    return rest(master, "/jobs/overview").get("jobs", [])


def active_jobs(master: str, name: str) -> list[dict[str, Any]]:
    return [j for j in jobs(master) if j.get("name") == name and j.get("state") in ACTIVE_STATES]


def latest_snapshot(name: str, checkpoints: Path = CHECKPOINTS, savepoints: Path = SAVEPOINTS) -> Path | None:
    """The newest complete retained checkpoint (``<dir>/<name>/<job id>/chk-N``) or savepoint
    (``<dir>/<name>/savepoint-*``) of a job: one whose ``_metadata`` is written."""
    found = [*Path(checkpoints, name).glob("*/chk-*/_metadata"), *Path(savepoints, name).glob("savepoint-*/_metadata")]
    if not found:
        return None
    return max(found, key=lambda m: m.stat().st_mtime).parent


class ClusterBeamJob(flink_uber_jar_job_server.FlinkBeamJob):
    """Beam's uber-jar job, run with lern-beam's entry class and the job's Flink settings."""

    def __init__(self, *args: Any, submit: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._submit = submit

    def run(self) -> None:
        self._stop_artifact_service()
        with open(self._jar, "rb") as jar_file:
            self._flink_jar_id = self.post(
                "v1/jars/upload", files={"jarfile": ("beam.jar", jar_file)})["filename"].split("/")[-1]
        self._jar_uploaded = True
        self._flink_job_id = self.post(f"v1/jars/{self._flink_jar_id}/run", json=self._submit)["jobid"]
        os.unlink(self._jar)
        # The jar is only needed to start the job: the pipeline is in the job graph now.
        self.delete_jar()
        _LOG.warning("Submitted to Flink as job %s (%s)%s", self._flink_job_id, self._submit.get("entryClass"),
                     f", restoring {self._submit['savepointPath']}" if self._submit.get("savepointPath") else "")
        print(f"[runner] flink job {self._flink_job_id}", file=sys.stderr, flush=True)

    def _get_state(self):  # noqa: ANN202 - Beam's signature
        # execution-result answers 404 while a just-submitted job is still being set up.
        try:
            return super()._get_state()
        except RuntimeError as e:
            if "404" not in str(e):
                raise
            from apache_beam.portability.api import beam_job_api_pb2
            return beam_job_api_pb2.JobState.STARTING, None


class ClusterJobServer(flink_uber_jar_job_server.FlinkUberJarJobServer):
    def __init__(self, master_url: str, options: PipelineOptions, submit: dict[str, Any]) -> None:
        super().__init__(master_url, options)
        self._submit = submit

    def create_beam_job(self, job_id, job_name, pipeline, options):  # noqa: ANN001, ANN201
        return ClusterBeamJob(self._master_url, self.executable_jar(), job_id, job_name, pipeline, options,
                              artifact_port=self._artifact_port, submit=self._submit)


class ClusterFlinkRunner(flink_runner.FlinkRunner):
    """FlinkRunner for a session cluster: see the module docstring. Chosen by ``runner_defaults``."""

    def default_job_server(self, options: PipelineOptions):  # noqa: ANN201
        o = options.get_all_options(drop_default=False, retain_unknown_options=True)
        master = flink_runner.FlinkRunner.add_http_scheme(o.get("flink_master") or DEFAULT_CLUSTER)
        options.view_as(flink_runner.pipeline_options.FlinkRunnerOptions).flink_master = "[auto]"
        streaming = bool(options.view_as(StandardOptions).streaming)
        checkpoints = streaming and int(o.get("checkpointing_interval") or -1) > 0
        name = options.view_as(flink_runner.pipeline_options.GoogleCloudOptions).job_name or job_key(o)
        o = {**o, "job_name": name}
        submit: dict[str, Any] = {
            "entryClass": "org.sunbird.lern.beam.ClusterJarRunner",
            "programArgsList": ["--artifacts-dir", str(ARTIFACTS)],
            "flinkConfiguration": flink_job_config(o, checkpoints),
        }
        if checkpoints:
            running = active_jobs(master, name)
            if running:
                raise SystemExit(f"job {name} is already {running[0]['state']} on {master} as "
                                 f"{running[0]['jid']}: stop it first (python -m pipelines.runner stop {name})")
            restore = resume_point(o, name)
            if restore:
                submit["savepointPath"] = restore
                submit["allowNonRestoredState"] = False
        return ClusterJobServer(master, options, submit)


def resume_point(o: dict[str, Any], name: str) -> str | None:
    """What ``--resume`` selects: a snapshot path to restore, or None (start from Kafka offsets)."""
    mode = o.get("resume") or "auto"
    if mode == "never":
        return None
    if mode != "auto":
        return str(Path(mode).resolve().as_uri()) if "://" not in mode else mode
    snap = latest_snapshot(name, Path(o.get("flink_checkpoints_dir") or CHECKPOINTS),
                           Path(o.get("flink_savepoints_dir") or SAVEPOINTS))
    if snap is not None:
        print(f"[runner] {name}: resuming from {snap}", file=sys.stderr, flush=True)
        return snap.resolve().as_uri()
    return None


# ------------------------------------------------------------------------------- commands


def stop(master: str, name: str, savepoint: bool = True, timeout: float = 300) -> str | None:
    """Stops every active job named ``name``; with ``savepoint`` first takes one (Flink's
    stop-with-savepoint, under ``<savepoints>/<name>/``) and returns its path."""
    found = active_jobs(master, name)
    if not found:
        raise SystemExit(f"no active job named {name} on {master}")
    location = None
    for j in found:
        jid = j["jid"]
        if not savepoint:
            rest(master, f"/jobs/{jid}?mode=cancel", method="PATCH")
            print(f"[runner] {name}: cancelled {jid}")
            continue
        target = Path(SAVEPOINTS, name).resolve().as_uri()
        trigger = rest(master, f"/jobs/{jid}/stop", method="POST",
                       body={"targetDirectory": target, "drain": False})["request-id"]
        deadline = time.monotonic() + timeout
        while True:
            st = rest(master, f"/jobs/{jid}/savepoints/{trigger}")
            if st["status"]["id"] == "COMPLETED":
                op = st.get("operation") or {}
                if "failure-cause" in op:
                    cause = op["failure-cause"].get("stack-trace", op)
                    raise SystemExit(f"stop-with-savepoint of {jid} failed: {str(cause)[:2000]}")
                location = op.get("location")
                print(f"[runner] {name}: stopped {jid} with savepoint {location}")
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"savepoint of {jid} not done within {timeout:.0f}s")
            time.sleep(0.5)
    return location


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.runner", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["stop", "cancel", "list", "latest"])
    ap.add_argument("job", nargs="?", help="job name (the Kafka group id unless --job_name was given)")
    ap.add_argument("--flink_master", default=DEFAULT_CLUSTER)
    a = ap.parse_args(argv)
    if a.command == "list":
        for j in jobs(a.flink_master):
            print(f"{j['jid']}  {j['state']:<12} {j['name']}")
        return 0
    if not a.job:
        ap.error(f"{a.command} needs a job name")
    if a.command == "latest":
        snap = latest_snapshot(a.job)
        print(snap or "")
        return 0 if snap else 1
    stop(a.flink_master, a.job, savepoint=a.command == "stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
