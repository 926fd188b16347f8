"""The relation cache walk and event selection (pipelines/transforms/hierarchy.py), no servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.domain.hierarchy import (
    ALLOWED_ACTIONS,
    COLLECTION_MIME_TYPE,
    Decision,
    HierarchyError,
    ancestors,
    cache_entries,
    classify_event,
    java_double,
    java_json,
    leaf_nodes,
    optional_nodes,
    parent_units,
    parse_hierarchy,
)

SAMPLE = Path(__file__).resolve().parents[2] / "local" / "sample" / "relation-cache" / "hierarchy-do_rc_course_1.json"


def coll(ident, *kids, **extra):
    return {"identifier": ident, "mimeType": COLLECTION_MIME_TYPE, "children": list(kids), **extra}


def unit(ident, *kids, **extra):
    return coll(ident, *kids, **{"visibility": "Parent", **extra})


def res(ident, mime="application/pdf", **extra):
    return {"identifier": ident, "mimeType": mime, **extra}


def optional(node, flag=True):
    return {**node, "relationalMetadata": {"optional": flag}}


def as_sets(d: dict) -> dict:
    return {k: set(v) for k, v in d.items()}


# ---------------------------------------------------------------------------------------------- events

def event(**edata):
    return {"eid": "BE_JOB_REQUEST", "mid": "m1", "edata": edata}


@pytest.mark.parametrize("action", ALLOWED_ACTIONS)
def test_collection_requests_of_both_actions_are_processed(action):
    ev = event(action=action, identifier="do_1", mimeType=COLLECTION_MIME_TYPE)
    assert classify_event(ev) == Decision("process", "do_1")


def test_mime_type_matches_ignoring_case_and_content_type_is_not_checked():
    ev = event(action="post-publish-process", identifier="do_1",
               mimeType="Application/VND.ekstep.Content-Collection", contentType="TextBook")
    assert classify_event(ev) == Decision("process", "do_1")


@pytest.mark.parametrize("edata", [
    {"action": "publish", "identifier": "do_1", "mimeType": COLLECTION_MIME_TYPE},
    {"action": "Post-Publish-Process", "identifier": "do_1", "mimeType": COLLECTION_MIME_TYPE},  # case-sensitive
    {"action": 7, "identifier": "do_1", "mimeType": COLLECTION_MIME_TYPE},
    {"identifier": "do_1", "mimeType": COLLECTION_MIME_TYPE},
])
def test_other_actions_are_skipped(edata):
    assert classify_event(event(**edata)) == Decision("skip", "action")


@pytest.mark.parametrize("mime", ["application/pdf", None, 3, ""])
def test_non_collections_are_skipped(mime):
    ev = event(action="post-publish-process", identifier="do_1", mimeType=mime)
    assert classify_event(ev) == Decision("skip", "mimetype")


def test_events_without_edata_are_skipped_not_failed():
    assert classify_event({"mid": "x"}).outcome == "skip"
    assert classify_event({"edata": "not an object"}).outcome == "skip"


@pytest.mark.parametrize("identifier", [None, "", "   ", 42])
def test_a_collection_request_without_identifier_fails_with_a_reason(identifier):
    ev = event(action="post-publish-process", mimeType=COLLECTION_MIME_TYPE, identifier=identifier)
    assert classify_event(ev) == Decision("fail", "missing or blank edata.identifier")


# ---------------------------------------------------------------------------------------------- walk

def test_empty_collection_writes_nothing():
    for h in (coll("do_c"), coll("do_c", children=None), {**coll("do_c"), "children": "junk"}):
        assert cache_entries("do_c", h) == ({}, {})


def test_non_collection_input_writes_nothing():
    h = res("do_pdf", children=[res("do_x")])
    assert cache_entries("do_pdf", h) == ({}, {})
    assert leaf_nodes("do_pdf", h) == optional_nodes("do_pdf", h) == ancestors("do_pdf", h) == {}
    assert parent_units(unit("do_u", res("do_x"), mimeType="application/pdf")) == {}


def test_nested_units_leaf_nodes_are_composed_from_children():
    h = coll("do_c", unit("do_u1", res("do_a"), unit("do_u11", res("do_b"), res("do_c1"))), res("do_d"))
    assert as_sets(leaf_nodes("do_c", h)) == {
        "do_c": {"do_a", "do_b", "do_c1", "do_d"},
        "do_u1": {"do_a", "do_b", "do_c1"},
        "do_u11": {"do_b", "do_c1"},
    }


def test_a_stored_leafnodes_field_wins_for_its_own_collection_only():
    inner = unit("do_u1", res("do_a"), leafNodes=["do_stale"])
    h = coll("do_c", inner, leafNodes=["do_a", "do_z"])
    got = leaf_nodes("do_c", h)
    assert got["do_c"] == ["do_a", "do_z"], "the root's own field, as published"
    assert got["do_u1"] == ["do_stale"], "a unit's own field is used for the unit's own entry"
    h2 = coll("do_c", inner)
    assert leaf_nodes("do_c", h2)["do_c"] == ["do_a"], "but composing a parent ignores nested fields"
    assert leaf_nodes("do_c", coll("do_c", res("do_a"), leafNodes=None))["do_c"] == ["do_a"], "bad field: composed"
    assert "do_c" not in leaf_nodes("do_c", coll("do_c", res("do_a"), leafNodes=[])), "empty field: no key"


def test_the_root_entries_use_the_event_identifier_not_the_stored_one():
    h = coll("do_stored", unit("do_u", res("do_a")))
    got = cache_entries("do_event", h)
    assert "do_event:do_event:leafnodes" in got.sets
    assert all(k.startswith("do_event:") for k in got.sets)
    assert got.sets["do_event:do_a:ancestors"] == ["do_u", "do_event"]


def test_duplicate_leaves_are_one_member_and_get_the_union_of_their_ancestors():
    h = coll("do_c", unit("do_u1", res("do_a"), res("do_a")), unit("do_u2", unit("do_u21", res("do_a"))))
    got = cache_entries("do_c", h).sets
    assert got["do_c:do_c:leafnodes"] == ["do_a"]
    assert got["do_c:do_u1:leafnodes"] == ["do_a"]
    assert set(got["do_c:do_a:ancestors"]) == {"do_u1", "do_u2", "do_u21", "do_c"}
    assert len(got["do_c:do_a:ancestors"]) == 4


def test_ancestors_are_nearest_first_and_only_for_contents():
    h = coll("do_c", unit("do_u1", unit("do_u11", res("do_a"))), res("do_b"))
    assert ancestors("do_c", h) == {"do_a": ["do_u11", "do_u1", "do_c"], "do_b": ["do_c"]}


def test_optional_nodes_count_optional_children_and_do_not_descend_into_them():
    h = coll("do_c",
             unit("do_u1", optional(res("do_a")), res("do_b"), unit("do_u11", optional(res("do_x"), "TRUE"))),
             optional(unit("do_u2", optional(res("do_d")), res("do_e")), "true"),
             optional(res("do_f"), False),
             optional(res("do_g"), "yes"))
    assert as_sets(optional_nodes("do_c", h)) == {
        "do_c": {"do_a", "do_x", "do_u2"},      # do_d sits under the optional unit: not listed at the root
        "do_u1": {"do_a", "do_x"},
        "do_u11": {"do_x"},
        "do_u2": {"do_d"},                       # but the optional unit has its own entry
    }


def test_optional_children_of_non_collections_count_too_like_the_reference():
    qs = res("do_qs", mime="application/vnd.sunbird.questionset", children=[optional(res("do_q1")), res("do_q2")])
    h = coll("do_c", unit("do_u1", qs))
    assert optional_nodes("do_c", h) == {"do_c": ["do_q1"], "do_u1": ["do_q1"]}
    assert leaf_nodes("do_c", h) == {"do_c": ["do_qs"], "do_u1": ["do_qs"]}, "a question set is one leaf"
    assert ancestors("do_c", h) == {"do_qs": ["do_u1", "do_c"]}


def test_units_are_parent_visibility_collections_with_children_as_jackson_json():
    u11 = unit("do_u11", res("do_a"))
    h = coll("do_c", unit("do_u1", u11, name="Ünit \"1\"\n", size=2.0), unit("do_empty"),
             coll("do_default", res("do_b"), visibility="Default"), visibility="Default")
    units = parent_units(h)
    assert set(units) == {"do_u1", "do_u11"}, "root/Default units and Parent units without children are not written"
    assert json.loads(units["do_u11"]) == u11
    assert units["do_u1"].startswith('{"identifier":"do_u1","mimeType":')
    assert '"name":"Ünit \\"1\\"\\n","size":2.0}' in units["do_u1"]
    assert parent_units(unit("do_root", res("do_a")))["do_root"], "a Parent root is written too"
    assert set(parent_units(coll("do_c", unit("do_x", res("do_a"), visibility="PARENT")))) == {"do_x"}


def test_nodes_without_identifier_or_object_shape_are_ignored_not_crashing():
    h = coll("do_c", "junk", 5, unit(None, res("do_a")), res(""), {"mimeType": "application/pdf"},
             {**unit("do_u", res("do_b")), "relationalMetadata": "optional"}, res("do_n", mimeType=None))
    got = cache_entries("do_c", h)
    assert as_sets(got.sets) == {
        "do_c:do_c:leafnodes": {"do_a", "do_b", "do_n"},
        "do_c:do_u:leafnodes": {"do_b"},
        "do_c:do_a:ancestors": {"do_c"},        # the id-less unit is left out of the chain
        "do_c:do_b:ancestors": {"do_u", "do_c"},
        "do_c:do_n:ancestors": {"do_c"},
    }
    assert set(got.units) == {"do_u"}


def test_the_sample_course():
    h = json.loads(SAMPLE.read_text())
    got = cache_entries("do_rc_course_1", h)
    c = "do_rc_course_1"
    assert as_sets(got.sets) == {
        f"{c}:{c}:leafnodes": {f"do_rc_res_{x}" for x in "abcde"},
        f"{c}:do_rc_unit_1:leafnodes": {"do_rc_res_a", "do_rc_res_b", "do_rc_res_c"},
        f"{c}:do_rc_unit_1_1:leafnodes": {"do_rc_res_c", "do_rc_res_a"},
        f"{c}:do_rc_unit_2:leafnodes": {"do_rc_res_d"},
        f"{c}:{c}:optionalnodes": {"do_rc_res_b", "do_rc_unit_2"},
        f"{c}:do_rc_unit_1:optionalnodes": {"do_rc_res_b"},
        f"{c}:do_rc_unit_2:optionalnodes": {"do_rc_res_d"},
        f"{c}:do_rc_res_a:ancestors": {"do_rc_unit_1_1", "do_rc_unit_1", c},
        f"{c}:do_rc_res_b:ancestors": {"do_rc_unit_1", c},
        f"{c}:do_rc_res_c:ancestors": {"do_rc_unit_1_1", "do_rc_unit_1", c},
        f"{c}:do_rc_res_d:ancestors": {"do_rc_unit_2", c},
        f"{c}:do_rc_res_e:ancestors": {c},
    }
    assert set(got.units) == {"do_rc_unit_1", "do_rc_unit_1_1", "do_rc_unit_2"}
    assert cache_entries(c, json.loads(SAMPLE.read_text())) == got, "same hierarchy, same entries"


# ---------------------------------------------------------------------------------------------- text

def test_parse_hierarchy_accepts_backslash_escaped_characters_like_jackson():
    assert parse_hierarchy('{"name":"it\\\'s","p":"a\\\\b","u":"\\u00e9"}') == {"name": "it's", "p": "a\\b", "u": "é"}


@pytest.mark.parametrize("text,reason", [
    (None, "hierarchy is empty"), ("", "hierarchy is empty"), ("  ", "hierarchy is empty"),
    ("{}", "hierarchy is empty"), ("null", "must be a JSON object, got NoneType"),
    ("[1]", "must be a JSON object, got list"), ('{"a":', "malformed hierarchy JSON"),
    ("[" * 100000, "malformed hierarchy JSON"),
])
def test_parse_hierarchy_errors_have_reasons(text, reason):
    with pytest.raises(HierarchyError, match=reason.replace("(", r"\(")):
        parse_hierarchy(text)


@pytest.mark.parametrize("x,java", [
    (7.0, "7.0"), (1593769627322.0, "1.593769627322E12"), (0.0001, "1.0E-4"), (0.001, "0.001"),
    (9999999.0, "9999999.0"), (1e7, "1.0E7"), (-123.456, "-123.456"), (0.0, "0.0"), (-0.0, "-0.0"),
    (1e21, "1.0E21"), (1048576.0, "1048576.0"), (float("nan"), '"NaN"'), (float("-inf"), '"-Infinity"'),
])
def test_doubles_are_written_as_java_does(x, java):
    assert java_double(x) == java


def test_java_json_escapes_like_jackson():
    assert java_json({"a": [1, 2.5, None, True], "s": "é/\x01\t"}) == '{"a":[1,2.5,null,true],"s":"é/\\u0001\\t"}'
