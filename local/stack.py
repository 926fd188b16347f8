"""The local stack: real Kafka, Cassandra, Redis, Beam expansion service, Sunbird emulator, SMTP.

    python local/stack.py up | down | status | jars

Every server listens on 127.0.0.1 only and keeps its data and logs under ``.stack/``.
``up`` is idempotent: a server that already answers on its port is left alone (and not owned),
one that does not is started, and ``up`` returns only when every server answers and the CQL
schema and Kafka topics exist. ``down`` stops only the processes whose pid files ``up`` wrote.

Jars come from Maven Central through ``local/pom.xml`` (one profile per server) into
``.stack/jars/<profile>/``; Redis comes from Debian's ``redis-server`` package. Nothing
downloaded is committed.

This script uses only the standard library, except ``schema``/``topics``, which run under the
project venv (cassandra-driver, confluent-kafka).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / "local"
STACK = Path(os.environ.get("LERN_STACK_DIR", ROOT / ".stack"))
JARS = STACK / "jars"
LOGS = STACK / "logs"
RUN = STACK / "run"
HOST = "127.0.0.1"
VENV_PY = ROOT / ".venv" / "bin" / "python"

KAFKA_PORT, KAFKA_CONTROLLER_PORT = 9092, 9093
CASSANDRA_PORT, CASSANDRA_STORAGE_PORT = 9042, 7000
REDIS_PORT = 6379
EXPANSION_PORT = 8097
EMULATOR_PORT = 9000
SMTP_PORT, SMTP_HTTP_PORT = 2525, 2526

FLINK_REST_PORT, FLINK_RPC_PORT, FLINK_TM_RPC_PORT, FLINK_BLOB_PORT = 8081, 6123, 6122, 6124
FLINK = STACK / "flink"
FLINK_CONF = FLINK / "conf"
FLINK_CHECKPOINTS = FLINK / "checkpoints"
FLINK_SAVEPOINTS = FLINK / "savepoints"
BOOT = STACK / "bin" / "boot"
BEAM_VERSION = "2.62.0"

FLINK_JOB_SERVER_JAR = JARS / "flink-job-server.jar"
FLINK_CLUSTER_JAR = JARS / "flink-cluster-submit.jar"
EXPANSION_SERVICE_JAR = JARS / "kafka-expansion-service.jar"

# Java 17 needs these for Cassandra 5 (the list its own jvm17-server.options carries) and Flink 1.19.
JAVA17_OPENS = [
    "java.base/java.lang", "java.base/java.lang.reflect", "java.base/java.lang.module",
    "java.base/java.io", "java.base/java.nio", "java.base/java.net", "java.base/java.math",
    "java.base/java.util", "java.base/java.util.concurrent", "java.base/java.util.concurrent.atomic",
    "java.base/java.text", "java.base/java.time", "java.base/sun.nio.ch",
    "java.base/jdk.internal.loader", "java.base/jdk.internal.ref", "java.base/jdk.internal.reflect",
    "java.base/jdk.internal.math", "java.base/jdk.internal.module", "java.base/jdk.internal.util.jar",
    "jdk.management/com.sun.management.internal",
]
JAVA17_EXPORTS = [
    "java.base/jdk.internal.misc", "java.base/jdk.internal.ref", "java.base/sun.nio.ch",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi", "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server", "java.sql/java.sql", "java.base/java.lang.ref", "jdk.unsupported/sun.misc",
]


def log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for(what: str, check: Callable[[], bool], timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} while starting; see {LOGS}/")
        time.sleep(0.5)
    raise SystemExit(f"{what} did not answer within {timeout:.0f}s; see {LOGS}/")


# --------------------------------------------------------------------------------------- jars


def mvn_profile(profile: str) -> Path:
    """Copies one pom profile's jars into .stack/jars/<profile>/ once; later calls reuse them."""
    out = JARS / profile
    done = out / ".complete"
    if done.exists():
        return out
    if shutil.which("mvn") is None:
        raise SystemExit("mvn not found: install Maven (Debian package 'maven')")
    log(f"downloading {profile} jars from Maven Central (cached in ~/.m2 and {out})")
    out.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    mvn_log = LOGS / f"mvn-{profile}.log"
    with open(mvn_log, "wb") as f:
        r = subprocess.run(
            ["mvn", "-B", "-Dstyle.color=never", "-f", str(LOCAL / "pom.xml"), f"-P{profile}",
             "dependency:copy-dependencies", f"-DoutputDirectory={out}"],
            stdout=f, stderr=subprocess.STDOUT,
        )
    if r.returncode != 0:
        raise SystemExit(f"mvn could not resolve the {profile} jars; see {mvn_log}")
    done.touch()
    return out


