"""Hostile input for both certificate jobs (issue 12): 200+ generated events each, built from a
valid event by replacing one field at a time with a wrong type, a missing/empty/huge value,
unicode, deep nesting or an injection string, plus raw lines that are not events. Run on
DirectRunner against the real Cassandra and Sunbird emulator.

Each run must finish, account for every input exactly once (success + skipped + failed =
input records), keep the original event whole on the failed output, write strict JSON only,
and issue at most one certificate for the one real learner.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

from pipelines import cert_generate, cert_preprocess
from pipelines.domain.javafmt import drop_nulls
from tests.pipeline.test_cert_jobs import issue_request, preprocess, rc_creates, run, seed

DEEP: dict = {}
_node = DEEP
for _ in range(80):
    _node["x"] = {}
    _node = _node["x"]

HOSTILE = [None, "", " ", 0, -1, 1.5e308, True, [], {}, ["a", 1, None], {"eq": "x"}, "x" * 100_000,
           "Zoë 🎓 \u202eevil\u202c ☃", "\x00\x01\x7f", "\\x00", "'; DROP TABLE user_enrolments; --",
           "<script>alert(1)</script>", "../../etc/passwd", "${jndi:ldap://x/a}", "a/b?fields=x#frag", "%00%2F",
           DEEP, [[[[[[[[[["deep"]]]]]]]]]]]
RAW = ["{broken", "[]", "42", "null", '"text"', "", "{\"a\": NaN}", "\"\\ud800\"",
       json.dumps(DEEP), "{" * 10_000]


def set_path(event: dict, path: tuple, value) -> dict:
    """``event`` with the field at ``path`` replaced (or removed); unchanged where the path is gone."""
    out = copy.deepcopy(event)
    node = out
    try:
        for key in path[:-1]:
            node = node[key]
        if value is _MISSING:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    except (TypeError, KeyError, IndexError, AttributeError):
        pass
    return out


_MISSING = object()


def corpus(base: dict, paths: list[tuple], run_id: str, n_min: int = 200) -> list:
    """One event per (path, hostile value), each with its own mid, plus the raw lines."""
    rng = random.Random(12)
    events = []
    for path in paths:
        for value in [*HOSTILE, _MISSING]:
            events.append(set_path(base, path, value))
    while len(events) < n_min:  # two fields at once
        a, b = rng.sample(paths, 2)
        events.append(set_path(set_path(base, a, rng.choice(HOSTILE)), b, rng.choice(HOSTILE)))
    for i, ev in enumerate(events):
        ev["mid"] = f"{run_id}-{i}"
    return [*events, *RAW]


def strict_lines(out: Path) -> dict[str, list[dict]]:
    def reject(name):
        raise ValueError(f"non-strict JSON constant {name}")

    topics = {}
    for path in out.glob("*.jsonl"):
        text = path.read_bytes().decode("utf-8")  # strict UTF-8 too
        topics[path.name] = [json.loads(line, parse_constant=reject) for line in text.splitlines() if line]
    return topics


def assert_failed_keep_events(failed: list[dict], inputs: list) -> None:
    by_mid = {e["mid"]: e for e in inputs if isinstance(e, dict)}
    for f in failed:
        assert str((f.get("failInfo") or {}).get("error") or "").strip(), f
        if "raw" in f and f.get("mid") is None:
            continue
        original = by_mid[f["mid"]]
        # Compared without null-valued keys: whether the failed record keeps them is the shared
        # failure record's rule (issue 12), not this family's.
        kept = {k: v for k, v in f.items() if k in original and k not in ("metadata", "flags")}
        assert drop_nulls(kept) == drop_nulls({k: v for k, v in original.items() if k not in ("metadata", "flags")})


def test_preprocess_hostile_corpus(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"a": {}})
    base = issue_request(c, "a")
    paths = [("edata",), ("edata", "action"), ("edata", "userIds"), ("edata", "batchId"), ("edata", "courseId"),
             ("edata", "reIssue"), ("eid",), ("object",)]
    inputs = corpus(base, paths, run_id)
    assert len(inputs) >= 200
    totals, out = run(cert_preprocess, tmp_path, "corpus", inputs)
    topics = strict_lines(out)
    failed = topics.get("local.issue.certificate.failed.jsonl", [])
    generated = topics.get("local.generate.certificate.request.jsonl", [])
    assert totals.get("success-events-count", 0) + totals.get("skipped-event-count", 0) + \
        totals["failed-events-count"] == len(inputs)
    assert len(failed) == totals["failed-events-count"]
    assert len(generated) == totals.get("generate-certificate-events-count", 0) >= 1
    assert {g["edata"]["userId"] for g in generated} == {c["uid"]("a")}
    assert_failed_keep_events(failed, inputs)


def test_generate_hostile_corpus(cql, tmp_path, run_id):
    c = seed(cql, run_id, {"a": {}})
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    base = gen[0]
    paths = [("edata", "name"), ("edata", "data"), ("edata", "templateId"), ("edata", "oldId"),
             ("edata", "issuer"), ("edata", "signatoryList"), ("edata", "tag"), ("edata", "basePath"),
             ("edata", "related"), ("edata", "userId"), ("edata", "courseName")]
    inputs = corpus(base, paths, run_id)
    data0 = [("edata", "data", 0, "recipientName"), ("edata", "data", 0, "recipientId")]
    extra = [set_path(base, p, v) for p in data0 for v in HOSTILE]
    for i, ev in enumerate(extra):
        ev["mid"] = f"{run_id}-x{i}"
    inputs = [*extra, *inputs]
    totals, out = run(cert_generate, tmp_path, "corpus", inputs)
    topics = strict_lines(out)
    failed = topics.get("local.generate.certificate.failed.jsonl", [])
    assert totals.get("success-events-count", 0) + totals.get("skipped-event-count", 0) + \
        totals["failed-events-count"] == len(inputs)
    assert len(failed) == totals["failed-events-count"] + totals.get("failed-notification-count", 0)
    assert_failed_keep_events(failed, inputs)
    assert len(rc_creates(c["uid"]("a"))) <= 1
    audit = topics.get("local.telemetry.raw.jsonl", [])
    assert len(audit) == totals.get("success-events-count", 0) <= 1


def test_overflowing_number_is_strict_json_on_the_failed_output(tmp_path):
    totals, out = run(cert_generate, tmp_path, "overflow", ['{"a": 1e999999}'])
    assert totals["failed-events-count"] == 1
    strict_lines(out)
