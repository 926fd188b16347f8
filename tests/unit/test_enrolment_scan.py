"""The backfill scan's pure parts: token ranges, the queries of a selection, the client-side filter."""

from collections import namedtuple

import pytest

from pipelines.io.enrolment_scan import (
    MAX_TOKEN,
    MIN_TOKEN,
    ScanSettings,
    matches,
    scan_columns,
    scan_settings,
    scan_tasks,
    selection,
    token_ranges,
)

Row = namedtuple("Row", "userid courseid batchid status")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000])
def test_token_ranges_cover_the_whole_ring_without_overlap(n):
    ranges = token_ranges(n)
    assert len(ranges) == n
    assert ranges[0][0] == MIN_TOKEN and ranges[-1][1] == MAX_TOKEN
    for (_, hi), (lo, _) in zip(ranges, ranges[1:], strict=False):
        assert lo == hi  # (lo, hi] ranges: each starts exactly where the previous ended
    assert all(lo < hi for lo, hi in ranges)
    sizes = [hi - lo for lo, hi in ranges]
    assert max(sizes) - min(sizes) <= 1  # even split


def test_every_token_is_in_exactly_one_range():
    ranges = token_ranges(5)
    probes = [MIN_TOKEN + 1, -1, 0, 1, MAX_TOKEN, *(hi for _, hi in ranges), *(lo + 1 for lo, _ in ranges)]
    for t in probes:
        assert sum(lo < t <= hi for lo, hi in ranges) == 1, t


def test_token_ranges_need_a_positive_count():
    with pytest.raises(ValueError, match="at least one"):
        token_ranges(0)


def test_every_enrolment_is_a_token_range_scan():
    tasks = scan_tasks("ks.t", (None, None, None), ("userid", "courseid", "batchid"), 4)
    assert [cql for cql, _ in tasks] == [
        "SELECT userid, courseid, batchid FROM ks.t WHERE token(userid) > ? AND token(userid) <= ?"] * 4
    assert [params for _, params in tasks] == token_ranges(4)


def test_a_course_is_filtered_on_the_replica_in_every_range():
    tasks = scan_tasks("t", ("C", "B", None), ("userid", "status"), 3)
    assert len(tasks) == 3
    cql, params = tasks[1]
    assert cql == ("SELECT userid, status, courseid, batchid FROM t WHERE token(userid) > ? AND "
                   "token(userid) <= ? AND courseid = ? AND batchid = ? ALLOW FILTERING")
    assert params == (*token_ranges(3)[1], "C", "B")
    assert scan_tasks("t", ("C", None, None), ("userid",), 2)[0][1] == (*token_ranges(2)[0], "C")


def test_a_batch_without_course_is_left_to_the_client_filter():
    cql, params = scan_tasks("t", (None, "B", None), ("userid",), 2)[0]
    assert "batchid" not in cql.split("WHERE")[1] and params == token_ranges(2)[0]


def test_a_learner_is_one_partition_read():
    assert scan_tasks("t", ("C", "B", "U"), ("userid", "courseid", "batchid"), 64) == [
        ("SELECT userid, courseid, batchid FROM t WHERE userid = ? AND courseid = ? AND batchid = ?", ("U", "C", "B"))]
    assert scan_tasks("t", (None, None, "U"), ("userid",), 64) == [
        ("SELECT userid, courseid, batchid FROM t WHERE userid = ?", ("U",))]
    # A batch needs its course to be a clustering restriction; otherwise the client filters it.
    assert scan_tasks("t", (None, "B", "U"), ("userid",), 64)[0][1] == ("U",)


def test_scan_columns_add_the_key_columns_the_filter_needs():
    assert scan_columns(("status",)) == ("status", "userid", "courseid", "batchid")
    assert scan_columns(("userid", "courseid", "batchid")) == ("userid", "courseid", "batchid")


@pytest.mark.parametrize(("sel", "expected"), [
    ((None, None, None), [True, True, True, True]),
    (("C1", None, None), [True, True, False, False]),
    (("C1", "B1", None), [True, False, False, False]),
    ((None, "B1", None), [True, False, True, False]),
    ((None, None, "U2"), [False, False, True, True]),
    (("C2", "B2", "U2"), [False, False, False, True]),
    (("C3", None, None), [False, False, False, False]),
])
def test_client_filter_keeps_exactly_the_selection(sel, expected):
    rows = [Row("U1", "C1", "B1", 1), Row("U1", "C1", "B2", 2), Row("U2", "C2", "B1", 2), Row("U2", "C2", "B2", 1)]
    assert [matches(r, sel) for r in rows] == expected


def test_selection_is_optional():
    assert selection({"course_id": "C", "batch_id": "B"}) == ("C", "B", None)
    assert selection({"batch_id": "B"}) == (None, "B", None)
    assert selection({"course_id": "", "user_id": None}) == (None, None, None)


def test_scan_settings_from_options():
    assert scan_settings({}) == ScanSettings(64, 1000)
    assert scan_settings({"scan_token_ranges": 8, "scan_page_size": 50}) == ScanSettings(8, 50)
    with pytest.raises(ValueError, match="positive"):
        ScanSettings(ranges=0)
