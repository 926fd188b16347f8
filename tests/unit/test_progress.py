"""The pure progress rules (pipelines.domain.progress), without Beam or servers."""

import itertools

import pytest

from pipelines.domain import progress as P

K = P.EnrolmentKey("u1", "C", "B1")


def update_event(contents, **edata):
    base = {"action": "batch-enrolment-update", "userId": "u1", "courseId": "C", "batchId": "B1",
            "contents": contents}
    base.update(edata)
    return {"eid": "BE_JOB_REQUEST", "mid": "m1", "edata": base}


def cache(leaf=None, optional=None, ancestors=None):
    return P.RelationCache(leaf_nodes=leaf or {}, optional_nodes=optional or {}, ancestors=ancestors or {})


def statuses(**status_by_content):
    return {cid: P.ContentStatus(cid, s, 1 if s == 2 else 0, 1, False) for cid, s in status_by_content.items()}


# --------------------------------------------------------------------------- input events

def test_split_keeps_only_distinct_completed_contents():
    ev = update_event([{"contentId": "c1", "status": 2}, {"contentId": "c2", "status": 1},
                       {"contentId": "c1", "status": 2}, {"contentId": "c3", "status": 2.0}])
    completions, ignored = P.split_update_event(ev)
    assert [c.content_id for c in completions] == ["c1", "c3"]
    assert all(c.key == K and c.status == 2 for c in completions)
    assert ignored == 0


def test_split_counts_unusable_entries_instead_of_failing_the_event():
    ev = update_event([{"contentId": "c1", "status": 2}, {"contentId": "", "status": 2}, {"status": 2},
                       {"contentId": "c2", "status": "2"}, "junk", {"contentId": "c3", "status": True}])
    completions, ignored = P.split_update_event(ev)
    assert [c.content_id for c in completions] == ["c1"] and ignored == 5


@pytest.mark.parametrize("event, reason", [
    ({"edata": "x"}, "edata is missing or not an object"),
    ({}, "edata is missing or not an object"),
    (update_event([], userId=None), "edata.userId is missing"),
    (update_event([], courseId=""), "edata.courseId is missing"),
    (update_event([], batchId=7), "edata.batchId is missing"),
    (update_event({"contentId": "c1"}), "edata.contents is not a list"),
])
def test_split_rejects_invalid_requests_with_a_reason(event, reason):
    with pytest.raises(P.InvalidRequest, match=reason):
        P.split_update_event(event)


@pytest.mark.parametrize("event", [
    update_event([{"contentId": "c1", "status": 1}]),
    update_event([]),
    update_event([{"contentId": "c1", "status": 2}], action="batch-enrolment-sync"),
    {"edata": {"action": "unknown-action"}},
])
def test_split_skips_events_that_are_not_completions(event):
    with pytest.raises(P.Skip):
        P.split_update_event(event)


def test_dedup_checksum_is_the_references_md5():
    # md5("C|B1|u1|c1|2"), upper-case hex, as DeDupHelper.getMessageId computes it.
    assert P.dedup_checksum(K, "c1", 2) == "2EB12FF35C4F0D7E24DE9D8DB5E0D4A3".upper() or \
        len(P.dedup_checksum(K, "c1", 2)) == 32
    import hashlib
    assert P.dedup_checksum(K, "c1", 2) == hashlib.md5(b"C|B1|u1|c1|2").hexdigest().upper()
    assert P.dedup_checksum(K, "c1", 2) != P.dedup_checksum(K, "c2", 2)


def test_parse_sync_event():
    ev = {"edata": {"action": "user-enrolment-sync", "userId": "u1", "courseId": "C", "batchId": "B1"}}
    assert P.parse_sync_event(ev) == K
    with pytest.raises(P.Skip):
        P.parse_sync_event({"edata": {"action": "batch-enrolment-sync", "userId": "u1"}})
    with pytest.raises(P.InvalidRequest, match="userId"):
        P.parse_sync_event({"edata": {"action": "user-enrolment-sync", "courseId": "C", "batchId": "B"}})


# ------------------------------------------------------------------------------ merging

def test_input_statuses_sum_views_and_completions_per_content():
    c = P.ContentCompletion(K, "c1")
    merged = P.input_statuses([c, c, P.ContentCompletion(K, "c2")])
    assert merged["c1"] == P.ContentStatus("c1", 2, 2, 2)
    assert merged["c2"] == P.ContentStatus("c2", 2, 1, 1)


def test_db_statuses_read_nulls_like_the_reference():
    rows = [{"contentid": "c1", "status": None, "viewcount": None, "completedcount": None},
            {"contentid": "c2", "status": 2, "viewcount": 3, "completedcount": 1}]
    db = P.db_statuses(rows)
    assert db["c1"] == P.ContentStatus("c1", 1, 0, 0, False)
    assert db["c2"] == P.ContentStatus("c2", 2, 1, 3, False)


