"""relation-cache-updater's domain logic: which events it acts on, and what a collection's
hierarchy becomes in Redis. Pure functions over plain dicts, no Beam and no servers.

The reference (``lms-jobs/relation-cache-updater``, ``RelationCacheUpdater.scala``) walks the
hierarchy JSON of a published collection, read from ``content_hierarchy``, into four maps:

* leaf nodes: for the collection and every unit below it, the ids of the contents under it;
* optional nodes: for the same, the ids of children marked ``relationalMetadata.optional``;
* ancestors: for every content (non-collection node), the ids of all collections above it;
* units: every ``visibility: Parent`` unit that has children, as its JSON subtree.

The first three are Redis sets in the relation cache (``<root>:<node>:leafnodes`` etc.); the
units are plain strings in the collection cache keyed by the unit id. Readers (the activity
aggregator computes course progress from the leaf nodes; content consumers read units) see
exactly what the reference wrote, including its quirks, which are kept on purpose and named
where they occur. Where the reference crashes on odd input (a non-string field, a child that is
not an object, a node without identifier) we ignore the odd part instead: a poison event must
not stop the job, and a node nobody can address cannot have a key.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NamedTuple

from pipelines.domain.cache_keys import ANCESTORS, LEAF_NODES, OPTIONAL_NODES, relation_key
from pipelines.domain.errors import InvalidRequest, Skip
from pipelines.domain.javafmt import java_double_to_string

COLLECTION_MIME_TYPE = "application/vnd.ekstep.content-collection"
ALLOWED_ACTIONS = ("post-publish-process", "relation-cache-update")
"""``edata.action`` values the reference acts on (``allowedActions``); matched case-sensitively."""



# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------

class Decision(NamedTuple):
    """What to do with one input event: ``process`` (``value`` is the collection id), ``skip``
    or ``fail`` (``value`` is the reason)."""

    outcome: str
    value: str


SKIP_ACTION = "action"
SKIP_MIME_TYPE = "mimetype"


def _edata_str(edata: dict, field: str) -> str | None:
    value = edata.get(field)
    return value if isinstance(value, str) else None


def classify_event(event: dict) -> Decision:
    """Decides whether an event from the shared post-publish topic is a relation cache request.

    The reference processes an event when ``edata.action`` is one of ``ALLOWED_ACTIONS``,
    ``edata.mimeType`` equals the collection mime type ignoring case, and ``edata.identifier``
    is not blank; every other event counts as skipped. No ``contentType`` filter is applied.

    The topic is shared with other consumers (the post-publish processor receives the same
    events for every published content), so events with another action or a non-collection mime
    type are normal traffic and stay *skips* (reason code in ``value``). An event that is ours by
    action and mime type but names no collection is a broken request: the reference silently
    skips it, here it *fails* with a reason so an operator sees it on the failed topic.
    Non-string fields (on which the reference throws ClassCastException and restarts) are treated
    as absent.
    """
    edata = event.get("edata")
    if not isinstance(edata, dict):
        edata = {}
    if _edata_str(edata, "action") not in ALLOWED_ACTIONS:
        return Decision("skip", SKIP_ACTION)
    mime = _edata_str(edata, "mimeType")
    if mime is None or mime.lower() != COLLECTION_MIME_TYPE:
        return Decision("skip", SKIP_MIME_TYPE)
    identifier = _edata_str(edata, "identifier")
    if identifier is None or not identifier.strip():
        return Decision("fail", "missing or blank edata.identifier")
    return Decision("process", identifier)


def collection_request(event: dict) -> list[tuple[str, dict]]:
    """The parser ``ValidateEvents`` runs: ``[(collection id, event)]`` for a relation cache
    request; ``Skip(reason code)`` for other traffic on the shared topic (the code names the
    ``skipped-<code>-count`` metric); ``InvalidRequest`` for a request that names no collection."""
    decision = classify_event(event)
    if decision.outcome == "skip":
        raise Skip(decision.value, metric=f"skipped-{decision.value}-count")
    if decision.outcome == "fail":
        raise InvalidRequest(decision.value)
    return [(decision.value, event)]


def relation_cache_request(collection_id: str) -> dict:
    """A ``relation-cache-update`` request for one collection, the event an operator (or
    ``lern-replay-failed``) sends to rewrite its caches; it also re-drives a pending recompute,
    so it is what a failed recompute is recorded as."""
    return {"eid": "BE_JOB_REQUEST",
            "edata": {"action": "relation-cache-update", "mimeType": COLLECTION_MIME_TYPE,
                      "identifier": collection_id}}


# --------------------------------------------------------------------------------------------
# Hierarchy text
# --------------------------------------------------------------------------------------------

class HierarchyError(ValueError):
    """A stored hierarchy that cannot be walked; the message is the failure reason."""


_ANY_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_JSON_ESCAPES = set('"\\/bfnrtu')


def _relax_escape(m: re.Match) -> str:
    c = m.group(1)
    if c in _JSON_ESCAPES:
        return m.group(0)
    return f"\\u{ord(c):04x}" if ord(c) < 0x20 else c


def parse_hierarchy(text: str | None) -> dict:
    """The hierarchy column's JSON text as a dict, or ``HierarchyError``.

    The reference's Jackson mapper enables ``ALLOW_BACKSLASH_ESCAPING_ANY_CHARACTER``, so stored
    hierarchies with escapes such as ``\\'`` are accepted; the same relaxation is applied here,
    only when strict parsing fails. Missing, blank, ``null`` and ``{}`` hierarchies are errors
    (the reference skips them as "Hierarchy Empty"): a collection announced as published
    without a hierarchy is a data problem to surface, not normal traffic.
    """
    if text is None or not text.strip():
        raise HierarchyError("hierarchy is empty")
    try:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            relaxed = _ANY_ESCAPE.sub(_relax_escape, text)
            if relaxed == text:
                raise
            value = json.loads(relaxed)
    except json.JSONDecodeError as e:
        raise HierarchyError(f"malformed hierarchy JSON: {e}") from None
    except RecursionError:
        raise HierarchyError("malformed hierarchy JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise HierarchyError(f"hierarchy must be a JSON object, got {type(value).__name__}")
    if not value:
        raise HierarchyError("hierarchy is empty")
    return value


# --------------------------------------------------------------------------------------------
# Walking the tree
# --------------------------------------------------------------------------------------------

def is_collection(node: dict) -> bool:
    """Collections (the root and its units) have the collection mime type, any case."""
    mime = node.get("mimeType")
    return isinstance(mime, str) and mime.lower() == COLLECTION_MIME_TYPE


def children(node: dict) -> list[dict]:
    """A node's children that are objects; anything else in ``children`` is ignored."""
    kids = node.get("children")
    if not isinstance(kids, list):
        return []
    return [k for k in kids if isinstance(k, dict)]


