"""relation-cache-updater in batch mode (JSONL in) against the real Cassandra and Redis.

Each test inserts its own hierarchy rows (the sample course with ids prefixed by ``run_id``) and
removes its rows and Redis keys afterwards.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
from pathlib import Path

import apache_beam as beam
import pytest
import redis
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from cassandra.cluster import Cluster

from pipelines import job, relation_cache
from pipelines.io.cassandra import CassandraConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.options.relation_cache import RelationCacheSettings
from pipelines.transforms.relation_cache import SelectCollectionRequests, UpdateRelationCache

JOB = relation_cache.JOB_NAME
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "local" / "sample" / "relation-cache"
COLLECTION_MIME = "application/vnd.ekstep.content-collection"


def load_sample_module():
    spec = importlib.util.spec_from_file_location("relation_cache_sample_load", SAMPLE_DIR / "load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_course(prefix: str) -> tuple[str, dict]:
    """The sample course with every id prefixed: (course id, hierarchy dict)."""
    rows = load_sample_module().sample_hierarchies(prefix)
    (ident, text), = rows.items()
    return ident, json.loads(text)


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def request(identifier=None, action="post-publish-process", mime=COLLECTION_MIME, mid="m") -> dict:
    edata = {"action": action, "iteration": 1, "mimeType": mime, "contentType": "Course"}
    if identifier is not None:
        edata["identifier"] = identifier
    return {"eid": "BE_JOB_REQUEST", "mid": mid, "ets": 1735689600000,
            "actor": {"id": "Post Publish Processor", "type": "System"}, "edata": edata}


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_batch(tmp_path: Path, name: str, lines: list, *flags: str) -> tuple[dict[str, int], list[dict]]:
    inp = write_jsonl(tmp_path / f"{name}.jsonl", lines)
    out = tmp_path / f"out-{name}"
    totals = job.run(relation_cache.build, ["--input", str(inp), "--output_dir", str(out), *flags],
                     relation_cache.defaults())
    return totals, read_jsonl(out / "local.relation.cache.failed.jsonl")


def redis_snapshot(db: redis.Redis, prefix: str) -> dict:
    """Every key starting with ``prefix`` (and its key index): type, value and TTL."""
    snap = {}
    for pattern in (f"{prefix}*", f"{relation_cache.KEY_INDEX_PREFIX}{prefix}*"):
        for key in db.scan_iter(match=pattern, count=1000):
            kind = db.type(key).decode()
            value = sorted(m.decode() for m in db.smembers(key)) if kind == "set" else db.get(key).decode()
            snap[key.decode()] = (kind, value, db.ttl(key))
    return snap


class Stores:
    """Hierarchy rows and Redis keys one test writes, removed at teardown."""

    def __init__(self, port_cql: int, port_redis: int):
        self.cluster = Cluster(["127.0.0.1"], port=port_cql)
        self.session = self.cluster.connect()
        self.relation = redis.Redis(port=port_redis, db=10)
        self.collection = redis.Redis(port=port_redis, db=5)
        self.rows: list[tuple[str, str]] = []
        self.prefixes: list[str] = []

    def put(self, identifier: str, hierarchy, keyspace: str = "dev_hierarchy_store") -> None:
        text = hierarchy if isinstance(hierarchy, str) or hierarchy is None else compact(hierarchy)
        self.session.execute(f"INSERT INTO {keyspace}.content_hierarchy (identifier, hierarchy) VALUES (%s, %s)",
                             (identifier, text))
        self.rows.append((keyspace, identifier))

    def cleanup(self) -> None:
        for keyspace, identifier in self.rows:
            self.session.execute(f"DELETE FROM {keyspace}.content_hierarchy WHERE identifier = %s", (identifier,))
        for prefix in self.prefixes:
            for db in (self.relation, self.collection):
                for key in list(redis_snapshot(db, prefix)):
                    db.delete(key)
        self.cluster.shutdown()


@pytest.fixture
def stores(stack, run_id):
    s = Stores(stack["cassandra"], stack["redis"])
    s.prefixes.append(run_id)
    yield s
    s.cleanup()


def expected_relation_keys(c: str, p: str) -> dict[str, list[str]]:
    """The sample course's relation cache, written out by hand (``p`` = id prefix)."""
    def ids(*names):
        return sorted(f"{p}_do_rc_{n}" for n in names)

    return {
        f"{c}:{c}:leafnodes": ids("res_a", "res_b", "res_c", "res_d", "res_e"),
        f"{c}:{p}_do_rc_unit_1:leafnodes": ids("res_a", "res_b", "res_c"),
        f"{c}:{p}_do_rc_unit_1_1:leafnodes": ids("res_a", "res_c"),
        f"{c}:{p}_do_rc_unit_2:leafnodes": ids("res_d"),
        f"{c}:{c}:optionalnodes": ids("res_b", "unit_2"),
        f"{c}:{p}_do_rc_unit_1:optionalnodes": ids("res_b"),
        f"{c}:{p}_do_rc_unit_2:optionalnodes": ids("res_d"),
        f"{c}:{p}_do_rc_res_a:ancestors": ids("unit_1_1", "unit_1", "course_1"),
        f"{c}:{p}_do_rc_res_b:ancestors": ids("unit_1", "course_1"),
        f"{c}:{p}_do_rc_res_c:ancestors": ids("unit_1_1", "unit_1", "course_1"),
        f"{c}:{p}_do_rc_res_d:ancestors": ids("unit_2", "course_1"),
        f"{c}:{p}_do_rc_res_e:ancestors": ids("course_1"),
    }


