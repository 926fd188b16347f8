"""The relation-cache-updater composites: select collection requests, then rewrite their caches.

    events --SelectCollectionRequests--> (collection id, event) --UpdateRelationCache--> (done)
                        \\--> failed                                         \\--> failed

The rules (which events are requests, what a hierarchy becomes) are the pure functions of
``pipelines.domain.hierarchy``; the key format is ``pipelines.domain.cache_keys``. The DoFn here
only reads the hierarchy from Cassandra and writes Redis:

* one Redis round trip per collection and cache (a pipeline), and the relation cache rewrite is
  a ``MULTI``/``EXEC`` transaction: the reference deletes and re-adds key by key, so a reader
  (the activity aggregator computing progress from ``leafnodes``) could see a key half-way;
* stale keys are removed: the keys written for a collection are remembered in the set
  ``lern-beam:relation-cache-keys:<collection>`` (same db), and a republish deletes the keys it
  no longer produces in the same transaction, ``WATCH``ed against a concurrent rewrite;
* a change is detected from the cache it replaces: inside that transaction the old required
  contents of the course and of each unit are read (``pipelines.domain.course_changes``), and
  when they differ from the new tree's the same ``MULTI``/``EXEC`` writes the pending-recompute
  marker ``lern-beam:recompute-pending:<course>``. A crash after the rewrite therefore leaves
  the marker, and the next time the course passes (a replay, a republish) its enrolments are
  still re-requested (``pipelines/transforms/course_changes.py``).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import NamedTuple

import apache_beam as beam

from pipelines.domain.cache_keys import (
    LEAF_NODES,
    OPTIONAL_NODES,
    recompute_pending_key,
    relation_key,
)
from pipelines.domain.cache_keys import key_index as key_index_name
from pipelines.domain.course_changes import cached_nodes, required_changed, required_sets, split_relation_sets
from pipelines.domain.hierarchy import (
    CacheEntries,
    HierarchyError,
    cache_entries,
    collection_request,
    parse_hierarchy,
)
from pipelines.io.cassandra import CassandraClient
from pipelines.io.redis_store import RedisClient
from pipelines.metrics import counter
from pipelines.options.relation_cache import RelationCacheSettings
from pipelines.transforms.failures import FAILED_TAG, fail
from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

TOTAL, SUCCESS, FAILED, SKIPPED = ("total-events-count", "success-events-count", "failed-events-count",
                                   "skipped-event-count")
DB_READ, CACHE_WRITE, STALE_DELETE = "db-read-count", "cache-write-count", "cache-stale-key-delete-count"
COURSE_CHANGED = "course-changed-count"
log = logging.getLogger(__name__)


def cql_name(name: str) -> str:
    """A keyspace/table name for CQL: as is when lower-case, else quoted (case-sensitive), like
    the reference's QueryBuilder. Anything that is not an identifier is refused."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,47}", name or ""):
        raise ValueError(f"not a Cassandra identifier: {name!r}")
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else f'"{name}"'


def select_hierarchy(keyspace: str, table: str) -> str:
    return f"SELECT hierarchy FROM {cql_name(keyspace)}.{cql_name(table)} WHERE identifier = ?"


def redis_bytes(s: str) -> bytes:
    """UTF-8 as Jedis writes it: an unpaired surrogate becomes ``?`` instead of an error."""
    return s.encode("utf-8", errors="replace")


def key_index(root_id: str) -> bytes:
    return redis_bytes(key_index_name(root_id))


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


class Rewrite(NamedTuple):
    """What one relation cache rewrite did."""

    stale: int
    """Keys listed in the collection's index that the new tree no longer produces, deleted."""
    changed: bool
    """The required contents of the course or of a unit changed: the pending-recompute marker was written."""