def node_id(node: dict) -> str | None:
    """The node's identifier, or None when it has no usable one (no key can be built for it)."""
    ident = node.get("identifier")
    return ident if isinstance(ident, str) and ident.strip() else None


def is_optional(node: dict) -> bool:
    """``relationalMetadata.optional`` is ``true`` or ``"true"`` (any case), like the reference's
    ``toString`` comparison."""
    meta = node.get("relationalMetadata")
    if not isinstance(meta, dict):
        return False
    flag = meta.get("optional")
    if isinstance(flag, bool):
        return flag
    return isinstance(flag, str) and flag.lower() == "true"


def _unique(ids: list[str]) -> list[str]:
    """Order-preserving dedup: the values become Redis sets, a content used twice is one member."""
    return list(dict.fromkeys(ids))


def _compose_leaves(node: dict) -> list[str]:
    """Contents under ``node``: the leaves of its child collections, then its direct contents.

    Nested collections are always composed from their children, never taken from their own
    ``leafNodes`` field (the reference's ``compose = true`` branch).
    """
    kids = children(node)
    out = [leaf for kid in kids if is_collection(kid) for leaf in _compose_leaves(kid)]
    out += [i for i in (node_id(kid) for kid in kids if not is_collection(kid)) if i]
    return out


def _own_leaves(node: dict) -> list[str]:
    """A collection's leaf list: its stored ``leafNodes`` field when it has one (published roots
    do), else composed from its children. A ``leafNodes`` that is not a list is ignored."""
    stored = node.get("leafNodes")
    if "leafNodes" in node and isinstance(stored, list):
        return [s for s in stored if isinstance(s, str) and s.strip()]
    return _compose_leaves(node)


def leaf_nodes(unit_id: str | None, node: dict) -> dict[str, list[str]]:
    """``{collection or unit id: [content ids under it]}`` for ``node`` and every unit below.

    Only collections get an entry, and only a non-empty one. When one id occurs twice in the
    tree, the later occurrence wins (the reference builds the map with ``toMap``).
    """
    if not is_collection(node):
        return {}
    out: dict[str, list[str]] = {}
    own = _unique(_own_leaves(node))
    if own and unit_id:
        out[unit_id] = own
    for kid in children(node):
        out.update(leaf_nodes(node_id(kid), kid))
    return out