def find_unit(node: dict, ident: str) -> dict | None:
    if node.get("identifier") == ident:
        return node
    for kid in node.get("children") or []:
        found = find_unit(kid, ident)
        if found:
            return found
    return None


def test_batch_run_writes_every_key_and_dead_letters_bad_input(stores, tmp_path, run_id):
    course, hierarchy = sample_course(run_id)
    small, only = f"{run_id}_do_small", f"{run_id}_do_only"
    stores.put(course, hierarchy)
    stores.put(small, {"identifier": small, "mimeType": COLLECTION_MIME, "visibility": "Default",
                       "children": [{"identifier": only, "mimeType": "video/mp4"}]})
    stores.put(f"{run_id}_do_broken", '{"identifier": "x", "children": [')
    lines = [
        request(course, mid="ok-1"),
        request(small, action="relation-cache-update", mid="ok-2"),
        request(course, action="publish", mid="skip-action"),             # another consumer's event
        request(f"{run_id}_do_rc_res_a", mime="application/pdf", mid="skip-pdf"),
        "not json at all",
        request(None, mid="no-identifier"),
        request(f"{run_id}_do_missing", mid="missing-hierarchy"),
        request(f"{run_id}_do_broken", mid="broken-hierarchy"),
    ]
    totals, failed = run_batch(tmp_path, "first", lines)

    # Relation cache: every key, as a Redis set, members exactly, no expiry.
    snap = redis_snapshot(stores.relation, run_id)
    index = f"{relation_cache.KEY_INDEX_PREFIX}{course}"
    expected = expected_relation_keys(course, run_id)
    course_keys = {k: v for k, v in snap.items() if k.startswith(f"{course}:")}
    assert set(course_keys) == set(expected)
    for key, members in expected.items():
        assert snap[key] == ("set", members, -1), key
    assert snap[index] == ("set", sorted(expected), -1), "the key index lists exactly the keys written"
    assert snap[f"{small}:{small}:leafnodes"] == ("set", [only], -1)
    assert snap[f"{small}:{only}:ancestors"] == ("set", [small], -1)
    assert set(snap) == {*expected, index, f"{small}:{small}:leafnodes", f"{small}:{only}:ancestors",
                         f"{relation_cache.KEY_INDEX_PREFIX}{small}"}

    # Collection cache: Parent units with children, the unit subtree as compact JSON, no expiry.
    units = redis_snapshot(stores.collection, run_id)
    names = [f"{run_id}_do_rc_unit_1", f"{run_id}_do_rc_unit_1_1", f"{run_id}_do_rc_unit_2"]
    assert set(units) == set(names), "no root, no childless Parent unit, nothing for the small collection"
    for name in names:
        kind, text, ttl = units[name]
        assert (kind, ttl) == ("string", -1)
        assert text == compact(find_unit(hierarchy, name)), name
    assert '"size":1048576.0' in units[names[0]][1], "doubles written as the reference's Jackson does"

    # Failed output: one record per bad input, with its stage and reason, the event kept whole.
    by_stage = {f["failInfo"]["stage"]: f for f in failed}
    assert sorted(by_stage) == ["hierarchy", "parse", "read", "validate"]
    assert by_stage["parse"]["raw"] == "not json at all"
    assert by_stage["validate"]["mid"] == "no-identifier"
    assert by_stage["validate"]["failInfo"]["error"] == "missing or blank edata.identifier"
    assert by_stage["read"]["mid"] == "missing-hierarchy"
    assert by_stage["read"]["failInfo"]["error"].startswith("hierarchy not found: no row in "
                                                            "dev_hierarchy_store.content_hierarchy")
    assert by_stage["hierarchy"]["mid"] == "broken-hierarchy"
    assert "malformed hierarchy JSON" in by_stage["hierarchy"]["failInfo"]["error"]
    assert all(f["jobName"] == JOB and f["metadata"]["validation_error"] == f["failInfo"]["error"] for f in failed)
    assert by_stage["read"]["edata"] == lines[6]["edata"]

    # Metrics under the reference names; every input is processed, skipped or failed.
    assert totals[f"{JOB}:total-events-count"] == len(lines)
    assert totals[f"{JOB}:success-events-count"] == 2
    assert totals[f"{JOB}:skipped-event-count"] == 2
    assert totals[f"{JOB}:skipped-action-count"] == 1
    assert totals[f"{JOB}:skipped-mimetype-count"] == 1
    assert totals[f"{JOB}:failed-events-count"] == len(failed) == 4
    assert (totals[f"{JOB}:success-events-count"] + totals[f"{JOB}:skipped-event-count"]
            + totals[f"{JOB}:failed-events-count"]) == len(lines)
    assert totals[f"{JOB}:db-read-count"] == 4
    assert totals[f"{JOB}:cache-write-count"] == len(expected) + len(names) + 2


