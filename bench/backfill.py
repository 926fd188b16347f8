"""Backfill benchmark: where a bounded run stays in bounded memory (issue 11, item 4).

    .venv/bin/python bench/backfill.py --source jsonl --size 10000 --runner flink
    .venv/bin/python bench/backfill.py --source cassandra --size 100000 --runner direct

Two backfills, each run as its own process (the way an operator runs it) under a sampler of
that process tree (``/proc`` every 0.5 s: peak summed RSS, CPU seconds of every process seen,
the Flink job server's JVM included; at least the job process's own ``wait4`` figures):

* ``--source jsonl``: ``pipelines.activity --input events.jsonl`` over ``--size``
  ``batch-enrolment-update`` events, the kind bench/progress.py and ../shared/bench-ref make: a
  course of 20 leaves in 4 units in the relation cache, ``size / 5`` learners enrolled (or ``--learners``), each event
  completing 1-3 random leaves of a random learner (fixed seed). Events are written to the file
  as they are generated, so the generator holds none of them.
* ``--source cassandra``: ``pipelines.enrolment_sync --from_cassandra`` with no selection: every
  enrolment of the keyspace, ``--size`` of them over ``--courses`` courses, each with 1-3
  completed contents in ``user_content_consumption``, recomputed through the token-range scan.

Both run in their own keyspace, ``bench_backfill`` (dropped and recreated from local/schema.cql
for every run), so a platform-wide backfill sees exactly its own enrolments and never recomputes
another agent's or test's rows. Runners (``--runner``):

* ``direct``: DirectRunner, in-process (Beam's FnApiRunner);
* ``direct-mp``: DirectRunner ``--direct_running_mode=multi_processing --direct_num_workers=W``;
* ``flink``: ``--runner=FlinkRunner --flink_master=[local]``: Beam's Flink job server with its
  embedded mini-cluster (a bounded pipeline runs in Flink batch mode), Python in the submitting
  process (LOOPBACK), ``--parallelism=P``.

Prints one JSON line: size, wall seconds (job process start to exit, job-server start included),
events/s, peak RSS (MiB), CPU seconds, runner, and the job's counters. Needs ``make up``. Only
one benchmark should use the stack at a time: two at once measure each other.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
KEYSPACE = "bench_backfill"
TABLES = ("user_content_consumption", "user_activity_agg", "user_enrolments", "consumption_events_applied")
LEAVES, UNITS = 20, 4

sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from cassandra.cluster import Cluster  # noqa: E402
from cassandra.concurrent import execute_concurrent_with_args  # noqa: E402


# ------------------------------------------------------------------------------------- data set
def schema_statements(keyspace: str, tables: tuple[str, ...] = TABLES) -> list[str]:
    """local/schema.cql's keyspace, and the tables (with their indexes) in ``tables``, in ``keyspace``."""
    text = re.sub(r"--[^\n]*", "", (ROOT / "local" / "schema.cql").read_text())
    out = []
    for stmt in (s.strip() for s in text.split(";")):
        if stmt.startswith("CREATE KEYSPACE IF NOT EXISTS sunbird_courses") or any(
                f"sunbird_courses.{t} " in stmt or f"sunbird_courses.{t}(" in stmt for t in tables):
            out.append(" ".join(stmt.replace("sunbird_courses", keyspace).split()))
    return out


def fresh_keyspace(session, keyspace: str) -> None:
    session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    for stmt in schema_statements(keyspace):
        session.execute(stmt, timeout=120)


def course_tree(run: str, i: int) -> tuple[str, dict[str, list[str]]]:
    course = f"bf-{run}-C{i}"
    leaves = [f"{course}-c{j:02d}" for j in range(LEAVES)]
    per = LEAVES // UNITS
    return course, {f"{course}-U{u}": leaves[u * per:(u + 1) * per] for u in range(UNITS)}


def seed_relation_cache(courses: list[tuple[str, dict[str, list[str]]]]) -> None:
    pipe = redis.Redis(host="127.0.0.1", port=6379, db=10).pipeline(transaction=False)
    for course, tree in courses:
        pipe.sadd(f"{course}:{course}:leafnodes", *[c for cs in tree.values() for c in cs])
        for unit, cs in tree.items():
            pipe.sadd(f"{course}:{unit}:leafnodes", *cs)
            for c in cs:
                pipe.sadd(f"{course}:{c}:ancestors", course, unit)
    pipe.execute()


def insert(session, cql: str, rows, chunk: int = 20000) -> None:
    """Concurrent inserts, a chunk at a time (the driver would otherwise hold every future)."""
    stmt = session.prepare(cql)
    buf = []
    for r in rows:
        buf.append(r)
        if len(buf) >= chunk:
            execute_concurrent_with_args(session, stmt, buf, concurrency=128)
            buf = []
    if buf:
        execute_concurrent_with_args(session, stmt, buf, concurrency=128)


