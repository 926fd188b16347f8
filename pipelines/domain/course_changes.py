"""Did a republish change what a course's learners must complete? Pure functions, no Beam, no IO.

Progress counts, for the course and for each unit, the completed *required* contents: the node's
``leafnodes`` minus its ``optionalnodes`` (``pipelines.domain.progress.required_nodes``, the one
definition both progress jobs use). So a republish changes stored progress exactly when that map
changes for some node: a content added or removed, a node made optional or required, a content
moved between units (course total unchanged, unit aggregates not). Ancestors and the collection
cache are derived from the same tree and need no comparison of their own.

relation-cache-updater compares the map read from the cache it is about to replace with the map
of the new tree, inside the same Redis transaction as the rewrite (``pipelines/transforms/
relation_cache.py``); a difference leaves a pending-recompute marker, and the course's enrolments
are then re-requested (``pipelines/transforms/course_changes.py``, docs/progress.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pipelines.domain.cache_keys import LEAF_NODES, OPTIONAL_NODES, node_of
from pipelines.domain.progress import required_nodes

RequiredSets = dict[str, frozenset[str]]
"""Course or unit id -> the contents progress requires there; nodes with none are left out."""


def required_sets(leaf: Mapping[str, Iterable[str]], optional: Mapping[str, Iterable[str]]) -> RequiredSets:
    """Each node's leaf set minus its optional set, as progress counts them; empty entries dropped
    (a node without required contents counts nothing, whatever its keys hold)."""
    out: RequiredSets = {}
    for node, leaves in leaf.items():
        required = frozenset(required_nodes(leaves, optional.get(node, ())))
        if required:
            out[node] = required
    return out


def split_relation_sets(root_id: str, sets: Mapping[str, Iterable[str]]) -> tuple[dict, dict]:
    """``(leaf, optional)`` node maps of one collection's relation cache sets (``key -> members``);
    ancestors and other collections' keys are ignored."""
    leaf, optional = {}, {}
    for key, members in sets.items():
        node = node_of(root_id, key, LEAF_NODES)
        if node is not None:
            leaf[node] = set(members)
            continue
        node = node_of(root_id, key, OPTIONAL_NODES)
        if node is not None:
            optional[node] = set(members)
    return leaf, optional


def cached_nodes(root_id: str, keys: Iterable[str]) -> set[str]:
    """The nodes that have a ``leafnodes`` or ``optionalnodes`` key among ``keys`` (a key index)."""
    out = set()
    for key in keys:
        node = node_of(root_id, key, LEAF_NODES) or node_of(root_id, key, OPTIONAL_NODES)
        if node is not None:
            out.add(node)
    return out


def required_changed(old: RequiredSets, new: RequiredSets) -> bool:
    """Whether stored progress may be wrong for the new tree. A first publish (nothing cached)
    of a course with required contents is a change: nothing has been computed against it, and a
    lost cache looks the same."""
    return old != new
