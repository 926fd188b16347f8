import pytest

from pipelines.io.enrolment_scan import scan_query, selection


def test_scan_query_is_a_partition_read_with_a_learner():
    assert scan_query("ks.user_enrolments", "C", "B", "U") == (
        "SELECT userid, courseid, batchid FROM ks.user_enrolments WHERE userid = ? AND courseid = ? AND batchid = ?",
        ["U", "C", "B"])
    assert scan_query("t", "C", None, "U", columns=("userid", "status")) == (
        "SELECT userid, status FROM t WHERE userid = ? AND courseid = ?", ["U", "C"])


def test_scan_query_filters_the_course_without_a_learner():
    assert scan_query("t", "C", None, None) == (
        "SELECT userid, courseid, batchid FROM t WHERE courseid = ? ALLOW FILTERING", ["C"])
    assert scan_query("t", "C", "B", None)[1] == ["C", "B"]


def test_selection_needs_a_course():
    assert selection({"course_id": "C", "batch_id": "B"}) == ("C", "B", None)
    with pytest.raises(SystemExit, match="needs --course_id"):
        selection({"batch_id": "B"})