ENROL = "INSERT INTO {ks}.user_enrolments (userid, courseid, batchid, status, active) VALUES (?, ?, ?, 1, true)"
CONSUMED = ("INSERT INTO {ks}.user_content_consumption (userid, courseid, batchid, contentid, status) "
            "VALUES (?, ?, ?, ?, 2)")


def seed_jsonl(session, run: str, n: int, path: Path, rnd: random.Random,
               learners: int | None = None) -> tuple[int, dict[str, int]]:
    """One course, ``n // 5`` learners enrolled; ``n`` events streamed to ``path``. Returns the
    completions and, per learner with events, the bit mask of the leaves they completed (what
    ``check_jsonl`` compares the stored progress with)."""
    course, tree = course_tree(run, 0)
    seed_relation_cache([(course, tree)])
    batch = f"{course}-B"
    learners = learners or max(2000, n // 5)
    insert(session, ENROL.format(ks=KEYSPACE), ((f"bf-{run}-L{i}", course, batch) for i in range(learners)))
    leaves = [c for cs in tree.values() for c in cs]
    completions, masks = 0, {}
    with path.open("w") as f:
        for i in range(n):
            user = f"bf-{run}-L{rnd.randrange(learners)}"
            picked = rnd.sample(range(len(leaves)), rnd.randint(1, 3))
            contents = [{"contentId": leaves[j], "status": 2} for j in picked]
            completions += len(contents)
            for j in picked:
                masks[user] = masks.get(user, 0) | 1 << j
            f.write(json.dumps({
                "eid": "BE_JOB_REQUEST", "ets": 1700000000000 + i, "mid": f"LMS.bf.{run}.{i}",
                "actor": {"type": "System", "id": "Course Batch Updater"},
                "object": {"type": "CourseBatchEnrolment", "id": f"{batch}_{user}"},
                "edata": {"action": "batch-enrolment-update", "iteration": 1, "userId": user, "courseId": course,
                          "batchId": batch, "contents": contents}}) + "\n")
    return completions, masks


def check_jsonl(masks: dict[str, int], out_dir: Path) -> dict[str, int]:
    """Every enrolment of the run against what its events imply: progress = distinct leaves
    completed, status 2 exactly when all 20 are, the consumption rows, and one cert-issue request
    per completed enrolment. Read back a page at a time."""
    cluster = Cluster(["127.0.0.1"])
    session = cluster.connect()
    wrong = checked = 0
    try:
        rows = session.execute(f"SELECT userid, status, progress FROM {KEYSPACE}.user_enrolments")
        for r in rows:
            done = masks.get(r.userid, 0).bit_count()
            want = (2 if done == LEAVES else 1, done or None)
            checked += 1
            wrong += (r.status, r.progress or None) != want
        consumed = sum(1 for _ in session.execute(f"SELECT userid FROM {KEYSPACE}.user_content_consumption"))
    finally:
        cluster.shutdown()
    cert = out_dir / "local.issue.certificate.request.jsonl"
    certs = sum(1 for _ in cert.open()) if cert.exists() else 0
    completed = sum(1 for m in masks.values() if m.bit_count() == LEAVES)
    return {"enrolments_checked": checked, "enrolments_wrong": wrong,
            "consumption_rows": consumed, "consumption_rows_expected": sum(m.bit_count() for m in masks.values()),
            "cert_requests": certs, "cert_requests_expected": completed}


def seed_cassandra(session, run: str, n: int, n_courses: int, rnd: random.Random) -> int:
    """``n`` enrolments (one learner each) over ``n_courses`` courses, 1-3 completed contents each.

    A learner's enrolment and consumption rows go as one UNLOGGED batch (they share the partition
    key), a chunk of learners at a time: a third of the requests of one insert per row.
    """
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import BatchStatement, BatchType

    courses = [course_tree(run, i) for i in range(n_courses)]
    seed_relation_cache(courses)
    leaves = {course: [c for cs in tree.values() for c in cs] for course, tree in courses}
    enrol, consumed = session.prepare(ENROL.format(ks=KEYSPACE)), session.prepare(CONSUMED.format(ks=KEYSPACE))
    total, chunk = 0, []
    for i in range(n):
        course = courses[i % n_courses][0]
        user, batch = f"bf-{run}-L{i}", f"{course}-B"
        b = BatchStatement(batch_type=BatchType.UNLOGGED)
        b.add(enrol, (user, course, batch))
        for leaf in rnd.sample(leaves[course], rnd.randint(1, 3)):
            b.add(consumed, (user, course, batch, leaf))
            total += 1
        chunk.append((b, None))
        if len(chunk) >= 5000 or i == n - 1:
            execute_concurrent(session, chunk, concurrency=128)
            chunk = []
    return total


# ------------------------------------------------------------------------------------- sampler
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = Path(f"/proc/{d}/stat").read_text()
                kids.setdefault(int(st[st.rindex(")") + 2:].split()[1]), []).append(int(d))
            except (OSError, ValueError):
                pass
    return kids


def _cpu_rss(pid: int) -> tuple[float, int] | None:
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
        f = st[st.rindex(")") + 2:].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"), int(f[21]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Sampler(threading.Thread):
    """Peak summed RSS of a process tree and its CPU seconds (last value seen per pid, so processes
    that exited before the end still count)."""

    def __init__(self, root: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.cpu: dict[int, float] = {}
        self.peak_rss = 0
        self.done = threading.Event()

    def sample(self) -> None:
        kids, todo, total = _children(), [self.root], 0
        while todo:
            pid = todo.pop()
            todo += kids.get(pid, [])
            v = _cpu_rss(pid)
            if v:
                self.cpu[pid] = v[0]
                total += v[1]
        self.peak_rss = max(self.peak_rss, total)

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)


# ------------------------------------------------------------------------------- scan plans
def compare_scans(n_courses: int, ranges: int, page_size: int) -> dict[str, float]:
    """Seconds (and rows) each way of reading one course's enrolments takes, on the seeded keyspace,
    one process, ranges one after another (no Beam): the whole table, a course filtered on the
    replica in every range (what ScanEnrolments does), a course filtered on the client, and the
    old single ``courseid = ? ALLOW FILTERING`` query."""
    from pipelines.io.cassandra import CassandraClient, CassandraConfig
    from pipelines.io.enrolment_scan import matches, pages, scan_tasks

    db = CassandraClient(CassandraConfig(hosts=("127.0.0.1",), keyspace=KEYSPACE))
    table = f"{KEYSPACE}.user_enrolments"
    course = db.execute(f"SELECT courseid FROM {table} LIMIT 1")[0].courseid
    cols = ("userid", "courseid", "batchid")

    def timed(tasks, sel=(None, None, None)) -> tuple[float, int]:
        t0, n = time.monotonic(), 0
        for cql, params in tasks:
            for page in pages(db, cql, params, page_size):
                n += sum(1 for r in page if matches(r, sel))
        return round(time.monotonic() - t0, 2), n

    every, one = (None, None, None), (course, None, None)
    out = {
        "all_token_ranges": timed(scan_tasks(table, every, cols, ranges)),
        "course_filtered_on_replica": timed(scan_tasks(table, one, cols, ranges), one),
        "course_filtered_on_client": timed(scan_tasks(table, every, cols, ranges), one),
        "course_single_query": timed([(f"SELECT userid, courseid, batchid FROM {table} WHERE courseid = ? "
                                       "ALLOW FILTERING", (course,))]),
    }
    db.close()
    return {k: {"seconds": v[0], "rows": v[1]} for k, v in out.items()} | {"courses": n_courses}


# ------------------------------------------------------------------------------------------ run
def runner_args(a) -> list[str]:
    if a.runner == "flink":
        heap = [f"--job_server_jvm_properties=-Xmx{a.jvm_heap}"] if a.jvm_heap else []
        return ["--runner=FlinkRunner", "--flink_master=[local]", f"--parallelism={a.parallelism}", *heap]
    if a.runner == "direct-mp":
        return ["--direct_running_mode=multi_processing", f"--direct_num_workers={a.workers}"]
    return []


def run_job(module: str, args: list[str], log: Path) -> tuple[int, float, int, float, dict[str, int]]:
    """Runs ``pipelines.<module>`` (imported, so multi-processing workers can unpickle its DoFns)."""
    cmd = [str(PYTHON), "-c", f"import sys; from pipelines import {module} as m; sys.exit(m.main())", *args]
    t0 = time.monotonic()
    with log.open("w") as lf:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=lf, stderr=subprocess.STDOUT, start_new_session=True)
        smp = Sampler(proc.pid)
        smp.start()
        _, status, usage = os.wait4(proc.pid, 0)  # the job's own CPU and peak RSS, exact at exit
        rc = proc.returncode = os.waitstatus_to_exitcode(status)
        smp.done.set()
        smp.join()
    secs = time.monotonic() - t0
    cpu = max(sum(smp.cpu.values()), usage.ru_utime + usage.ru_stime)
    peak = max(smp.peak_rss, usage.ru_maxrss * 1024)
    counters = {m.group(1).split(":", 1)[-1]: int(m.group(2))
                for m in re.finditer(r"^(\S+:[a-z-]+)\s+(\d+)\s*$", log.read_text(), re.M)}
    return rc, secs, peak, cpu, counters


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=("jsonl", "cassandra"), default="jsonl")
    ap.add_argument("--size", type=int, default=10000, help="events (jsonl) or enrolments (cassandra)")
    ap.add_argument("--runner", choices=("direct", "direct-mp", "flink"), default="flink")
    ap.add_argument("--workers", type=int, default=2, help="--direct_num_workers (direct-mp)")
    ap.add_argument("--parallelism", type=int, default=2, help="Flink parallelism (flink)")
    ap.add_argument("--jvm_heap", default=None,
                    help="flink: the job server's maximum heap (-Xmx, e.g. 1g); the JVM default is a quarter of RAM")
    ap.add_argument("--learners", type=int, default=None,
                    help="jsonl: learners enrolled (default size/5, at least 2,000). The same number at "
                         "every size keeps the shape of a batch (how many of its events share an "
                         "enrolment) the same, so rates at different sizes compare")
    ap.add_argument("--courses", type=int, default=10, help="courses the enrolments spread over (cassandra)")
    ap.add_argument("--shards", type=int, default=8, help="task.window.shards")
    ap.add_argument("--batch_size", type=int, default=1000, help="threshold.batch.read.size")
    ap.add_argument("--ranges", type=int, default=64, help="--scan_token_ranges (cassandra)")
    ap.add_argument("--page_size", type=int, default=1000, help="--scan_page_size (cassandra)")
    ap.add_argument("--extra", default="", help="more job options, space-separated")
    ap.add_argument("--compare_scans", action="store_true",
                    help="cassandra: after seeding, time the ways to read one course's enrolments instead of "
                         "running a job")
    ap.add_argument("--reuse", action="store_true",
                    help="cassandra: back-fill the enrolments a previous run seeded (same --size) instead of "
                         "seeding new ones; the job recomputes them again")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None, help="also append the result line to this file")
    a = ap.parse_args()

    run, rnd, masks = uuid.uuid4().hex[:8], random.Random(a.seed), None
    work = Path(tempfile.mkdtemp(prefix=f"backfill-{run}-"))
    cluster = Cluster(["127.0.0.1"])
    t0 = time.monotonic()
    try:
        session = cluster.connect()
        if a.reuse:
            completions = None
            module, args = "enrolment_sync", ["--from_cassandra", f"--scan_token_ranges={a.ranges}",
                                              f"--scan_page_size={a.page_size}"]
        elif a.source == "jsonl":
            fresh_keyspace(session, KEYSPACE)
            data = work / "events.jsonl"
            completions, masks = seed_jsonl(session, run, a.size, data, rnd, a.learners)
            module, args = "activity", ["--input", str(data)]
        else:
            fresh_keyspace(session, KEYSPACE)
            completions = seed_cassandra(session, run, a.size, a.courses, rnd)
            module, args = "enrolment_sync", ["--from_cassandra", f"--scan_token_ranges={a.ranges}",
                                              f"--scan_page_size={a.page_size}"]
    finally:
        cluster.shutdown()
    seed_s = time.monotonic() - t0
    if a.compare_scans:
        print(json.dumps({"enrolments": a.size, **compare_scans(a.courses, a.ranges, a.page_size)}))
        return 0
    print(f"seeded {a.source} x {a.size} ({completions} completions) in {seed_s:.0f}s; running {module} on "
          f"{a.runner}", file=sys.stderr, flush=True)

    args += [f"--lms_cassandra_keyspace={KEYSPACE}", f"--output_dir={work / 'out'}",
             f"--threshold_batch_read_size={a.batch_size}", f"--task_window_shards={a.shards}",
             *runner_args(a), *a.extra.split()]
    log = work / "job.log"
    rc, secs, peak, cpu, counters = run_job(module, args, log)
    label = {"flink": f" p={a.parallelism}" + (f" -Xmx{a.jvm_heap}" if a.jvm_heap else ""),
             "direct-mp": f" w={a.workers}"}.get(a.runner, "")
    res = {"source": a.source, "size": a.size, "runner": a.runner + label,
           "rc": rc, "seconds": round(secs, 1), "per_sec": round(a.size / secs), "peak_rss_mib": round(peak / 2**20),
           "cpu_s": round(cpu, 1), "seed_s": round(seed_s), "completions": completions, "log": str(log),
           "counters": counters}
    if masks is not None and rc == 0:
        res["check"] = check_jsonl(masks, work / "out")
    line = json.dumps(res)
    print(line, flush=True)
    if a.out:
        with open(a.out, "a") as f:
            f.write(line + "\n")
    if rc != 0:
        print(log.read_text()[-4000:], file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
