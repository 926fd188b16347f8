"""Benchmark of assessment-aggregator against the local stack.

    .venv/bin/python bench/assessment.py --attempts 10000 [--questions 10 --contents 20 --learners 2000]
    .venv/bin/python bench/assessment.py --attempts 10000 --flink

Seeds a synthetic course in the relation cache (Redis db 10) and its assessment contents'
``totalQuestions`` in the content cache (db 5), writes batch-assess events (each one attempt of
``--questions`` questions by a random learner at a random assessment, one in five with a
re-answered question, so the unique-question step has work to do), runs the job over them (batch
on DirectRunner, or ``--flink``: streaming on the embedded Flink, reading a fresh Kafka topic,
bounded by ``--max_num_records``) with the question-count check on (as deployments run it), and
prints attempts/s, questions/s and peak memory. Every run uses fresh ids. Needs ``make up``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from pipelines import assessment, job  # noqa: E402

T0 = 1_700_000_000_000


def seed(course: str, contents: list[str], questions: int) -> None:
    pipe = redis.Redis(port=6379, db=10).pipeline(transaction=False)
    pipe.sadd(f"{course}:{course}:leafnodes", *contents)
    pipe.execute()
    pipe = redis.Redis(port=6379, db=5).pipeline(transaction=False)
    for cid in contents:
        pipe.set(cid, json.dumps({"identifier": cid, "totalQuestions": questions}))
    pipe.execute()


def assess(qid: str, ets: int, rnd: random.Random) -> dict:
    score = rnd.choice((0, 0.5, 1))
    return {"eid": "ASSESS", "ets": ets, "ver": "3.1", "mid": f"ASSESS:{uuid.UUID(int=rnd.getrandbits(128))}",
            "actor": {"id": "bench", "type": "User"}, "object": {"id": "bench", "type": "Content", "ver": "1"},
            "edata": {"item": {"id": qid, "maxscore": 1, "type": "mcq", "exlength": 0, "uri": "", "mmc": [], "mc": [],
                               "title": f"Question {qid}?", "desc": "",
                               "params": [{"1": '{"text":"A"}'}, {"2": '{"text":"B"}'},
                                          {"answer": '{"correct":["1"]}'}]},
                      "index": 1, "pass": "Yes" if score == 1 else "No", "score": score,
                      "resvalues": [{"1": '{"text":"A"}'}], "duration": rnd.randint(1, 60)}}


def events(run: str, course: str, batch: str, contents: list[str], learners: list[str], n: int, questions: int,
           rnd: random.Random):
    for i in range(n):
        ts = T0 + i * 1000
        evs = [assess(f"bench-{run}-q{j}", ts - 1000 + j, rnd) for j in range(questions)]
        if rnd.random() < 0.2:
            evs.append(assess(f"bench-{run}-q0", ts - 1, rnd))  # a re-answered question
        yield {"assessmentTs": ts, "batchId": batch, "courseId": course, "userId": rnd.choice(learners),
               "attemptId": f"bench-{run}-a{i}", "contentId": rnd.choice(contents), "events": evs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attempts", type=int, default=10000)
    ap.add_argument("--questions", type=int, default=10)
    ap.add_argument("--contents", type=int, default=20, help="assessment contents in the course")
    ap.add_argument("--learners", type=int, default=2000)
    ap.add_argument("--batch_size", type=int, default=1000, help="threshold.batch.read.size")
    ap.add_argument("--shards", type=int, default=8, help="task.window.shards")
    ap.add_argument("--no_question_check", action="store_true", help="assessment.skip.missingRecords=false")
    ap.add_argument("--flink", action="store_true", help="streaming on FlinkRunner over Kafka instead of batch")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    run = uuid.uuid4().hex[:8]
    rnd = random.Random(a.seed)
    course, batch = f"bench-{run}-C", f"bench-{run}-B"
    contents = [f"bench-{run}-Q{i}" for i in range(a.contents)]
    learners = [f"bench-{run}-L{i}" for i in range(a.learners)]
    t0 = time.monotonic()
    seed(course, contents, a.questions)
    lines = [json.dumps(e) for e in events(run, course, batch, contents, learners, a.attempts, a.questions, rnd)]
    print(f"seeded a course of {a.contents} assessments; {a.attempts} attempts of {a.questions} questions "
          f"({sum(len(x) for x in lines) / 1e6:.0f} MB of JSON) in {time.monotonic() - t0:.1f}s")

    common = [f"--threshold_batch_read_size={a.batch_size}", f"--task_window_shards={a.shards}",
              f"--assessment_skip_missingrecords={'false' if a.no_question_check else 'true'}"]
    with tempfile.TemporaryDirectory() as tmp:
        if a.flink:
            from tests.e2e.kafka_helpers import create_topics, produce
            topic = f"bench.{run}.in"
            create_topics(topic, f"bench.{run}.out")
            produce(topic, [x.encode() for x in lines])
            argv = ["--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=2",
                    f"--kafka_input_topic={topic}", f"--kafka_output_certissue_topic=bench.{run}.out",
                    f"--kafka_failed_topic=bench.{run}.out", f"--kafka_groupid=bench-{run}",
                    "--kafka_auto_offset_reset=earliest", f"--max_num_records={a.attempts}", *common]
        else:
            path = Path(tmp) / "attempts.jsonl"
            with path.open("w") as f:
                for x in lines:
                    f.write(x + "\n")
            argv = ["--input", str(path), "--output_dir", str(Path(tmp) / "out"), *common]
        del lines
        t0 = time.monotonic()
        totals = job.run(assessment.build, argv, assessment.defaults, extra_groups=(assessment.AssessmentOptions,))
        secs = time.monotonic() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ns, sns = assessment.JOB_NAME, assessment.SCORE_NAMESPACE
    print(json.dumps({
        "mode": "flink-streaming" if a.flink else "direct-batch", "attempts": a.attempts,
        "questions_per_attempt": a.questions, "seconds": round(secs, 1),
        "attempts_per_sec": round(a.attempts / secs), "questions_per_sec": round(a.attempts * a.questions / secs),
        "peak_rss_mib_submitting_process": round(peak_mib),
        "attempts_written": totals.get(f"{ns}:batch-success-event-count", 0),
        "failed": totals.get(f"{ns}:failed-event-count", 0) + totals.get(f"{ns}:ignored-event-count", 0),
        "aggregates_updated": totals.get(f"{sns}:db-score-update-count", 0),
        "cert_requests": totals.get(f"{sns}:cert-issue-events-count", 0),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
