"""Recompute on republish against the real Cassandra and Redis (DirectRunner, JSONL in and out).

relation-cache-updater rewrites a course and, when its required contents changed, sends a
``user-enrolment-sync`` request per enrolment; enrolment-reconciliation then recomputes them.
Each test publishes its own course (ids prefixed by ``run_id``) and removes its hierarchy rows
and Redis keys afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import enrolment_sync, relation_cache
from pipelines.domain.cache_keys import recompute_pending_key
from pipelines.domain.progress import EnrolmentKey, sync_request
from pipelines.io.cassandra import CassandraConfig
from pipelines.io.redis_store import RedisConfig
from pipelines.options.relation_cache import RecomputeSettings
from pipelines.transforms.course_changes import ClearRecomputeMarkers, RecomputeChangedCourses
from tests.batch_runs import read_topic, run_job
from tests.pipeline.test_relation_cache import COLLECTION_MIME, Stores, request

JOB = relation_cache.JOB_NAME
SYNC_TOPIC = "batch.enrolment.sync.request"


def content(ident: str, optional: bool = False) -> dict:
    node = {"identifier": ident, "mimeType": "video/mp4", "visibility": "Default"}
    if optional:
        node["relationalMetadata"] = {"optional": True}
    return node


def tree(course: str, units: dict[str, list[dict]]) -> dict:
    """A course whose units hold the given contents (no stored leafNodes: composed from children)."""
    return {"identifier": course, "mimeType": COLLECTION_MIME, "visibility": "Default", "contentType": "Course",
            "children": [{"identifier": unit, "mimeType": COLLECTION_MIME, "visibility": "Parent",
                          "children": kids} for unit, kids in units.items()]}


class Course:
    """A published course with four learners in two batches, and their stored consumption.

    ``done`` completed c1 c2 c3 (enrolment completed), ``partial`` completed c1 and the optional
    ``opt``, ``almost`` and ``almost2`` (the second batch) completed c1 and c2. The ``done``
    learner is also enrolled in another course, which no request may name.
    """

    def __init__(self, stores: Stores, cql, run_id: str):
        self.stores, self.cql, p = stores, cql, run_id
        self.id, self.batch, self.other = f"{p}_do_course", f"{p}-B", f"{p}_do_other"
        self.batches = {"done": self.batch, "partial": self.batch, "almost": self.batch, "almost2": f"{p}-B2"}
        self.u1, self.u2 = f"{p}_do_u1", f"{p}_do_u2"
        self.c = {n: f"{p}_do_{n}" for n in ("c1", "c2", "c3", "c4", "opt")}
        self.users = {n: f"{p}-{n}" for n in self.batches}
        for batch in set(self.batches.values()):
            cql.execute("INSERT INTO course_batch (courseid, batchid, status) VALUES (%s, %s, 1)", (self.id, batch))
        completed = {"done": ("c1", "c2", "c3"), "partial": ("c1", "opt"), "almost": ("c1", "c2"),
                     "almost2": ("c1", "c2")}
        for name, user in self.users.items():
            is_done, batch = name == "done", self.batches[name]
            cql.execute("INSERT INTO user_enrolments (userid, courseid, batchid, status, progress, contentstatus, "
                        "completedon, active) VALUES (%s, %s, %s, %s, %s, %s, %s, true)",
                        (user, self.id, batch, 2 if is_done else 1, len(completed[name]),
                         {self.c[n]: 2 for n in completed[name]},
                         datetime(2026, 1, 1, tzinfo=UTC) if is_done else None))
            for n in completed[name]:
                cql.execute("INSERT INTO user_content_consumption (userid, courseid, batchid, contentid, status, "
                            "viewcount, completedcount) VALUES (%s, %s, %s, %s, 2, 1, 1)",
                            (user, self.id, batch, self.c[n]))
        cql.execute("INSERT INTO user_enrolments (userid, courseid, batchid, status, active) "
                    "VALUES (%s, %s, %s, 1, true)", (self.users["done"], self.other, self.batch))

    def publish(self, units: dict[str, list[str]]) -> None:
        """Stores the hierarchy: unit -> content names (``opt*`` marks the optional content)."""
        self.stores.put(self.id, tree(self.id, {
            unit: [content(self.c[n.rstrip("*")], optional=n.endswith("*")) for n in names]
            for unit, names in units.items()}))

    def v1(self) -> None:
        self.publish({self.u1: ["c1", "c2"], self.u2: ["c3", "opt*"]})

    def enrolment(self, name: str):
        return self.cql.execute("SELECT status, progress, contentstatus, completedon FROM user_enrolments "
                                "WHERE userid = %s AND courseid = %s AND batchid = %s",
                                (self.users[name], self.id, self.batches[name])).one()

    def requests(self, *names: str) -> list[dict]:
        names = names or tuple(self.users)
        return sorted((sync_request(EnrolmentKey(self.users[n], self.id, self.batches[n])) for n in names),
                      key=lambda r: r["edata"]["userId"])


def by_user(requests: list[dict]) -> list[dict]:
    return sorted(requests, key=lambda r: r["edata"]["userId"])


def republish(tmp_path, name: str, c: Course, *flags: str) -> tuple[dict, list[dict], list[dict]]:
    """One relation-cache-updater batch run over a publish event of the course: its counters, the
    recompute requests it wrote and its failed records."""
    totals, out = run_job(relation_cache, tmp_path, name, [request(c.id, mid=f"publish-{name}")], *flags)
    return (totals, by_user(read_topic(out, SYNC_TOPIC, missing_ok=True)),
            read_topic(out, "relation.cache.failed", missing_ok=True))


def recompute(tmp_path, name: str, requests: list[dict]) -> tuple[dict, list[dict], list[dict]]:
    """One enrolment-reconciliation batch run over the requests: counters, certificate requests,
    enrol-complete audit events."""
    totals, out = run_job(enrolment_sync, tmp_path, name, requests)
    audit = [e for e in read_topic(out, "telemetry.raw", missing_ok=True) if e["edata"]["type"] == "enrol-complete"]
    return totals, read_topic(out, "issue.certificate.request", missing_ok=True), audit


@pytest.fixture
def stores(stack, run_id):
    s = Stores(stack["cassandra"], stack["redis"])
    s.prefixes.append(run_id)
    yield s
    s.relation.delete(recompute_pending_key(f"{run_id}_do_course"))
    s.cleanup()


@pytest.fixture
def course(stores, cql, run_id) -> Course:
    c = Course(stores, cql, run_id)
    c.v1()
    return c


def test_progress_follows_the_course_through_republishes_and_replays(course, stores, tmp_path):
    c = course
    # First publish: nothing was cached, so the required contents changed from none (a lost cache
    # looks the same): every enrolment of the course is re-requested, the other course's is not.
    totals, sent, failed = republish(tmp_path, "v1", c)
    assert failed == []
    assert sent == c.requests()
    assert (totals["course-changed-count"], totals["recompute-course-count"], totals["recompute-request-count"],
            totals["recompute-marker-cleared-count"]) == (1, 1, 4, 1)
    assert stores.relation.get(recompute_pending_key(c.id)) is None, "the marker is cleared once written"
    _, certs, _ = recompute(tmp_path, "sync-v1", sent)
    assert certs == []

    # Unchanged republish: nothing is sent.
    totals, sent, failed = republish(tmp_path, "same", c)
    assert (sent, failed) == ([], [])
    assert totals.get("course-changed-count", 0) == 0 and totals.get("recompute-request-count", 0) == 0
    assert totals["success-events-count"] == 1

    # Add a leaf (c4) and make the optional content required: finished learners are not lowered,
    # in-progress learners' totals change.
    c.publish({c.u1: ["c1", "c2"], c.u2: ["c3", "opt", "c4"]})
    totals, sent, _ = republish(tmp_path, "v2", c)
    assert sent == c.requests()
    _, certs, completions = recompute(tmp_path, "sync-v2", sent)
    assert (certs, completions) == ([], [])
    done = c.enrolment("done")
    assert (done.status, done.progress) == (2, 3), "a completed enrolment is never lowered"
    partial = c.enrolment("partial")
    assert (partial.status, partial.progress) == (1, 2), "opt now counts"
    assert c.enrolment("almost").status == c.enrolment("almost2").status == 1

    # Remove the last content the `almost` learners missed (c3, and c4 with it; opt optional again):
    # each completes once, with one certificate request; nobody else does.
    c.publish({c.u1: ["c1", "c2"], c.u2: ["opt*"]})
    totals, sent, _ = republish(tmp_path, "v3", c)
    assert sent == c.requests()
    totals, certs, completions = recompute(tmp_path, "sync-v3", sent)
    assert sorted((e["edata"]["userIds"], e["edata"]["courseId"], e["edata"]["batchId"]) for e in certs) == \
        [([c.users[n]], c.id, c.batches[n]) for n in ("almost", "almost2")]
    assert sorted(e["actor"]["id"] for e in completions) == [c.users["almost"], c.users["almost2"]]
    for name in ("almost", "almost2"):
        row = c.enrolment(name)
        assert (row.status, row.progress) == (2, 2) and row.completedon is not None
    assert c.enrolment("partial").status == 1
    assert totals["enrolment-complete-count"] == 2

    # Replay of both: the cache is already the new tree and the marker is gone, so nothing is
    # sent; the recompute requests again complete nobody and issue no certificate.
    totals, replayed, failed = republish(tmp_path, "v3-replay", c)
    assert (replayed, failed) == ([], [])
    totals, certs, completions = recompute(tmp_path, "sync-v3-replay", sent)
    assert (certs, completions) == ([], [])
    assert totals.get("enrolment-complete-count", 0) == 0


def test_a_marker_left_by_a_crash_after_the_rewrite_is_re_driven_by_the_next_pass(course, stores, tmp_path):
    """The rewrite committed with its marker, then the process died before the requests left: the
    replayed publish event finds the cache unchanged but the marker pending, and sends them."""
    c = course
    republish(tmp_path, "v1", c)
    stores.relation.set(recompute_pending_key(c.id), "token-of-the-crashed-run")
    totals, sent, _ = republish(tmp_path, "replay", c)
    assert totals.get("course-changed-count", 0) == 0, "the tree did not change again"
    assert sent == c.requests()
    assert stores.relation.get(recompute_pending_key(c.id)) is None


def test_recompute_can_be_switched_off(course, stores, tmp_path):
    totals, sent, _ = republish(tmp_path, "off", course, "--recompute_enabled=false")
    assert sent == [] and totals.get("course-changed-count", 0) == 0
    assert stores.relation.get(recompute_pending_key(course.id)) is None
    assert totals["success-events-count"] == 1


def test_a_course_without_batches_costs_no_scan(stores, run_id, tmp_path):
    textbook = f"{run_id}_do_textbook"
    stores.put(textbook, tree(textbook, {f"{run_id}_do_ch1": [content(f"{run_id}_do_page")]}))
    totals, out = run_job(relation_cache, tmp_path, "textbook", [request(textbook)])
    assert read_topic(out, SYNC_TOPIC, missing_ok=True) == []
    assert (totals["course-changed-count"], totals["recompute-course-count"],
            totals.get("recompute-request-count", 0), totals["recompute-marker-cleared-count"]) == (1, 1, 0, 1)
    assert stores.relation.get(recompute_pending_key(textbook)) is None


def test_the_composites_emit_per_enrolment_and_clear_only_their_own_marker(course, stores, cql, tmp_path):
    """``RecomputeChangedCourses`` and ``ClearRecomputeMarkers`` on their own (``TestPipeline``):
    a course with a marker gets a request per enrolment, one without none; a clear whose token
    was overwritten by a newer change leaves the newer marker in place."""
    c = course
    settings = RecomputeSettings(
        job_name=JOB, cassandra=CassandraConfig(hosts=("127.0.0.1",), keyspace="sunbird_courses", consistency="ONE"),
        enrolments_table="user_enrolments", batches_table="course_batch", relation=RedisConfig(db=10))
    stores.relation.set(recompute_pending_key(c.id), "t1")
    with TestPipeline() as p:
        requests, emitted, failed = p | beam.Create([c.id, c.other]) | RecomputeChangedCourses(settings)
        assert_that(requests, equal_to(c.requests()), label="requests")
        assert_that(emitted, equal_to([(c.id, "t1")]), label="emitted")
        assert_that(failed, equal_to([]), label="failed")
    stores.relation.set(recompute_pending_key(c.id), "t2")  # a newer change, after t1's requests left
    with TestPipeline() as p:
        _ = p | beam.Create([(c.id, "t1")]) | ClearRecomputeMarkers(settings)
    assert stores.relation.get(recompute_pending_key(c.id)) == b"t2"
    with TestPipeline() as p:
        _ = p | beam.Create([(c.id, "t2")]) | ClearRecomputeMarkers(settings)
    assert stores.relation.get(recompute_pending_key(c.id)) is None


def test_a_store_fault_keeps_the_marker_and_fails_a_re_drivable_request(course, stores, tmp_path):
    c = course
    republish(tmp_path, "v1", c)
    c.publish({c.u1: ["c1", "c2", "c4"], c.u2: ["c3", "opt*"]})
    totals, sent, failed = republish(tmp_path, "down", c, "--recompute_cassandra_keyspace=no_such_keyspace")
    assert sent == []
    assert len(failed) == 1 and failed[0]["failInfo"]["stage"] == "recompute"
    assert failed[0]["edata"] == {"action": "relation-cache-update", "mimeType": COLLECTION_MIME, "identifier": c.id}
    assert totals["recompute-failed-count"] == 1 and totals.get("failed-events-count", 0) == 0
    assert stores.relation.get(recompute_pending_key(c.id)) is not None, "kept for the re-drive"
    # The re-drive: the failed record's event, once the store is right, sends the requests.
    _, out = run_job(relation_cache, tmp_path, "redrive", [{k: v for k, v in failed[0].items()
                                                             if k in ("eid", "edata")}])
    assert by_user(read_topic(out, SYNC_TOPIC)) == c.requests()
    assert stores.relation.get(recompute_pending_key(c.id)) is None