def test_replay_is_identical_and_a_republish_removes_stale_keys(stores, tmp_path, run_id):
    course, hierarchy = sample_course(run_id)
    stores.put(course, hierarchy, keyspace="hierarchy_store")
    flags = ("--lms_cassandra_keyspace", "hierarchy_store")
    lines = [request(course, mid="a"), request(course, action="relation-cache-update", mid="b")]

    totals, failed = run_batch(tmp_path, "first", lines, *flags)
    assert failed == [] and totals[f"{JOB}:success-events-count"] == 2
    first = (redis_snapshot(stores.relation, run_id), redis_snapshot(stores.collection, run_id))
    assert len(first[0]) == 13 and len(first[1]) == 3

    totals, failed = run_batch(tmp_path, "replay", lines, *flags)
    assert failed == [] and totals[f"{JOB}:success-events-count"] == 2
    assert (redis_snapshot(stores.relation, run_id), redis_snapshot(stores.collection, run_id)) == first
    assert totals.get(f"{JOB}:cache-stale-key-delete-count", 0) == 0

    # Republished without unit 2 and the course's last content.
    republished = copy.deepcopy(hierarchy)
    republished["children"] = [k for k in republished["children"]
                               if k["identifier"] not in (f"{run_id}_do_rc_unit_2", f"{run_id}_do_rc_res_e")]
    republished["leafNodes"] = [f"{run_id}_do_rc_res_{x}" for x in "abc"]
    stores.put(course, republished, keyspace="hierarchy_store")
    totals, failed = run_batch(tmp_path, "republish", lines[:1], *flags)
    assert failed == []
    after = redis_snapshot(stores.relation, run_id)
    expected = expected_relation_keys(course, run_id)
    gone = {f"{course}:{run_id}_do_rc_unit_2:leafnodes", f"{course}:{run_id}_do_rc_unit_2:optionalnodes",
            f"{course}:{run_id}_do_rc_res_d:ancestors", f"{course}:{run_id}_do_rc_res_e:ancestors"}
    assert set(after) == (set(expected) - gone) | {f"{relation_cache.KEY_INDEX_PREFIX}{course}"}
    assert after[f"{course}:{course}:optionalnodes"] == ("set", [f"{run_id}_do_rc_res_b"], -1)
    assert after[f"{course}:{course}:leafnodes"][1] == sorted(republished["leafNodes"])
    assert totals[f"{JOB}:cache-stale-key-delete-count"] == len(gone)
    # The collection cache is shared by content id and never pruned (see the module docstring).
    assert f"{run_id}_do_rc_unit_2" in redis_snapshot(stores.collection, run_id)