def _compose_optional(node: dict) -> list[str]:
    """Optional nodes under ``node``: optional children count themselves and are not descended
    into; non-optional children of *any* type are descended into (the reference does not check
    the mime type here, so optional children of, say, a question set count too)."""
    kids = children(node)
    out = [i for kid in kids if not is_optional(kid) for i in _compose_optional(kid)]
    out += [i for i in (node_id(kid) for kid in kids if is_optional(kid)) if i]
    return out


def optional_nodes(unit_id: str | None, node: dict) -> dict[str, list[str]]:
    """``{collection or unit id: [optional node ids under it]}``, non-empty entries only.

    Every collection gets its own entry, including an optional unit: its optional children are
    listed under it even though they do not appear under its ancestors.
    """
    if not is_collection(node):
        return {}
    out: dict[str, list[str]] = {}
    own = _unique(_compose_optional(node))
    if own and unit_id:
        out[unit_id] = own
    for kid in children(node):
        out.update(optional_nodes(node_id(kid), kid))
    return out


def ancestors(ident: str | None, node: dict, parents: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """``{content id: [ids of every collection above it, nearest first]}``.

    Only contents (non-collection nodes) get an entry; a content used in several places gets
    the union of its ancestors over all of them. A collection without identifier is left out
    of its descendants' lists instead of appearing as ``null``.
    """
    if not is_collection(node):
        return {ident: list(parents)} if ident and parents else {}
    chain = (ident, *parents) if ident else parents
    merged: dict[str, list[str]] = {}
    for kid in children(node):
        for leaf, above in ancestors(node_id(kid), kid, chain).items():
            merged[leaf] = _unique([*merged.get(leaf, []), *above])
    return merged


def parent_units(node: dict) -> dict[str, str]:
    """``{unit id: unit JSON}`` for every collection with ``visibility: Parent`` (any case) and at
    least one child, the JSON being the unit with its whole subtree.

    Such units are not published on their own, so readers get them from this cache. Quirk kept:
    a Parent unit without children is not written, and neither are the units below a collection
    without children. The root is written too if it is itself a Parent unit.
    """
    if not is_collection(node):
        return {}
    kids = children(node)
    if not kids:
        return {}
    out: dict[str, str] = {}
    visibility = node.get("visibility")
    ident = node_id(node)
    if ident and isinstance(visibility, str) and visibility.lower() == "parent":
        out[ident] = java_json(node)
    for kid in kids:
        out.update(parent_units(kid))
    return out


class CacheEntries(NamedTuple):
    """What one collection writes: relation cache sets and collection cache strings."""

    sets: dict[str, list[str]]
    """Relation cache: key -> set members (the key is replaced, never merged)."""
    units: dict[str, str]
    """Collection cache: unit id -> unit JSON."""


def cache_entries(root_id: str, hierarchy: dict) -> CacheEntries:
    """Everything the collection ``root_id`` writes, computed from its hierarchy alone.

    ``root_id`` is the event's identifier: it prefixes every relation key and names the root's
    own entries (the hierarchy's own ``identifier`` is only used for the units map). Being a pure
    function of the stored hierarchy is what makes a rewrite idempotent. A hierarchy whose root is
    not a collection yields nothing.
    """
    sets: dict[str, list[str]] = {}
    for kind, entries in ((LEAF_NODES, leaf_nodes(root_id, hierarchy)),
                          (OPTIONAL_NODES, optional_nodes(root_id, hierarchy)),
                          (ANCESTORS, ancestors(root_id, hierarchy))):
        for node, members in entries.items():
            sets[relation_key(root_id, node, kind)] = members
    return CacheEntries(sets, parent_units(hierarchy))


# --------------------------------------------------------------------------------------------
# JSON as the reference writes it
# --------------------------------------------------------------------------------------------

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _java_string(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _SHORT_ESCAPES.get(m.group(0), f"\\u{ord(m.group(0)):04X}"), s) + '"'


def java_double(x: float) -> str:
    """A double as Jackson writes it: Java's ``Double.toString`` (``7.0``, ``1.593769627322E12``,
    ``1.0E-4``), except that NaN and infinities are quoted, as Jackson does by default."""
    if math.isnan(x) or math.isinf(x):
        return f'"{java_double_to_string(x)}"'
    return java_double_to_string(x)


def java_json(value: Any) -> str:
    """Compact JSON the way the reference's default Jackson ``ObjectMapper`` writes a parsed
    hierarchy: key order kept, nulls kept, no spaces, non-ASCII unescaped, control characters as
    ``\\uXXXX`` (upper-case hex) and doubles per ``java_double``. Units in the collection cache are
    therefore byte-identical to the reference's for the same stored hierarchy."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _java_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_java_string(str(k))}:{java_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(java_json(v) for v in value) + "]"
    return _java_string(str(value))
