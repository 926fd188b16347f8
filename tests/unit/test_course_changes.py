"""Which republishes change what learners must complete (``pipelines.domain.course_changes``)."""

from __future__ import annotations

import copy

from pipelines.domain.cache_keys import node_of, recompute_pending_key
from pipelines.domain.course_changes import cached_nodes, required_changed, required_sets, split_relation_sets
from pipelines.domain.hierarchy import cache_entries, classify_event, relation_cache_request

COLLECTION = "application/vnd.ekstep.content-collection"


def leaf(ident, optional=False):
    node = {"identifier": ident, "mimeType": "video/mp4"}
    if optional:
        node["relationalMetadata"] = {"optional": "true"}
    return node


def unit(ident, *kids, optional=False):
    node = {"identifier": ident, "mimeType": COLLECTION, "children": list(kids)}
    if optional:
        node["relationalMetadata"] = {"optional": True}
    return node


def course(*units):
    return {"identifier": "C", "mimeType": COLLECTION, "children": list(units)}


BASE = course(unit("U1", leaf("a"), leaf("b")), unit("U2", leaf("c"), leaf("o", optional=True)))


def required(hierarchy) -> dict:
    return required_sets(*split_relation_sets("C", cache_entries("C", hierarchy).sets))


def test_required_sets_are_leaves_minus_optional_per_node_as_progress_counts_them():
    assert required(BASE) == {"C": frozenset("abc"), "U1": frozenset("ab"), "U2": frozenset("c")}


def test_a_unit_with_only_optional_contents_requires_nothing_and_is_left_out():
    assert required_sets({"U": ["o"], "C": ["o", "a"]}, {"U": ["o"], "C": ["o"]}) == {"C": frozenset("a")}


def test_what_changes_progress_is_a_change():
    base = required(BASE)
    added = course(unit("U1", leaf("a"), leaf("b"), leaf("d")), unit("U2", leaf("c"), leaf("o", optional=True)))
    removed = course(unit("U1", leaf("a"), leaf("b")), unit("U2", leaf("o", optional=True)))
    made_required = course(unit("U1", leaf("a"), leaf("b")), unit("U2", leaf("c"), leaf("o")))
    made_optional = course(unit("U1", leaf("a"), leaf("b", optional=True)),
                           unit("U2", leaf("c"), leaf("o", optional=True)))
    moved = course(unit("U1", leaf("a")), unit("U2", leaf("b"), leaf("c"), leaf("o", optional=True)))
    for name, tree in [("added", added), ("removed", removed), ("made required", made_required),
                       ("made optional", made_optional), ("moved between units", moved)]:
        assert required_changed(base, required(tree)), name
    assert required(moved)["C"] == base["C"], "a move keeps the course total: only unit aggregates change"


def test_what_does_not_change_progress_is_not_a_change():
    reordered = course(unit("U2", leaf("o", optional=True), leaf("c")), unit("U1", leaf("b"), leaf("a")))
    renamed = copy.deepcopy(BASE)
    renamed["name"] = "New title"
    renamed["children"][0]["description"] = "edited"
    for tree in (reordered, renamed, copy.deepcopy(BASE)):
        assert not required_changed(required(BASE), required(tree))


def test_a_first_publish_with_required_contents_is_a_change_an_empty_collection_is_not():
    assert required_changed({}, required(BASE))
    assert not required_changed({}, required(course(unit("U", leaf("o", optional=True)))))


def test_node_of_and_cached_nodes_read_only_this_collections_node_keys():
    assert node_of("C", "C:U1:leafnodes", "leafnodes") == "U1"
    assert node_of("C", "C:C:optionalnodes", "optionalnodes") == "C"
    assert node_of("C", "C:a:ancestors", "leafnodes") is None
    assert node_of("C", "CX:U1:leafnodes", "leafnodes") is None
    assert node_of("C", "C::leafnodes", "leafnodes") is None
    keys = ["C:C:leafnodes", "C:U1:optionalnodes", "C:a:ancestors", "D:U9:leafnodes"]
    assert cached_nodes("C", keys) == {"C", "U1"}


def test_the_marker_key_and_the_re_drive_request():
    assert recompute_pending_key("do_1") == "lern-beam:recompute-pending:do_1"
    decision = classify_event(relation_cache_request("do_1"))
    assert (decision.outcome, decision.value) == ("process", "do_1"), "the job accepts its own re-drive request"