@pytest.mark.parametrize("flag,stage,reason", [
    ("--redis_port=1", "write", "redis write failed"),
    ("--dp_redis_port=1", "write", "redis write failed"),
    ("--lms_cassandra_port=1", "read", "cassandra read of dev_hierarchy_store.content_hierarchy failed"),
])
def test_store_faults_are_retried_then_dead_lettered(stores, tmp_path, run_id, flag, stage, reason):
    course, hierarchy = sample_course(run_id)
    stores.put(course, hierarchy)
    totals, failed = run_batch(tmp_path, "down", [request(course, mid="x")], flag)
    assert len(failed) == 1 and failed[0]["mid"] == "x"
    assert failed[0]["failInfo"]["stage"] == stage
    assert failed[0]["failInfo"]["error"].startswith(reason)
    assert totals[f"{JOB}:failed-events-count"] == 1
    assert totals.get(f"{JOB}:success-events-count", 0) == 0


def test_the_composites_select_requests_and_rewrite_the_caches_against_the_real_stores(stores, run_id):
    """``SelectCollectionRequests`` and ``UpdateRelationCache`` on their own (``TestPipeline`` +
    ``assert_that``): requests are keyed by collection id, other traffic is skipped, and a
    cached collection's keys are exactly the sample course's; a missing hierarchy fails alone."""
    course, hierarchy = sample_course(run_id)
    stores.put(course, hierarchy)
    missing = f"{run_id}_do_missing"
    settings = RelationCacheSettings(
        job_name=JOB, cassandra=CassandraConfig(hosts=("127.0.0.1",), keyspace="dev_hierarchy_store",
                                                consistency="ONE"),
        table="content_hierarchy", relation=RedisConfig(db=10), collection=RedisConfig(db=5))
    events = [request(course, mid="ok"), request(course, action="publish", mid="other"),
              request(missing, mid="missing")]
    with TestPipeline() as p:
        requests, invalid = p | beam.Create(events) | SelectCollectionRequests(JOB)
        assert_that(requests | "Ids" >> beam.Map(lambda r: (r[0], r[1]["mid"])),
                    equal_to([(course, "ok"), (missing, "missing")]), label="requests")
        assert_that(invalid, equal_to([]), label="invalid")
        done, failed = requests | UpdateRelationCache(settings)
        assert_that(done, equal_to([course]), label="done")
        assert_that(failed | "Stages" >> beam.Map(lambda f: (f["mid"], f["failInfo"]["stage"])),
                    equal_to([("missing", "read")]), label="failed")
    expected = expected_relation_keys(course, run_id)
    snap = redis_snapshot(stores.relation, run_id)
    assert {k: v for k, v in snap.items() if k.startswith(f"{course}:")} == \
        {k: ("set", members, -1) for k, members in expected.items()}