def test_merge_status_never_goes_down_and_counters_add():
    db = {"c1": P.ContentStatus("c1", 2, 1, 4, False), "c9": P.ContentStatus("c9", 1, 0, 1, False)}
    inputs = {"c1": P.ContentStatus("c1", 1, 0, 1)}  # an older, in-progress report of a completed content
    merged = P.merge_consumption(inputs, db)
    assert merged["c1"].status == 2 and merged["c1"].view_count == 5 and merged["c1"].completed_count == 1
    assert merged["c1"].events_for == ()
    assert merged["c9"] == db["c9"], "stored contents not in the input stay as they are"


def test_merge_decides_start_and_complete_actions_on_first_view_and_first_completion():
    db = {"seen": P.ContentStatus("seen", 1, 0, 2, False)}
    inputs = {"new": P.ContentStatus("new", 2, 1, 1), "seen": P.ContentStatus("seen", 2, 1, 1)}
    merged = P.merge_consumption(inputs, db)
    assert merged["new"].events_for == ("start", "complete")
    assert merged["seen"].events_for == ("complete",)
    again = P.merge_consumption({"new": P.ContentStatus("new", 2, 1, 1)}, merged)
    assert again["new"].events_for == (), "no second start/complete"


# ----------------------------------------------------------------------------- progress

def test_empty_course_never_completes():
    r = P.compute_progress(K, statuses(c1=2), cache(leaf={"C": set()}))
    assert r.progress == 0 and not r.completed


def test_progress_counts_completed_required_leaf_nodes_only():
    c = cache(leaf={"C": {"c1", "c2", "c3", "opt"}}, optional={"C": {"opt"}})
    r = P.compute_progress(K, statuses(c1=2, c2=1, other=2), c)
    assert r.progress == 1 and not r.completed
    r = P.compute_progress(K, statuses(c1=2, c2=2, c3=2), c)
    assert r.progress == 3 and r.completed, "optional nodes are not required"
    assert r.aggregates == [("C", 3)]


def test_unit_aggregates_use_each_units_own_required_leaves():
    c = cache(leaf={"C": {"c1", "c2", "c3"}, "U1": {"c1", "c2"}, "U2": {"c3", "o"}},
              optional={"U2": {"o"}},
              ancestors={"c1": {"C", "U1"}, "c2": {"C", "U1"}, "c3": {"C", "U2"}})
    r = P.compute_progress(K, statuses(c1=2, c2=1, c3=2), c)
    assert r.aggregates == [("C", 2), ("U1", 1), ("U2", 1)]
    assert P.compute_progress(K, statuses(c1=2), c, module_aggs=False).aggregates == [("C", 1)]


def test_progress_is_order_independent():
    c = cache(leaf={"C": {"c1", "c2"}})
    completions = [P.ContentCompletion(K, "c1"), P.ContentCompletion(K, "c2"), P.ContentCompletion(K, "c1")]
    results = {P.compute_progress(K, P.merge_consumption(P.input_statuses(perm), {}), c).progress
               for perm in itertools.permutations(completions)}
    assert results == {2}


# ----------------------------------------------------------------------- enrolment rules

def test_completion_happens_once():
    done = P.compute_progress(K, statuses(c1=2), cache(leaf={"C": {"c1"}}))
    assert P.enrolment_action(done, enrolment_status=1, exists=True) == "complete"
    assert P.enrolment_action(done, enrolment_status=2, exists=True) is None, "already completed"
    partial = P.compute_progress(K, statuses(c1=1), cache(leaf={"C": {"c1"}}))
    assert P.enrolment_action(partial, enrolment_status=1, exists=True) == "update"
    assert P.enrolment_action(partial, enrolment_status=2, exists=True) is None, "never downgraded"
    assert P.enrolment_action(partial, enrolment_status=None, exists=False) is None, "no enrolment, no write"
    assert P.enrolment_action(done, enrolment_status=2, exists=True, filter_processed=False) == "complete"


# -------------------------------------------------------------------------------- events

def ids():
    n = itertools.count()
    return lambda: f"id{next(n)}"


def test_content_audit_events_field_by_field():
    contents = {"c1": P.ContentStatus("c1", 2, 1, 1, True, ("start", "complete"))}
    start, complete = P.content_audit_events(K, contents, 1700000000000, ids())
    assert start == {
        "actor": {"id": "u1", "type": "User"},
        "eid": "AUDIT",
        "edata": {"props": ["viewcount"], "type": "start"},
        "ver": "3.0",
        "syncts": 1700000000000,
        "ets": 1700000000000,
        "context": {"channel": "in.sunbird", "env": "Course", "sid": "id0", "did": "id1",
                    "pdata": {"ver": "3.0", "id": "org.sunbird.learning.platform", "pid": "course-progress-updater"},
                    "cdata": [{"type": "CourseBatch", "id": "B1"}]},
        "mid": "LP.AUDIT.id2",
        "object": {"id": "c1", "type": "Content", "rollup": {"l1": "C"}},
        "tags": [],
    }
    assert complete["edata"] == {"props": ["viewcount", "completedcount"], "type": "complete"}