def _old_required(client, root_id: str, old_keys: set[bytes], new_keys) -> dict:
    """The required-content map of the cache about to be replaced: the leaf and optional sets of
    the course, of every unit of the new tree and of every unit in the old key index (so a unit
    the republish removes counts too), read in one pipelined round trip."""
    nodes = {root_id} | cached_nodes(root_id, map(_text, old_keys)) | cached_nodes(root_id, map(_text, new_keys))
    keys = [relation_key(root_id, node, kind) for node in sorted(nodes) for kind in (LEAF_NODES, OPTIONAL_NODES)]
    read = client.pipeline(transaction=False)
    for key in keys:
        read.smembers(redis_bytes(key))
    old = {key: {_text(m) for m in members} for key, members in zip(keys, read.execute(), strict=True) if members}
    return required_sets(*split_relation_sets(root_id, old))


def rewrite_relation_cache(client, root_id: str, sets: dict[str, list[str]], marker_token: str | None = None
                           ) -> Rewrite:
    """Replaces the collection's relation keys in one WATCHed MULTI/EXEC.

    Every key is deleted and re-added (the reference's ``del`` + ``sadd``), so the result depends
    on the hierarchy only. Keys listed in the collection's index but not produced now are deleted.

    With a ``marker_token``, the old required contents (course and units) are read after the
    ``WATCH`` and compared with the new ones; when they differ, the same transaction sets
    ``lern-beam:recompute-pending:<root>`` to the token. The reads sit between ``WATCH`` and
    ``EXEC``, so a concurrent rewrite of the collection (which always rewrites the index, also
    watched with the course's own two sets) aborts this one, which then runs again on what that
    one wrote: the comparison is always against the cache this write replaces. Without a token
    nothing is read or compared (detection off).
    """
    index = key_index(root_id)
    new = {redis_bytes(k): [redis_bytes(m) for m in members] for k, members in sets.items()}
    new_required = None
    if marker_token is not None:
        new_required = required_sets(*split_relation_sets(
            root_id, {_text(k): {_text(m) for m in members} for k, members in new.items()}))

    def txn(pipe) -> Rewrite:
        old_keys = set(pipe.smembers(index))
        changed = new_required is not None and required_changed(
            _old_required(client, root_id, old_keys, new.keys()), new_required)
        stale = old_keys - new.keys()
        pipe.multi()
        if stale:
            pipe.delete(*stale)
        for key, members in new.items():
            pipe.delete(key)
            pipe.sadd(key, *members)
        pipe.delete(index)
        if new:
            pipe.sadd(index, *new)
        if changed:
            pipe.set(redis_bytes(recompute_pending_key(root_id)), marker_token)
        return Rewrite(len(stale), changed)

    watched = [index] if marker_token is None else [
        index, *(redis_bytes(relation_key(root_id, root_id, kind)) for kind in (LEAF_NODES, OPTIONAL_NODES))]
    return client.transaction(txn, *watched, value_from_callable=True)


def write_units(client, units: dict[str, str]) -> None:
    """``SET unit json`` for every unit, in one pipeline (each SET is atomic on its own)."""
    if not units:
        return
    pipe = client.pipeline(transaction=False)
    for unit, text in units.items():
        pipe.set(redis_bytes(unit), redis_bytes(text))
    pipe.execute()


class SelectCollectionRequests(beam.PTransform):
    """``requests, failed = events | SelectCollectionRequests(job_name)``: ``(collection id, event)``
    for every relation cache request; other events are skipped and counted, as in the reference;
    a request naming no collection fails with the reason."""

    def __init__(self, job_name: str):
        super().__init__()
        self.job_name = job_name

    def expand(self, events):
        return (events
                | "ValidateEvents" >> ValidateEvents(self.job_name, collection_request,
                                                     ValidationMetrics(failed=FAILED, skipped=SKIPPED, total=TOTAL)))


class _CountUnparsableFn(beam.DoFn):
    def __init__(self, job_name: str):
        self.total = counter(job_name, TOTAL)
        self.failed = counter(job_name, FAILED)

    def process(self, failed: dict):
        self.total.inc()
        self.failed.inc()
        yield failed