def launcher_jar(path: Path, main_class: str, lib: Path) -> Path:
    """Writes a manifest-only jar whose Class-Path is every jar in ``lib``.

    Beam's Python FlinkRunner starts its job server with ``java -jar <jar>``; this gives it one
    jar to start although the runner arrives as ~190 separate jars. The manifest also carries
    the Java 17 ``Add-Opens`` that Flink's serializers need, since ``java -jar`` takes no flags.
    """
    jars = sorted(p for p in lib.glob("*.jar"))
    rel = [os.path.relpath(j, path.parent) for j in jars]
    lines = [
        "Manifest-Version: 1.0",
        f"Main-Class: {main_class}",
        "Class-Path: " + " ".join(rel),
        "Add-Opens: " + " ".join(JAVA17_OPENS),
        "Add-Exports: " + " ".join(JAVA17_EXPORTS),
    ]
    manifest = "".join(_wrap_manifest_line(line) for line in lines) + "\r\n"
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", manifest)
    tmp.replace(path)
    return path


def _wrap_manifest_line(line: str) -> str:
    """Manifest lines are at most 72 bytes; continuation lines start with one space."""
    data = line.encode()
    out, first = [], True
    while data:
        n = 72 if first else 71
        out.append((b"" if first else b" ") + data[:n])
        data, first = data[n:], False
    return "".join(chunk.decode() + "\r\n" for chunk in out)


def ensure_jars() -> None:
    beam = mvn_profile("beam")
    mvn_profile("kafka")
    mvn_profile("cassandra")
    mvn_profile("flink")
    launcher_jar(FLINK_JOB_SERVER_JAR, "org.apache.beam.runners.flink.FlinkJobServerDriver", beam)
    launcher_jar(EXPANSION_SERVICE_JAR, "org.apache.beam.sdk.expansion.service.ExpansionService", beam)
    submit_jar(FLINK_CLUSTER_JAR)
    ensure_boot()


def submit_jar(path: Path) -> Path:
    """The jar a pipeline is submitted in to the stack's Flink cluster (``flink_submit_uber_jar``).

    Beam's Python FlinkRunner copies this jar, adds the pipeline and its artifacts, uploads it to
    the JobManager (REST ``/jars/upload``) and runs its entry class there,
    ``local/flink/ClusterJarRunner.java`` (compiled here). The jar holds only that class: the
    runner, Kafka IO and the Java SDK harness are on the cluster's own class path
    (``.stack/jars/flink``), so a submission ships kilobytes, not ~190 MB of jars that a session
    TaskManager would load again, per job, into its metaspace.
    """
    src = LOCAL / "flink" / "ClusterJarRunner.java"
    if path.exists() and path.stat().st_mtime >= src.stat().st_mtime:
        return path
    javac = Path(java()).resolve().parent / "javac"
    if not javac.exists():
        raise SystemExit(f"javac not found next to {java()}: install a JDK 17 (openjdk-17-jdk-headless)")
    build = STACK / "build" / "cluster-jar"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    r = subprocess.run([str(javac), "-nowarn", "-cp", str(JARS / "flink" / "*"), "-d", str(build), str(src)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"javac {src} failed:\n{r.stdout}{r.stderr}")
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n"
                   "Main-Class: org.sunbird.lern.beam.ClusterJarRunner\r\n\r\n")
        for f in sorted(build.rglob("*.class")):
            z.write(f, f.relative_to(build).as_posix())
    tmp.replace(path)
    return path


GO_TOOLCHAIN = "1.22.12"  # used only when no Go >= 1.21 is installed (Debian 12 ships 1.19)