def test_an_adversarial_corpus_never_crashes_and_every_input_is_counted_once(stores, tmp_path, run_id):
    """Issue 12: 220 generated inputs (wrong types, huge, unicode, injection strings, unparsable;
    a few real collections among them): no crash, success + skipped + failed = input, one failed
    record per failed event, strict JSON out."""
    rnd = random.Random(5)
    odd = [None, "", " ", 7, 1.5, True, [], {}, ["a"], {"a": 1}, "x" * 70_000, "é中😀", "a'b\"c",
           "'; DROP TABLE content_hierarchy; --", "\x00", 10**40, "{}", "null"]
    small = f"{run_id}_do_small"
    stores.put(small, {"identifier": small, "mimeType": COLLECTION_MIME,
                       "children": [{"identifier": f"{run_id}_do_leaf", "mimeType": "video/mp4"}]})
    lines: list = []
    for i in range(220):
        edata = {"action": rnd.choice(["post-publish-process", "relation-cache-update", rnd.choice(odd)]),
                 "mimeType": rnd.choice([COLLECTION_MIME, COLLECTION_MIME.upper(), rnd.choice(odd)]),
                 "identifier": rnd.choice([small, f"{run_id}_do_{i}", rnd.choice(odd)])}
        ev = {"eid": "BE_JOB_REQUEST", "mid": f"m{i}", "edata": rnd.choice([edata, edata, rnd.choice(odd)])}
        lines.append(rnd.choice(["{bad", "[1]", "", "null"]) if i % 9 == 0 else ev)
    totals, failed = run_batch(tmp_path, "adversarial", lines)
    counts = [totals.get(f"{JOB}:{k}", 0) for k in ("success-events-count", "skipped-event-count",
                                                     "failed-events-count")]
    assert sum(counts) == len(lines) == totals[f"{JOB}:total-events-count"], counts
    assert counts[0] > 0 and counts[1] > 0, "the corpus reaches every outcome"
    assert len(failed) == counts[2], "one failed record per failed event"
    assert all(f["failInfo"]["error"] for f in failed)
    text = (tmp_path / "out-adversarial" / "local.relation.cache.failed.jsonl").read_text()
    for line in text.splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_a_change_is_detected_against_the_cache_the_rewrite_replaces(stores, run_id, monkeypatch):
    """Two rewrites of one course race: the second commits between the first one's read of the old
    sets and its EXEC. The first then aborts (WATCH) and runs again on what the second wrote, so
    it compares against the cache it really replaces: one marker for one change, not two."""
    from pipelines.domain.cache_keys import recompute_pending_key
    from pipelines.domain.hierarchy import cache_entries
    from pipelines.transforms import relation_cache as rc

    course, hierarchy = sample_course(run_id)
    changed = copy.deepcopy(hierarchy)
    changed["leafNodes"] = [*hierarchy["leafNodes"], f"{run_id}_do_rc_new"]
    v1, v2 = cache_entries(course, hierarchy).sets, cache_entries(course, changed).sets
    client = redis.Redis(port=stores.relation.connection_pool.connection_kwargs["port"], db=10)
    marker = recompute_pending_key(course)
    assert rc.rewrite_relation_cache(client, course, v1, "t1") == rc.Rewrite(0, True), "first publish"
    stores.relation.delete(marker)

    real, calls = rc._old_required, []

    def racing(*args):
        calls.append(1)
        if len(calls) == 1:  # another worker rewrites the course to the same new tree right now
            assert rc.rewrite_relation_cache(redis.Redis(port=client.connection_pool.connection_kwargs["port"],
                                                         db=10), course, v2, "t-other").changed
        return real(*args)

    monkeypatch.setattr(rc, "_old_required", racing)
    result = rc.rewrite_relation_cache(client, course, v2, "t-mine")
    assert len(calls) == 3, "the first attempt was aborted by the concurrent EXEC and ran again"
    assert result == rc.Rewrite(0, False), "compared with what the other rewrite wrote: no change"
    assert stores.relation.get(marker) == b"t-other", "one marker, the other rewrite's"
    stores.relation.delete(marker)
