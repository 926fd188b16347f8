"""The relation cache's key format, in one place for the jobs that write it and those that read it.

The reference's relation-cache-updater writes Redis sets ``<collection id>:<node id>:<kind>`` in
db ``redis.database.relationCache.id`` (10): for the collection and each unit its ``leafnodes``
and ``optionalnodes``, for each content its ``ancestors``. The activity, enrolment-sync and
assessment jobs read them.
"""

from __future__ import annotations

LEAF_NODES, OPTIONAL_NODES, ANCESTORS = "leafnodes", "optionalnodes", "ancestors"


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