class CountUnparsable(beam.PTransform):
    """Records that never became events are input too: counted in total and failed, passed on."""

    def __init__(self, job_name: str):
        super().__init__()
        self.job_name = job_name

    def expand(self, failed):
        return failed | "Count" >> beam.ParDo(_CountUnparsableFn(self.job_name))


class _UpdateRelationCacheFn(beam.DoFn):
    """Fetches one collection's hierarchy, computes its cache entries, writes both caches."""

    def __init__(self, s: RelationCacheSettings):
        self.s = s
        self.query = select_hierarchy(s.cassandra.keyspace, s.table)
        self.where = f"{s.cassandra.keyspace}.{s.table}"
        self.success = counter(s.job_name, SUCCESS)
        self.failed = counter(s.job_name, FAILED)
        self.db_read = counter(s.job_name, DB_READ)
        self.cache_write = counter(s.job_name, CACHE_WRITE)
        self.stale_delete = counter(s.job_name, STALE_DELETE)
        self.course_changed = counter(s.job_name, COURSE_CHANGED)

    def setup(self):
        self.db = CassandraClient(self.s.cassandra)
        self.relation = RedisClient(self.s.relation)
        self.collection = RedisClient(self.s.collection)

    def teardown(self):
        self.db.close()
        self.relation.close()
        self.collection.close()

    def _fail(self, reason: str, event: dict, stage: str):
        self.failed.inc()
        log.warning("%s: %s", self.s.job_name, reason)
        return fail(self.s.job_name, reason, event, stage=stage)

    def process(self, request: tuple[str, dict]):
        root_id, event = request
        try:
            rows = self.db.execute(self.query, (root_id,))
        except Exception as e:  # noqa: BLE001 - after retries the event is dead-lettered, not lost
            yield self._fail(f"cassandra read of {self.where} failed: {e}", event, "read")
            return
        self.db_read.inc()
        if not rows:
            yield self._fail(f"hierarchy not found: no row in {self.where} for identifier {root_id}", event, "read")
            return
        try:
            entries: CacheEntries = cache_entries(root_id, parse_hierarchy(rows[0].hierarchy))
        except HierarchyError as e:
            yield self._fail(f"{e} (identifier {root_id})", event, "hierarchy")
            return
        except RecursionError:
            yield self._fail(f"hierarchy nested too deeply (identifier {root_id})", event, "hierarchy")
            return
        token = uuid.uuid4().hex if self.s.recompute is not None else None
        try:
            rewrite = self.relation.call(lambda c: rewrite_relation_cache(c, root_id, entries.sets, token),
                                         "relation cache write")
            self.collection.call(lambda c: write_units(c, entries.units), "collection cache write")
        except Exception as e:  # noqa: BLE001 - a replay rewrites everything, so dead-lettering is safe
            yield self._fail(f"redis write failed: {e}", event, "write")
            return
        self.stale_delete.inc(rewrite.stale)
        self.course_changed.inc(int(rewrite.changed))
        self.cache_write.inc(len(entries.sets) + len(entries.units))
        self.success.inc()
        log.info("%s: %s cached (%d relation keys, %d units, %d stale removed%s)", self.s.job_name, root_id,
                 len(entries.sets), len(entries.units), rewrite.stale,
                 ", required contents changed" if rewrite.changed else "")
        yield root_id


class UpdateRelationCache(beam.PTransform):
    """``done, failed = requests | UpdateRelationCache(settings)``: each ``(collection id, event)``
    request rewrites the collection's relation and collection cache entries from its stored
    hierarchy; ``done`` holds the ids of collections cached, ``failed`` a record per failed
    request (read, hierarchy or write stage, with the reason)."""

    def __init__(self, settings: RelationCacheSettings):
        super().__init__()
        self.settings = settings

    def expand(self, requests):
        out = requests | "Update" >> beam.ParDo(_UpdateRelationCacheFn(self.settings)).with_outputs(
            FAILED_TAG, main="done")
        return out.done, out[FAILED_TAG]