def go_exe() -> str:
    """A Go >= 1.21 (Beam 2.62's module needs it): the installed one, else Go's own toolchain module
    from the Go module proxy (what GOTOOLCHAIN=auto downloads), unpacked under .stack/go."""
    for cand in (shutil.which("go"), "/usr/local/go/bin/go"):
        if cand and Path(cand).exists():
            r = subprocess.run([cand, "env", "GOVERSION"], capture_output=True, text=True)
            ver = r.stdout.strip().removeprefix("go").split(".")
            if r.returncode == 0 and len(ver) >= 2 and (int(ver[0]), int(ver[1].split("rc")[0])) >= (1, 21):
                return cand
    import platform
    import urllib.request
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    home = STACK / "go" / f"go{GO_TOOLCHAIN}"
    go = home / "bin" / "go"
    if not go.exists():
        mod = f"v0.0.1-go{GO_TOOLCHAIN}.linux-{arch}"
        log(f"no Go >= 1.21 installed: fetching Go's toolchain module golang.org/toolchain@{mod} from the module proxy")
        proxy = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0].rstrip("/")
        zpath = STACK / "go" / f"{mod}.zip"
        zpath.parent.mkdir(parents=True, exist_ok=True)
        urllib.request.urlretrieve(f"{proxy}/golang.org/toolchain/@v/{mod}.zip", zpath)
        prefix = f"golang.org/toolchain@{mod}/"
        with zipfile.ZipFile(zpath) as z:
            for info in z.infolist():
                if not info.filename.startswith(prefix) or info.is_dir():
                    continue
                target = home / info.filename[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                if info.filename[len(prefix):].startswith(("bin/", "pkg/tool/")):
                    target.chmod(0o755)
        zpath.unlink()
    return str(go)


def ensure_boot() -> Path:
    """Beam's Python SDK boot program (the PROCESS environment's command), built from the Go module
    proxy: it is not on PyPI. The Go toolchain is a build-time requirement of the stack, like mvn."""
    if BOOT.exists():
        return BOOT
    go = go_exe()
    log(f"building Beam's Python SDK boot program {BEAM_VERSION} with go install (into {BOOT})")
    gobin = STACK / "bin" / "go-install"
    gobin.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(gobin), "CGO_ENABLED": "0", "GOTOOLCHAIN": "local",
           "GOPATH": os.environ.get("GOPATH", str(Path.home() / "go")),
           # The checksum database does not list Beam's module here (404); the module proxy serves it.
           "GONOSUMDB": "github.com/apache/beam"}
    with open(LOGS / "go-boot.log", "wb") as f:
        r = subprocess.run([go, "install", f"github.com/apache/beam/sdks/v2/python/container@v{BEAM_VERSION}"],
                           stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0:
        raise SystemExit(f"go install of Beam's boot program failed; see {LOGS / 'go-boot.log'}")
    (gobin / "container").replace(BOOT)
    return BOOT


# ------------------------------------------------------------------------------------ servers


@dataclass
class Server:
    name: str
    port: int
    start: Callable[[], subprocess.Popen]
    ready: Callable[[], bool]
    timeout: float = 120
    after: list[Callable[[], None]] = field(default_factory=list)

    @property
    def pidfile(self) -> Path:
        return RUN / f"{self.name}.pid"

    def owned_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            self.pidfile.unlink(missing_ok=True)
            return None
        return pid


def spawn(name: str, cmd: list[str], env: dict | None = None, cwd: Path | None = None,
          log_name: str | None = None) -> subprocess.Popen:
    LOGS.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    logf = open(LOGS / (log_name or f"{name}.log"), "ab")
    proc = subprocess.Popen(
        cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
    )
    (RUN / f"{name}.pid").write_text(str(proc.pid))
    return proc


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    exe = Path(home) / "bin" / "java" if home else shutil.which("java")
    if not exe:
        raise SystemExit("java not found: install a JDK 17 (Debian package 'openjdk-17-jdk-headless')")
    return str(exe)


def start_kafka() -> subprocess.Popen:
    home = STACK / "kafka"
    data = home / "data"
    props = home / "server.properties"
    home.mkdir(parents=True, exist_ok=True)
    props.write_text("\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{HOST}:{KAFKA_CONTROLLER_PORT}",
        f"listeners=PLAINTEXT://{HOST}:{KAFKA_PORT},CONTROLLER://{HOST}:{KAFKA_CONTROLLER_PORT}",
        f"advertised.listeners=PLAINTEXT://{HOST}:{KAFKA_PORT}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={data}",
        "num.partitions=1",
        "auto.create.topics.enable=true",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=24",
        "",
    ]))
    cp = str(JARS / "kafka" / "*")
    heap = ["-Xms256m", "-Xmx512m"]
    if not (data / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        log("formatting Kafka KRaft storage")
        subprocess.run(
            [java(), *heap, "-cp", cp, "kafka.tools.StorageTool", "format", "-t", cluster_id,
             "-c", str(props), "--ignore-formatted"],
            check=True, stdout=open(LOGS / "kafka-format.log", "ab"), stderr=subprocess.STDOUT,
        )
    return spawn("kafka", [java(), *heap, "-cp", cp, "kafka.Kafka", str(props)])


def start_cassandra() -> subprocess.Popen:
    home = STACK / "cassandra"
    conf = home / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    yaml = conf / "cassandra.yaml"
    yaml.write_text(
        (LOCAL / "cassandra" / "cassandra.yaml").read_text()
        .replace("@DATA@", str(home / "data"))
        .replace("@HOST@", HOST)
        .replace("@NATIVE_PORT@", str(CASSANDRA_PORT))
        .replace("@STORAGE_PORT@", str(CASSANDRA_STORAGE_PORT))
    )
    shutil.copy(LOCAL / "cassandra" / "logback.xml", conf / "logback.xml")
    flags = [f"--add-opens={m}=ALL-UNNAMED" for m in JAVA17_OPENS]
    flags += [f"--add-exports={m}=ALL-UNNAMED" for m in JAVA17_EXPORTS]
    cmd = [
        java(), "-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-Xss512k", *flags,
        "-Djdk.attach.allowAttachSelf=true",
        f"-Dcassandra.config=file://{yaml}",
        f"-Dlogback.configurationFile=file://{conf / 'logback.xml'}",
        f"-Dcassandra.logdir={LOGS}",
        f"-Dcassandra.storagedir={home / 'data'}",
        "-Dcassandra-foreground=yes",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.ring_delay_ms=1000",
        "-Dcassandra.initial_token=0",
        "-Dcassandra.jmx.local.port=7199",
        "-cp", f"{conf}:{JARS / 'cassandra' / '*'}",
        "org.apache.cassandra.service.CassandraDaemon",
    ]
    return spawn("cassandra", cmd)


def redis_server_exe() -> str:
    exe = shutil.which("redis-server")
    if exe:
        return exe
    log("installing Debian package redis-server")
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "apt-get"]
    subprocess.run([*apt, "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*apt, "install", "-y", "-qq", "redis-server"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    # The package starts a system service on 6379; we run our own, loopback-only, under .stack.
    subprocess.run(["service", "redis-server", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return exe


def start_redis() -> subprocess.Popen:
    data = STACK / "redis"
    data.mkdir(parents=True, exist_ok=True)
    return spawn("redis", [redis_server_exe(), "--bind", HOST, "--port", str(REDIS_PORT), "--save", "",
                           "--appendonly", "no", "--dir", str(data), "--daemonize", "no"])


def start_expansion() -> subprocess.Popen:
    # EMBEDDED: the Java side of ReadFromKafka/WriteToKafka then runs inside the Flink job server's
    # own JVM, which has Kafka IO on its class path, instead of a Docker SDK harness (no Docker here).
    # filesToStage is the launcher jar alone, so a pipeline does not upload 190 jars per submission.
    # use_deprecated_read: an unbounded SDF Kafka read emits nothing on the portable Flink runner
    # here (apache/beam#31400); the UnboundedSource read streams, and commits offsets on checkpoints.
    return spawn("expansion-service", [
        java(), "-Xmx512m", "-jar", str(EXPANSION_SERVICE_JAR), str(EXPANSION_PORT),
        "--defaultEnvironmentType=EMBEDDED", f"--filesToStage={EXPANSION_SERVICE_JAR}",
        "--experiments=use_deprecated_read",
    ])


# -------------------------------------------------------------------------------------- flink
# A standalone Flink session cluster assembled from Maven Central jars (flink-dist is not served
# here): the JobManager and the TaskManager are separate JVMs, started the way bin/jobmanager.sh
# and bin/taskmanager.sh would (memory flags from BashJavaUtils, Java 17 --add-opens).

FLINK_TM_PROCESS = os.environ.get("LERN_FLINK_TM_MEMORY", "2560m")
FLINK_JM_PROCESS = os.environ.get("LERN_FLINK_JM_MEMORY", "1024m")
FLINK_SLOTS = int(os.environ.get("LERN_FLINK_SLOTS", "4"))


def flink_conf() -> str:
    """The cluster's flink-conf.yaml. Checkpoints and savepoints on local disk under .stack/flink,
    retained when a job is cancelled or fails for good, so a restarted job can resume from them."""
    return "\n".join([
        f"jobmanager.rpc.address: {HOST}",
        f"jobmanager.rpc.port: {FLINK_RPC_PORT}",
        f"jobmanager.bind-host: {HOST}",
        f"taskmanager.host: {HOST}",
        f"taskmanager.bind-host: {HOST}",
        f"taskmanager.rpc.port: {FLINK_TM_RPC_PORT}",
        f"rest.address: {HOST}",
        f"rest.bind-address: {HOST}",
        f"rest.port: {FLINK_REST_PORT}",
        f"blob.server.port: {FLINK_BLOB_PORT}",
        f"jobmanager.memory.process.size: {FLINK_JM_PROCESS}",
        f"taskmanager.memory.process.size: {FLINK_TM_PROCESS}",
        # Beam's portable operators keep little in Flink managed memory (the Python state lives in
        # Flink keyed state, on the heap with the hashmap backend); metaspace is sized for the Beam
        # runner and harness classes, loaded once from the class path, not per job.
        "taskmanager.memory.managed.size: 256m",
        "taskmanager.memory.jvm-metaspace.size: 512m",
        f"taskmanager.numberOfTaskSlots: {FLINK_SLOTS}",
        "parallelism.default: 1",
        "classloader.check-leaked-classloader: false",
        # Durable, retained checkpoints; savepoints from `python -m pipelines.runner stop`.
        "state.backend.type: hashmap",
        f"state.checkpoints.dir: file://{FLINK_CHECKPOINTS}",
        f"state.savepoints.dir: file://{FLINK_SAVEPOINTS}",
        "state.checkpoints.num-retained: 3",
        "execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION",
        "execution.checkpointing.mode: EXACTLY_ONCE",
        "execution.checkpointing.tolerable-failed-checkpoints: 3",
        # A failed task restarts from the latest checkpoint after 1 s, backing off to 30 s.
        "restart-strategy.type: exponential-delay",
        "restart-strategy.exponential-delay.initial-backoff: 1 s",
        "restart-strategy.exponential-delay.max-backoff: 30 s",
        "restart-strategy.exponential-delay.backoff-multiplier: 2.0",
        "restart-strategy.exponential-delay.reset-backoff-threshold: 10 min",
        "restart-strategy.exponential-delay.jitter-factor: 0.1",
        "restart-strategy.exponential-delay.attempts-before-reset-backoff: 1000",
        # A TaskManager killed with -9 is noticed within seconds, not the default 50 s.
        "heartbeat.interval: 2000",
        "heartbeat.timeout: 10000",
        "resourcemanager.taskmanager-timeout: 10000",
        f"io.tmp.dirs: {FLINK / 'tmp'}",
        f"web.upload.dir: {FLINK / 'upload'}",
        f"web.tmpdir: {FLINK / 'web'}",
        f"blob.storage.directory: {FLINK / 'blob'}",
        "web.submit.enable: true",
        "web.cancel.enable: true",
        "",
    ])


FLINK_LOG4J = """rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
logger.pekko.name = org.apache.pekko
logger.pekko.level = WARN
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF
appender.main.name = MainAppender
appender.main.type = RollingFile
appender.main.append = true
appender.main.fileName = ${sys:log.file}
appender.main.filePattern = ${sys:log.file}.%i
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
appender.main.policies.type = Policies
appender.main.policies.size.type = SizeBasedTriggeringPolicy
appender.main.policies.size.size = 50MB
appender.main.strategy.type = DefaultRolloverStrategy
appender.main.strategy.max = 3
"""


def write_flink_conf() -> Path:
    for d in (FLINK_CONF, FLINK_CHECKPOINTS, FLINK_SAVEPOINTS, FLINK / "tmp", FLINK / "upload", FLINK / "blob"):
        d.mkdir(parents=True, exist_ok=True)
    (FLINK_CONF / "flink-conf.yaml").write_text(flink_conf())
    (FLINK_CONF / "log4j.properties").write_text(FLINK_LOG4J)
    return FLINK_CONF


def flink_classpath() -> str:
    return str(JARS / "flink" / "*")


def flink_resource_params(which: str) -> tuple[list[str], list[str]]:
    """JVM flags and ``-D`` dynamic properties for the JobManager (``JM``) or TaskManager (``TM``),
    computed by Flink's own BashJavaUtils from the memory settings, as bin/*.sh do. Cached next to
    the configuration it was computed from (a JVM over the whole class path takes seconds, and a
    TaskManager restarted after a crash should be back as soon as possible)."""
    import hashlib
    conf = (FLINK_CONF / "flink-conf.yaml").read_bytes()
    cache = FLINK_CONF / f"{which.lower()}-params.{hashlib.sha256(conf).hexdigest()[:16]}"
    if cache.exists():
        jvm, dyn = cache.read_text().split("\n", 1)
        return jvm.split(), dyn.split()
    r = subprocess.run([java(), "-Xmx256m", "-cp", flink_classpath(),
                        "org.apache.flink.runtime.util.bash.BashJavaUtils", f"GET_{which}_RESOURCE_PARAMS",
                        "--configDir", str(FLINK_CONF)], capture_output=True, text=True, check=True)
    results = [line.split(":", 1)[1] for line in r.stdout.splitlines()
               if line.startswith("BASH_JAVA_UTILS_EXEC_RESULT:")]
    if len(results) < 2:
        raise SystemExit(f"BashJavaUtils gave no {which} memory settings: {r.stdout[-2000:]} {r.stderr[-2000:]}")
    for stale in FLINK_CONF.glob(f"{which.lower()}-params.*"):
        stale.unlink()
    cache.write_text(f"{results[-2]}\n{results[-1]}")
    return results[-2].split(), results[-1].split()


def flink_java_flags(name: str) -> list[str]:
    flags = [f"--add-opens={m}=ALL-UNNAMED" for m in JAVA17_OPENS]
    flags += [f"--add-exports={m}=ALL-UNNAMED" for m in JAVA17_EXPORTS]
    return [*flags, "-XX:+UseG1GC", f"-Dlog.file={LOGS / (name + '.log')}",
            f"-Dlog4j.configurationFile=file://{FLINK_CONF / 'log4j.properties'}",
            f"-Dlog4j2.configurationFile=file://{FLINK_CONF / 'log4j.properties'}"]


def start_flink_jobmanager() -> subprocess.Popen:
    write_flink_conf()
    jvm, dyn = flink_resource_params("JM")
    return spawn("flink-jobmanager", [
        java(), *jvm, *flink_java_flags("flink-jobmanager"), "-cp", flink_classpath(),
        "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
        "--configDir", str(FLINK_CONF), *dyn,
    ], log_name="flink-jobmanager.out")


def worker_env() -> dict[str, str]:
    """The environment Beam's boot program (PROCESS workers) inherits from the TaskManager: the
    project venv's python first on PATH, used as is (no per-worker venv, no pip install)."""
    venv_bin = str(VENV_PY.parent)
    return {"PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "VIRTUAL_ENV": str(VENV_PY.parent.parent),
            "RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT": "1",
            "PYTHONUNBUFFERED": "1"}


def start_flink_taskmanager() -> subprocess.Popen:
    write_flink_conf()
    jvm, dyn = flink_resource_params("TM")
    return spawn("flink-taskmanager", [
        java(), *jvm, *flink_java_flags("flink-taskmanager"), "-cp", flink_classpath(),
        "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
        "--configDir", str(FLINK_CONF), *dyn,
    ], env=worker_env(), cwd=ROOT, log_name="flink-taskmanager.out")


def flink_rest(path: str, timeout: float = 2.0):
    import json
    import urllib.request
    with urllib.request.urlopen(f"http://{HOST}:{FLINK_REST_PORT}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def flink_jobmanager_ready() -> bool:
    try:
        return "flink-version" in flink_rest("/config")
    except Exception:  # noqa: BLE001
        return False


def flink_taskmanager_ready() -> bool:
    """A TaskManager of ours is registered with the JobManager (and alive: dead ones drop out
    after heartbeat.timeout) and answers on its RPC port."""
    if not port_open(FLINK_TM_RPC_PORT):
        return False
    try:
        return any(tm.get("id") for tm in flink_rest("/taskmanagers").get("taskmanagers", []))
    except Exception:  # noqa: BLE001
        return False


def venv_python() -> str:
    return str(VENV_PY) if VENV_PY.exists() else sys.executable


def start_emulator() -> subprocess.Popen:
    return spawn("sunbird-emulator", [venv_python(), str(LOCAL / "emulator" / "sunbird.py"),
                                      "--host", HOST, "--port", str(EMULATOR_PORT),
                                      "--seed", str(LOCAL / "emulator" / "seed.json")])


def start_smtp() -> subprocess.Popen:
    maildir = STACK / "mail"
    maildir.mkdir(parents=True, exist_ok=True)
    return spawn("smtp", [venv_python(), str(LOCAL / "emulator" / "smtp.py"), "--host", HOST,
                          "--port", str(SMTP_PORT), "--maildir", str(maildir),
                          "--http-port", str(SMTP_HTTP_PORT)])


def cassandra_ready() -> bool:
    if not port_open(CASSANDRA_PORT):
        return False
    r = subprocess.run([venv_python(), str(LOCAL / "schema.py"), "--check"], capture_output=True)
    return r.returncode == 0


def apply_schema() -> None:
    subprocess.run([venv_python(), str(LOCAL / "schema.py")], check=True)


def create_topics() -> None:
    subprocess.run([venv_python(), str(LOCAL / "topics.py")], check=True)


SERVERS = [
    Server("redis", REDIS_PORT, start_redis, lambda: port_open(REDIS_PORT), 30),
    Server("kafka", KAFKA_PORT, start_kafka, lambda: port_open(KAFKA_PORT), 120, [create_topics]),
    Server("cassandra", CASSANDRA_PORT, start_cassandra, cassandra_ready, 240, [apply_schema]),
    Server("expansion-service", EXPANSION_PORT, start_expansion, lambda: port_open(EXPANSION_PORT), 120),
    Server("sunbird-emulator", EMULATOR_PORT, start_emulator, lambda: port_open(EMULATOR_PORT), 30),
    Server("smtp", SMTP_PORT, start_smtp, lambda: port_open(SMTP_PORT) and port_open(SMTP_HTTP_PORT), 30),
    Server("flink-jobmanager", FLINK_REST_PORT, start_flink_jobmanager, flink_jobmanager_ready, 120),
    Server("flink-taskmanager", FLINK_TM_RPC_PORT, start_flink_taskmanager, flink_taskmanager_ready, 120),
]


def up(only: list[str]) -> None:
    t0 = time.monotonic()
    ensure_jars()
    started: list[tuple[Server, subprocess.Popen | None]] = []
    for s in SERVERS:
        if only and s.name not in only:
            continue
        if s.ready():
            log(f"{s.name}: already answering on {s.port}")
            started.append((s, None))
        elif port_open(s.port):
            # Something listens but is not (yet) healthy: maybe ours, still starting.
            log(f"{s.name}: port {s.port} open, waiting for it to become healthy")
            started.append((s, None))
        else:
            log(f"{s.name}: starting (log: {LOGS / (s.name + '.log')})")
            started.append((s, s.start()))
    for s, proc in started:
        wait_for(s.name, s.ready, s.timeout, proc)
        for step in s.after:
            step()
        log(f"{s.name}: up")
    log(f"stack up in {time.monotonic() - t0:.1f}s")


def down() -> None:
    for s in reversed(SERVERS):
        pid = s.owned_pid()
        if pid is None:
            continue
        log(f"{s.name}: stopping pid {pid}")
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.3)
        else:
            log(f"{s.name}: did not stop in 30s, killing")
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        s.pidfile.unlink(missing_ok=True)


def status() -> int:
    bad = 0
    for s in SERVERS:
        pid = s.owned_pid()
        ok = s.ready()
        bad += not ok
        owner = f"pid {pid}" if pid else "not started by us"
        print(f"{s.name:18} {HOST}:{s.port:<5} {'UP' if ok else 'DOWN':4}  {owner}")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down", "status", "jars"])
    ap.add_argument("only", nargs="*", help="limit 'up' to these servers")
    a = ap.parse_args()
    if a.command == "up":
        up(a.only)
    elif a.command == "down":
        down()
    elif a.command == "jars":
        ensure_jars()
    else:
        return status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
