"""The token-range backfill scan on DirectRunner against the real Cassandra.

``user_enrolments`` is shared with every other test, so each test seeds its own rows (ids
prefixed with ``run_id``) and asserts on those only: a platform-wide scan also returns the
other tests' rows, which are filtered out before the assertion, never counted on.
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import enrolment_sync
from pipelines.io.cassandra import CassandraConfig
from pipelines.io.enrolment_scan import ScanEnrolments, ScanSettings
from pipelines.metrics import counter_totals
from tests.batch_runs import read_topic, run_job
from tests.progress_data import seed_course

CFG = CassandraConfig(hosts=("127.0.0.1",), port=9042, keyspace="sunbird_courses")


@pytest.fixture
def three_courses(cql, run_id):
    """Learners L0..L9 in course C0, L0..L5 in C1 (batches B1 and B2), L3..L8 in C2: 28 enrolments."""
    rows = [(f"{run_id}-L{u}", f"{run_id}-C0", f"{run_id}-B0", 1) for u in range(10)]
    rows += [(f"{run_id}-L{u}", f"{run_id}-C1", f"{run_id}-B{1 + u % 2}", 2) for u in range(6)]
    rows += [(f"{run_id}-L{u}", f"{run_id}-C2", f"{run_id}-B3", 2 if u % 3 else 1) for u in range(3, 9)]
    stmt = cql.prepare("INSERT INTO user_enrolments (userid, courseid, batchid, status) VALUES (?, ?, ?, ?)")
    for r in rows:
        cql.execute(stmt, r)
    return rows


def scan(sel, run_id, ranges=16, page_size=3, columns=("userid", "courseid", "batchid", "status")):
    """Runs ScanEnrolments; returns this run's rows (as key+status tuples) and the pipeline result."""
    p = TestPipeline()
    out = (p
           | ScanEnrolments(CFG, "user_enrolments", sel, lambda r: (r.userid, r.courseid, r.batchid, r.status),
                            "scan-test", columns=columns, scan=ScanSettings(ranges, page_size))
           | beam.Filter(lambda row: row[0].startswith(f"{run_id}-")))
    return p, out


def test_every_enrolment_once_over_the_whole_ring(three_courses, run_id):
    p, out = scan((None, None, None), run_id)
    assert_that(out, equal_to(three_courses))  # equal_to compares as multisets: each row exactly once
    result = p.run()
    result.wait_until_finish()
    assert counter_totals(result)["scan-test:scanned-enrolment-count"] >= len(three_courses)


def test_a_course_selection_scans_only_that_course(three_courses, run_id):
    p, out = scan((f"{run_id}-C1", None, None), run_id, ranges=5, page_size=2)
    expected = [r for r in three_courses if r[1] == f"{run_id}-C1"]
    assert_that(out, equal_to(expected))
    result = p.run()
    result.wait_until_finish()
    assert counter_totals(result)["scan-test:scanned-enrolment-count"] == len(expected) == 6


def test_a_batch_without_course_is_filtered_on_the_client(three_courses, run_id):
    p, out = scan((None, f"{run_id}-B2", None), run_id, ranges=4, page_size=50)
    expected = [r for r in three_courses if r[2] == f"{run_id}-B2"]
    assert_that(out, equal_to(expected))
    result = p.run()
    result.wait_until_finish()
    assert counter_totals(result)["scan-test:scanned-enrolment-count"] == len(expected) == 3


def test_a_learner_without_course_is_a_partition_read(three_courses, run_id):
    p, out = scan((None, None, f"{run_id}-L4"), run_id, columns=("userid", "courseid", "batchid", "status"))
    assert_that(out, equal_to([r for r in three_courses if r[0] == f"{run_id}-L4"]))
    result = p.run()
    result.wait_until_finish()
    assert counter_totals(result)["scan-test:scanned-enrolment-count"] == 3


def test_enrolment_sync_backfill_without_course(stack, cql, run_id, tmp_path):
    """``--from_cassandra`` with no ``--course_id``: a token scan of the whole table, selected by
    batch on the client (so the run touches only this test's enrolments)."""
    c = seed_course(stack["redis"], cql, run_id)
    other = f"{run_id}-L2"
    cql.execute("INSERT INTO user_enrolments (userid, courseid, batchid, status, active) VALUES (%s, %s, %s, 1, true)",
                (other, c["course"], c["batch"]))
    done = cql.prepare("INSERT INTO user_content_consumption (userid, courseid, batchid, contentid, status) "
                       "VALUES (?, ?, ?, ?, 2)")
    for content in ("c1", "c2", "c3"):
        cql.execute(done, (c["user"], c["course"], c["batch"], content))
    cql.execute(done, (other, c["course"], c["batch"], "c1"))

    totals, out = run_job(enrolment_sync, tmp_path, "all", None, "--from_cassandra", f"--batch_id={c['batch']}",
                          "--scan_token_ranges=8", "--scan_page_size=100")

    assert totals["scanned-enrolment-count"] == 2
    enrol = {r.userid: (r.status, r.progress, dict(r.contentstatus or {})) for r in cql.execute(
        "SELECT userid, status, progress, contentstatus FROM user_enrolments WHERE userid IN (%s, %s) "
        "AND courseid=%s AND batchid=%s", (c["user"], other, c["course"], c["batch"]))}
    assert enrol == {c["user"]: (2, 3, {"c1": 2, "c2": 2, "c3": 2}), other: (1, 1, {"c1": 2})}
    certs = read_topic(out, "issue.certificate.request")
    assert [x["edata"]["userIds"] for x in certs] == [[c["user"]]]
