"""Issue 12: an adversarial corpus through activity-aggregate-updater and enrolment-reconciliation.

Several hundred generated inputs of our own (wrong types, missing, empty and huge fields, unicode,
deep nesting, injection strings, raw non-events) mixed with good events for a real course: no
crash, strict JSON out, failed records keep the original event, each event fails at most once,
and the counters add up: lines = parse failures + total, total = valid + skipped + validation
failures, failed records = failed-events-count.
"""

from __future__ import annotations

import json
import random

import pytest

from pipelines import activity, enrolment_sync
from tests.batch_runs import run_job
from tests.progress_data import seed_course

HOSTILE_STRINGS = ["", " ", "\u0000", "x" * 5000, "🎓✓ünïcødé", "' OR 1=1 --", "\"; DROP TABLE x; --",
                   "<script>alert(1)</script>", "${jndi:ldap://x}", "../../etc/passwd", "%00", "\\", "null"]
MISSING = object()
HOSTILE_VALUES = [MISSING, None, 0, -1, 2.5, True, [], {}, ["a"], {"a": 1}, 10**30, *HOSTILE_STRINGS]


def deep(n: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(n):
        value = {"d": value}
    return value


def corpus(c: dict, run_id: str, action: str) -> list:
    """Events for ``action`` with one field made hostile at a time, plus raw junk and good events."""
    rnd = random.Random(run_id)
    good_edata = {"action": action, "userId": c["user"], "courseId": c["course"], "batchId": c["batch"],
                  "contents": [{"contentId": "c1", "status": 2}]}
    out: list = []
    n = 0
    for field in ("action", "userId", "courseId", "batchId", "contents"):
        for value in HOSTILE_VALUES:
            n += 1
            edata = dict(good_edata)
            if value is MISSING:
                edata.pop(field)
            else:
                edata[field] = value
            out.append({"eid": "BE_JOB_REQUEST", "mid": f"{run_id}-h{n}", "edata": edata})
    for value in HOSTILE_VALUES[1:]:
        n += 1
        out.append({"eid": "BE_JOB_REQUEST", "mid": f"{run_id}-c{n}",
                    "edata": {**good_edata, "contents": [{"contentId": value, "status": 2},
                                                         {"contentId": "c2", "status": value}]}})
    for value in HOSTILE_VALUES[1:]:
        n += 1
        out.append({"eid": "BE_JOB_REQUEST", "mid": f"{run_id}-e{n}", "edata": value})
    out += [{"mid": f"{run_id}-deep", "edata": deep(70)}, {"mid": f"{run_id}-deep2", "edata": deep(40)},
            "{not json", "[1,2,3]", '"text"', "", "{\"mid\": \"x\\ud800\"}", "{\"n\": 1e999999}", "null",
            json.dumps({"mid": f"{run_id}-nan", "edata": {"action": action}}).replace("}", ", \"x\": NaN}", 1)]
    for i in range(40):
        n += 1
        out.append({"eid": "BE_JOB_REQUEST", "mid": f"{run_id}-ok{i}",
                    "edata": {**good_edata, "contents": [{"contentId": rnd.choice(["c1", "c2", "c3", "opt"]),
                                                          "status": rnd.choice([1, 2])}]}})
    rnd.shuffle(out)
    return out


def strict_lines(out, topic: str) -> list[dict]:
    path = out / f"local.{topic}.jsonl"
    if not path.exists():
        return []
    reject = lambda c: pytest.fail(f"non-strict JSON constant {c}")  # noqa: E731
    return [json.loads(text, parse_constant=reject) for text in path.read_text().splitlines()]


@pytest.mark.parametrize("module, action, failed_topic", [
    (activity, "batch-enrolment-update", "activity.agg.failed"),
    (enrolment_sync, "user-enrolment-sync", "enrolment.reconciliation.failed"),
])
def test_an_adversarial_corpus_never_crashes_and_counts_add_up(stack, cql, tmp_path, run_id, module, action,
                                                               failed_topic):
    c = seed_course(stack["redis"], cql, run_id)
    lines = corpus(c, run_id, action)
    assert len(lines) >= 200
    totals, out = run_job(module, tmp_path, "corpus", lines)
    failed = strict_lines(out, failed_topic)
    for topic in ("telemetry.raw", "issue.certificate.request"):
        strict_lines(out, topic)

    parse_failed = [f for f in failed if f["failInfo"].get("stage") == "parse"]
    assert totals["total-events-count"] + len(parse_failed) == len(lines), "every line is read once"
    valid = totals.get("batch-enrolment-update-count", 0) if module is activity else (
        totals["total-events-count"] - totals["skipped-events-count"]
        - sum(1 for f in failed if f["failInfo"].get("stage") == "validate"))
    validation_failed = sum(1 for f in failed if f["failInfo"].get("stage") == "validate")
    assert valid + totals["skipped-events-count"] + validation_failed == totals["total-events-count"]
    assert len(failed) == totals["failed-events-count"], "one counter tick per failed record"
    mids = [f.get("mid") for f in failed if "mid" in f]
    assert len(mids) == len(set(mids)), "an event fails at most once"
    assert all(f["failInfo"]["error"] for f in failed)
    kept = {json.dumps(x, sort_keys=True) for x in lines if isinstance(x, dict)}
    for f in failed:
        if "raw" in f:
            continue
        original = {k: v for k, v in f.items() if k not in ("jobName", "failInfo", "flags", "metadata")}
        assert json.dumps(original, sort_keys=True) in kept, f"original event kept whole: {f['failInfo']}"
    edatas = [f["edata"] for f in failed if isinstance(f.get("edata"), dict)]
    assert any("userId" in e and e["userId"] is None for e in edatas), "null-valued keys of the event are kept"
    assert totals["processed-enrolment-count"] >= 1, "the good events of the real course went through"
    status = cql.execute("SELECT status FROM user_enrolments WHERE userid=%s AND courseid=%s AND batchid=%s",
                         (c["user"], c["course"], c["batch"])).one().status
    assert status in (1, 2)
