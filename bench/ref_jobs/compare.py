"""Side by side: a reference Scala job (Flink 1.13.5 mini-cluster) and its lern-beam job (FlinkRunner
streaming, ``--flink_master=[local]``) on the same generated events, back to back, each run with its
own fresh ids, topics and consumer group, both reading one reference HOCON conf file.

    # from the project root, after `make up` and bench/ref_jobs/build.sh
    .venv/bin/python bench/ref_jobs/compare.py --job assessment --events 3000 --pairs 1
    .venv/bin/python bench/ref_jobs/compare.py --job certificates --events 300 --pairs 1

Per system: seed, create topics, write the conf, start the job, produce the warm-up events and wait
for their outputs (start-up is not measured), then at t0 produce the measured events and wait for
every expected output. Elapsed = Kafka timestamp (CreateTime, set by the job's producer) of the last
output - t0. Then the job's process group is stopped and the stores are checked against what the
events imply (``jobs.py``). Pair k runs the reference first when k is odd, lern-beam first when even.
One JSON line per run goes to --out; at the end a table and the ratios are printed.

The process sampler, Kafka helpers, Java 17 flags and job stop are ../shared/bench-ref's (imported
by path), so both benchmarks measure the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("BENCH_REF_DIR", HERE.parents[2] / "shared" / "bench-ref"))
sys.path.insert(0, str(SHARED))  # before this folder: ../shared/bench-ref/side_by_side.py is imported
import common as C  # noqa: E402
import jobs  # noqa: E402
from jobs import JOBS  # noqa: E402  (this folder is on sys.path as the script's own)
from side_by_side import JAVA17_OPENS, stop, wait_offset  # noqa: E402

SCRATCH = Path(os.environ.get("BENCH_REF_JOBS_SCRATCH", "/tmp/bench-ref-jobs"))
RUNS = SCRATCH / "runs"
# The certificate job's classpath carries slf4j-reload4j ahead of log4j-slf4j-impl (hadoop, via
# cloud-store-sdk), so it logs through log4j 1: both loggers get WARN, as in ../shared/bench-ref.
LOG4J1 = "log4j.rootLogger=WARN, console\nlog4j.appender.console=org.apache.log4j.ConsoleAppender\n" \
         "log4j.appender.console.layout=org.apache.log4j.PatternLayout\n" \
         "log4j.appender.console.layout.ConversionPattern=%d{HH:mm:ss,SSS} %-5p %c - %m%n\n"


def ref_cmd(job_dir: Path, main_class: str, conf: Path, java: str) -> list[str]:
    cp = (job_dir / "cp.txt").read_text().strip()
    log4j1 = RUNS / "log4j1.properties"
    log4j1.write_text(LOG4J1)
    return [java, *[f"--add-opens={m}=ALL-UNNAMED" for m in JAVA17_OPENS],
            f"-Dlog4j.configurationFile={SHARED / 'log4j2.properties'}", f"-Dlog4j.configuration=file:{log4j1}",
            "-cp", f"{job_dir / 'target' / 'classes'}:{cp}", main_class, "--config.file.path", str(conf)]


def beam_cmd(project: Path, module: str, conf: Path, extra: list[str]) -> list[str]:
    return [str(project / ".venv" / "bin" / "python"), "-m", module, "--config", str(conf),
            "--runner=FlinkRunner", "--flink_master=[local]", *extra]


def wait_topics(topics: list[str], timeout: float = 60) -> None:
    """A fresh topic answers offset requests only once its partition has a leader (else
    NOT_LEADER_FOR_PARTITION, which once failed a run before it started)."""
    deadline = time.monotonic() + timeout
    for name in topics:
        while True:
            try:
                C.end_offset(name)
                break
            except Exception:  # noqa: BLE001 - KafkaException until the leader is elected
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def run_one(system: str, label: str, a: argparse.Namespace) -> dict:
    job = JOBS[a.job](a.events)
    tag = f"{label}_{a.job[:4]}_{system}_{int(time.time()) % 100000}".replace("-", "_").replace(".", "_")
    ds = job.dataset(tag)
    t = {k: f"perf.{tag}.{k}" for k in job.topics}
    out = t[job.out_topic]
    C.create_topics(*t.values())
    wait_topics(list(t.values()))
    t_seed = time.monotonic()
    job.seed(ds)
    seed_s = time.monotonic() - t_seed
    RUNS.mkdir(parents=True, exist_ok=True)
    conf = RUNS / f"{tag}.conf"
    conf.write_text(job.conf(t, f"perf-{tag}"))
    if system == "ref":
        job_dir = Path(a.ref) / job.ref_job
        cmd, cwd = ref_cmd(job_dir, job.ref_main, conf, a.java), job_dir
    else:
        cmd, cwd = beam_cmd(a.project, job.beam_module, conf, a.beam_extra.split()), a.project
    log = open(RUNS / f"{tag}.log", "w")
    res: dict = {"job": a.job, "system": system, "emulator": a.emulator,
                 "tag": tag, "events": len(ds.events), "seed_s": round(seed_s, 1),
                 "load_avg_start": os.getloadavg()[0], "log": str(RUNS / f"{tag}.log"),
                 "cmd": " ".join(cmd if system == "beam" else ["java ... -cp target/classes:$(cat cp.txt)", *cmd[-3:]])}
    t_start = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    extra = {k: p for k, p in (("cassandra", C.find_pid("CassandraDaemon")), ("redis", C.find_pid("redis-server")),
                               ("kafka", C.find_pid("kafka.Kafka")), ("emulator", a.emulator_pid)) if p}
    smp = C.Sampler(proc.pid, extra)
    smp.start()
    try:
        C.produce(t["in"], ds.warmup)
        wait_offset(out, job.expected_out(ds.warmup), a.startup_timeout, proc)
        res["startup_s"] = round(time.time() - t_start, 1)
        time.sleep(2)
        base = C.end_offset(out)
        smp.mark("t0")
        t0 = time.time()
        res["produce_s"] = round(C.produce(t["in"], ds.events), 2)
        wait_offset(out, base + job.expected_out(ds.events), a.timeout or 120 + len(ds.events) / 5, proc)
        time.sleep(3)
        smp.mark("end")
        ts = [x for x in C.topic_timestamps(out, base) if x >= t0 * 1000]
        el = max(ts) / 1000 - t0
        m0, m1 = smp.marks["t0"], smp.marks["end"]
        res.update({
            "elapsed_s": round(el, 1), "events_per_s": round(len(ds.events) / el, 1),
            "first_output_after_s": round(min(ts) / 1000 - t0, 1),
            "cpu_s_job": round(m1["cpu"] - m0["cpu"], 1),
            "cpu_s_servers": {k: round(m1["extra"][k] - m0["extra"][k], 1) for k in m0["extra"]},
            "cpu_s_by_process": {k: round(v - m0["by_comm"].get(k, 0.0), 1) for k, v in m1["by_comm"].items()},
            "out": C.end_offset(out) - base, "expected_out": job.expected_out(ds.events),
            "failed_out": C.end_offset(t["failed"]), "load_avg_end": os.getloadavg()[0],
        })
    except Exception as e:  # noqa: BLE001 - recorded in the result line; the check still runs
        res["error"] = repr(e)
    finally:
        smp.stop()
        stop(proc)
        log.close()
        res["peak_rss_mib"] = round(smp.peak_rss / 2**20)
    try:
        outputs = [json.loads(v) for v in C.topic_values(out)]
    except Exception as e:  # noqa: BLE001
        res["error"] = res.get("error") or repr(e)
        outputs = []
    res["check"] = job.check(ds, outputs)
    return res


def table(rows: list[dict]) -> str:
    """Markdown table of the runs and, per pair, lern-beam / reference events/s."""
    name = {"ref": "reference", "beam": "lern-beam"}
    out = ["| job | pair | system | events | events/s | elapsed s | peak RSS MiB | CPU s job | CPU s servers "
           "(cassandra/redis/kafka/emulator) | load avg | correct |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        srv = r.get("cpu_s_servers", {})
        out.append(f"| {r['job']} | {r['pair']} | {name[r['system']]} | {r['events']} "
                   f"| {r.get('events_per_s', 'failed')} | {r.get('elapsed_s', '-')} | {r['peak_rss_mib']} "
                   f"| {r.get('cpu_s_job', '-')} | "
                   f"{'/'.join(str(srv.get(k, '-')) for k in ('cassandra', 'redis', 'kafka', 'emulator'))} | "
                   f"{r['load_avg_start']:.1f}-{r.get('load_avg_end', 0):.1f} | "
                   f"{'yes' if r['check']['correct'] and 'error' not in r else 'NO'} |")
    ratios = []
    for p in sorted({r["pair"] for r in rows}):
        by = {r["system"]: r for r in rows if r["pair"] == p}
        if all(s in by and "events_per_s" in by[s] for s in ("ref", "beam")):
            ratios.append(by["beam"]["events_per_s"] / by["ref"]["events_per_s"])
            out.append(f"\npair {p}: lern-beam / reference = {ratios[-1]:.2f}")
    if len(ratios) > 1:
        out.append(f"median lern-beam / reference = {statistics.median(ratios):.2f}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--job", choices=JOBS, required=True)
    ap.add_argument("--events", type=int, required=True, help="measured events (attempts or certificates)")
    ap.add_argument("--pairs", type=int, default=1, help="back-to-back pairs; odd pairs run the reference first")
    ap.add_argument("--systems", default="ref,beam", help="ref, beam or both (order within a pair is alternated)")
    ap.add_argument("--label", default="p", help="label in the tags and result lines")
    ap.add_argument("--project", default=str(HERE.parents[1]), help="lern-beam checkout with .venv")
    ap.add_argument("--ref", default=str(SCRATCH / "ref"), help="build dir of bench/ref_jobs/build.sh")
    ap.add_argument("--java", default=os.environ.get("JAVA", "java"))
    ap.add_argument("--beam_extra", default="", help="extra pipeline options for lern-beam")
    ap.add_argument("--startup_timeout", type=float, default=240)
    ap.add_argument("--timeout", type=float, default=0, help="seconds for the measured events (default 120 + n/5)")
    ap.add_argument("--emulator", choices=("stack", "private", "private-nodelay"), default="stack",
                    help="Sunbird emulator: the stack's (port 9000), or a private one on --emulator_port started "
                         "for this invocation, with TCP_NODELAY for private-nodelay (see emulator.py)")
    ap.add_argument("--emulator_port", type=int, default=9100)
    ap.add_argument("--out", default=str(SCRATCH / "results.jsonl"))
    a = ap.parse_args()
    a.project = Path(a.project).resolve()
    systems = [s for s in a.systems.split(",") if s]
    emu = None
    a.emulator_pid = C.find_pid("emulator/sunbird.py")
    if a.emulator != "stack":
        RUNS.mkdir(parents=True, exist_ok=True)
        nodelay = ["--nodelay"] if a.emulator.endswith("nodelay") else []
        emu = subprocess.Popen([str(a.project / ".venv" / "bin" / "python"), str(HERE / "emulator.py"),
                                "--port", str(a.emulator_port), *nodelay],
                               stdout=open(RUNS / f"emulator_{a.label}.log", "w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
        jobs.EMULATOR, a.emulator_pid = f"http://127.0.0.1:{a.emulator_port}", emu.pid
        time.sleep(3)
    rows = []
    try:
        for p in range(1, a.pairs + 1):
            for system in (systems if p % 2 else systems[::-1]):
                r = run_one(system, a.label, a)
                r.update(pair=p, label=a.label, time_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                C.append_result(r, a.out)
                rows.append(r)
    finally:
        if emu is not None:
            stop(emu)
    print(table(rows))
    return 0 if all("error" not in r and r["check"]["correct"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