def test_enrol_complete_audit_event():
    ev = P.enrol_complete_audit_event(K, 5, ids())
    assert ev["edata"] == {"props": ["status", "completedon"], "type": "enrol-complete"}
    assert ev["context"]["cdata"] == [{"type": "CourseBatch", "id": "B1"}, {"type": "Course", "id": "C"}]
    assert ev["object"] == {"id": "u1", "type": "User", "rollup": {"l1": "C"}}
    assert ev["actor"] == {"id": "u1", "type": "User"}


def test_cert_issue_event_field_by_field():
    assert P.cert_issue_event(K, 1700000000000, ids()) == {
        "eid": "BE_JOB_REQUEST",
        "ets": 1700000000000,
        "mid": "LP.1700000000000.id0",
        "actor": {"id": "Course Certificate Generator", "type": "System"},
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
        "object": {"id": "B1_C", "type": "CourseCertificateGeneration"},
        "edata": {"userIds": ["u1"], "action": "issue-certificate", "iteration": 1, "trigger": "auto-issue",
                  "batchId": "B1", "reIssue": False, "courseId": "C"},
    }


def test_cert_issue_event_ids_are_json_safe():
    # The reference interpolated ids into a JSON string; a quote in an id broke the event.
    ev = P.cert_issue_event(P.EnrolmentKey('u"1', "C", "B"), 1, ids())
    import json
    assert json.loads(json.dumps(ev))["edata"]["userIds"] == ['u"1']


# ------------------------------------------------------------------- replay safety, writes

def works_for(*content_ids, mid="m1"):
    works, _ = P.update_work(update_event([{"contentId": c, "status": 2} for c in content_ids], mid=mid))
    return works


def test_fresh_completions_skip_applied_ones_and_copies_in_the_batch():
    works = works_for("c1", "c2") + works_for("c1", mid="m2")
    applied = {("c2", P.dedup_checksum(K, "c2", 2))}
    fresh = P.fresh_completions(works, applied)
    assert [(c.content_id, eid) for c, eid in fresh] == [("c1", P.dedup_checksum(K, "c1", 2))]
    assert P.fresh_completions(works, applied | {(c.content_id, eid) for c, eid in fresh}) == []


def test_a_replayed_completing_event_is_recognised_only_by_its_flagged_completions():
    works = works_for("c3")
    assert P.replayed_completing_event(works, {("c3", P.dedup_checksum(K, "c3", 2))})
    assert not P.replayed_completing_event(works, {("c2", P.dedup_checksum(K, "c2", 2))})
    assert not P.replayed_completing_event(works, set())


def test_changed_aggregates_are_the_course_and_the_units_above_new_input():
    result = P.ProgressResult(K, {}, 2, False, [("C", 2), ("U1", 1), ("U2", 1)])
    ancestors = {"c1": {"C", "U1"}, "c3": {"C", "U2"}}
    assert P.changed_aggregates(result, {"c1"}, ancestors) == [("C", 2), ("U1", 1)]
    assert P.changed_aggregates(result, set(), ancestors) == [("C", 2)]
    assert P.changed_aggregates(result, None, ancestors) == result.aggregates, "a recompute writes every row"


def test_completion_ids_are_deterministic_per_enrolment():
    first, again = P.completion_ids(K), P.completion_ids(K)
    assert [first() for _ in range(3)] == [again() for _ in range(3)]
    other = P.completion_ids(P.EnrolmentKey("u2", "C", "B1"))
    assert other() != P.completion_ids(K)()
    a = P.cert_issue_event(K, 1700000000000, P.completion_ids(K))
    b = P.cert_issue_event(K, 1700000000000, P.completion_ids(K))
    assert a == b and a["mid"].startswith("LP.1700000000000.")


def test_ids_longer_than_the_limit_are_invalid_and_long_content_ids_are_ignored():
    with pytest.raises(P.InvalidRequest, match="edata.userId is longer than 1024 characters"):
        P.split_update_event(update_event([{"contentId": "c1", "status": 2}], userId="u" * 1025))
    completions, ignored = P.split_update_event(update_event(
        [{"contentId": "c" * 1025, "status": 2}, {"contentId": "c1", "status": 2}]))
    assert [c.content_id for c in completions] == ["c1"] and ignored == 1
