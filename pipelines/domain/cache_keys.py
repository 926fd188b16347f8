"""The relation cache's key format, in one place for the jobs that write it and those that read it.

The reference's relation-cache-updater writes Redis sets ``<collection id>:<node id>:<kind>`` in
db ``redis.database.relationCache.id`` (10): for the collection and each unit its ``leafnodes``
and ``optionalnodes``, for each content its ``ancestors``. The activity, enrolment-sync and
assessment jobs read them.
"""

from __future__ import annotations

LEAF_NODES, OPTIONAL_NODES, ANCESTORS = "leafnodes", "optionalnodes", "ancestors"

KEY_INDEX_PREFIX = "lern-beam:relation-cache-keys:"
"""The set of keys last written for a collection; lern-beam's own bookkeeping, read by no job."""
RECOMPUTE_PENDING_PREFIX = "lern-beam:recompute-pending:"
"""``<prefix><course id>``: a string token written with a rewrite that changed the course's required
contents, deleted once the course's recompute requests have left (docs/progress.md, "Recompute on
republish"). lern-beam's own bookkeeping, in the relation cache db so one MULTI/EXEC writes both."""


def relation_key(root_id: str, node: str, kind: str) -> str:
    """``<collection id>:<node id>:<kind>``."""
    return f"{root_id}:{node}:{kind}"


def leaf_nodes_key(course_id: str, node: str) -> str:
    return relation_key(course_id, node, LEAF_NODES)


def optional_nodes_key(course_id: str, node: str) -> str:
    return relation_key(course_id, node, OPTIONAL_NODES)


def ancestor_key(course_id: str, content_id: str) -> str:
    return relation_key(course_id, content_id, ANCESTORS)


def node_keys(course_id: str, node: str) -> list[str]:
    """The leaf and optional sets of the course itself or of one of its units."""
    return [leaf_nodes_key(course_id, node), optional_nodes_key(course_id, node)]


def key_index(root_id: str) -> str:
    """``lern-beam:relation-cache-keys:<collection id>``."""
    return KEY_INDEX_PREFIX + root_id


def recompute_pending_key(course_id: str) -> str:
    """``lern-beam:recompute-pending:<course id>``."""
    return RECOMPUTE_PENDING_PREFIX + course_id


def node_of(root_id: str, key: str, kind: str) -> str | None:
    """The node id of a ``<root>:<node>:<kind>`` key of ``root_id``, or ``None`` for any other key."""
    head, tail = f"{root_id}:", f":{kind}"
    if key.startswith(head) and key.endswith(tail) and len(key) > len(head) + len(tail):
        return key[len(head):-len(tail)]
    return None
