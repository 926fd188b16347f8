"""ComputeProgress: batches of enrolment work -> consumption, aggregate and enrolment writes, events.

Shared by ``pipelines.activity`` (work = completed contents from ``batch-enrolment-update``) and
``pipelines.enrolment_sync`` (work = an enrolment to recompute from its stored consumption). A
batch hits every store in bulk: one concurrent round of prepared reads per table, three
pipelined Redis round trips for the relation cache, one concurrent round of writes per
statement. The rules live in ``pipelines.domain.progress``; this module only fetches, calls
and writes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

import apache_beam as beam
from apache_beam import pvalue

from pipelines.domain import cache_keys as K
from pipelines.domain import progress as P
from pipelines.domain.failures import FAILED_TAG, failed_event
from pipelines.domain.progress import Work
from pipelines.io.cassandra import CassandraClient
from pipelines.io.codec import dumps
from pipelines.io.http import HttpClient
from pipelines.io.redis_store import RedisClient
from pipelines.io.search import CollectionStatus, SearchError, TTLCache
from pipelines.metrics import counter
from pipelines.options.progress import ProgressSettings
from pipelines.transforms.batching import ShardedBatches

AUDIT_TAG, CERT_TAG, PROCESSED_TAG = "audit", "certissue", "processed"


def _cql(settings: ProgressSettings) -> dict[str, str]:
    t = settings.tables
    ks = settings.cassandra.keyspace
    return {
        "consumption": f"SELECT contentid, status, viewcount, completedcount FROM {ks}.{t['consumption']} "
                       "WHERE userid = ? AND courseid = ? AND batchid = ?",
        "enrolment": f"SELECT status FROM {ks}.{t['enrolments']} WHERE userid = ? AND courseid = ? AND batchid = ?",
        "upsert_consumption": f"UPDATE {ks}.{t['consumption']} SET status = ?, viewcount = ?, completedcount = ? "
                              "WHERE userid = ? AND courseid = ? AND batchid = ? AND contentid = ?",
        "upsert_agg": f"UPDATE {ks}.{t['activity_agg']} SET aggregates = aggregates + ?, "
                      "agg_last_updated = agg_last_updated + ? "
                      "WHERE activity_type = 'Course' AND activity_id = ? AND user_id = ? AND context_id = ?",
        "update_enrolment": f"UPDATE {ks}.{t['enrolments']} SET status = 1, progress = ?, contentstatus = ?, "
                            "datetime = ? WHERE userid = ? AND courseid = ? AND batchid = ?",
        # The guard that makes completion a transition: a second writer (replay, recompute, a
        # concurrent worker) finds status 2 and is not applied, so it emits nothing.
        "complete_enrolment": f"UPDATE {ks}.{t['enrolments']} SET status = 2, completedon = ?, progress = ?, "
                              "contentstatus = ?, datetime = ? WHERE userid = ? AND courseid = ? AND batchid = ? "
                              "IF status != 2",
        "complete_enrolment_unguarded": f"UPDATE {ks}.{t['enrolments']} SET status = 2, completedon = ?, "
                                        "progress = ?, contentstatus = ?, datetime = ? "
                                        "WHERE userid = ? AND courseid = ? AND batchid = ?",
    }


class _ComputeProgressFn(beam.DoFn):
    def __init__(self, s: ProgressSettings):
        self.s = s
        n = s.job_name
        self.c = {name: counter(n, name) for name in (
            "processed-enrolment-count", "failed-events-count", "db-read-count", "db-update-count",
            "cache-hit-count", "cache-miss-count", "retired-consumption-events-count", "enrolment-complete-count",
            "cert-issue-events-count", "enrolment-skipped-count")}

    def setup(self):
        self.db = CassandraClient(self.s.cassandra)
        self.redis = RedisClient(self.s.relation_cache)
        self.http = HttpClient(self.s.http_timeout_secs)
        self.search = CollectionStatus(self.s.search_base_url, self.http, TTLCache(self.s.status_cache_secs))
        self.cql = _cql(self.s)

    def teardown(self):
        self.db.close()
        self.redis.close()
        self.http.close()

    # --------------------------------------------------------------------------------- reads

    def _smembers(self, keys: list[str]) -> dict[str, set[str]]:
        keys = sorted(set(keys))
        if not keys:
            return {}

        def run(client):
            pipe = client.pipeline(transaction=False)
            for k in keys:
                pipe.smembers(k)
            return pipe.execute()

        values = self.redis.call(run, "relation cache smembers")
        out = {k: {m.decode() if isinstance(m, bytes) else m for m in v} for k, v in zip(keys, values, strict=True)}
        hits = sum(1 for v in out.values() if v)
        self.c["cache-hit-count"].inc(hits)
        self.c["cache-miss-count"].inc(len(keys) - hits)
        return out

    def _relation_caches(self, contents: dict[P.EnrolmentKey, dict[str, P.ContentStatus]]) -> dict:
        courses = {k.course_id for k in contents}
        sets = self._smembers([rk for c in courses for rk in K.node_keys(c, c)])
        anc_keys = {K.ancestor_key(k.course_id, cid) for k, cs in contents.items() for cid in cs}
        sets.update(self._smembers(list(anc_keys)))
        ancestors = {k: {cid: sets.get(K.ancestor_key(k.course_id, cid), set()) for cid in cs}
                     for k, cs in contents.items()}
        unit_pairs = {(k.course_id, u) for k, cs in contents.items() for u in P.units_to_read(k, cs, ancestors[k])}
        sets.update(self._smembers([rk for c, u in unit_pairs for rk in K.node_keys(c, u)]))
        caches = {}
        for k in contents:
            ids = {k.course_id} | {u for c, u in unit_pairs if c == k.course_id}
            caches[k] = P.RelationCache(
                leaf_nodes={i: sets.get(K.leaf_nodes_key(k.course_id, i), set()) for i in ids},
                optional_nodes={i: sets.get(K.optional_nodes_key(k.course_id, i), set()) for i in ids},
                ancestors=ancestors[k])
        return caches

    # ------------------------------------------------------------------------------- process

    def process(self, shard_batch):
        _, works = shard_batch
        groups: dict[P.EnrolmentKey, list[Work]] = defaultdict(list)
        for w in works:
            groups[w.key].append(w)
        keys = list(groups)
        params = [(k.user_id, k.course_id, k.batch_id) for k in keys]
        try:
            consumption_rows = self.db.execute_many(self.cql["consumption"], params)
            enrolment_rows = self.db.execute_many(self.cql["enrolment"], params)
            self.c["db-read-count"].inc(2 * len(keys))
            contents = {}
            for k, rows in zip(keys, consumption_rows, strict=True):
                stored = P.db_statuses(r._asdict() for r in rows)
                inputs = P.input_statuses(c for w in groups[k] for c in w.completions)
                contents[k] = P.merge_consumption(inputs, stored) if inputs else stored
            caches = self._relation_caches(contents)
        except Exception as e:  # noqa: BLE001 - after retries: dead-letter the batch with the reason
            yield from self._fail(groups.values(), f"store read failed: {e}", "read")
            return

        now_ms = int(time.time() * 1000)
        plans = []
        for k, rows in zip(keys, enrolment_rows, strict=True):
            course_leaves = caches[k].leaf_nodes.get(k.course_id)
            if not course_leaves:
                yield from self._missing_leaf_nodes(k, groups[k])
                continue
            result = P.compute_progress(k, contents[k], caches[k], self.s.module_aggs)
            row = rows[0] if rows else None
            action = P.enrolment_action(result, row.status if row else None, row is not None, self.s.filter_processed)
            plans.append((k, result, action))

        try:
            applied = self._write(plans, now_ms)
        except Exception as e:  # noqa: BLE001
            yield from self._fail((groups[k] for k, _, _ in plans), f"store write failed: {e}", "write")
            return

        for k, result, action in plans:
            self.c["processed-enrolment-count"].inc()
            if self.s.write_consumption:
                for ev in P.content_audit_events(k, result.contents, now_ms):
                    yield pvalue.TaggedOutput(AUDIT_TAG, ev)
            if action is None:
                self.c["enrolment-skipped-count"].inc()
            if action == "complete" and applied.get(k):
                self.c["enrolment-complete-count"].inc()
                self.c["cert-issue-events-count"].inc()
                yield pvalue.TaggedOutput(CERT_TAG, P.cert_issue_event(k, now_ms))
                yield pvalue.TaggedOutput(AUDIT_TAG, P.enrol_complete_audit_event(k, now_ms))
            for w in groups[k]:
                yield pvalue.TaggedOutput(PROCESSED_TAG, w)

    def _write(self, plans, now_ms: int) -> dict[P.EnrolmentKey, bool]:
        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        consumption, aggs, updates, completes = [], [], [], []
        for k, result, action in plans:
            if self.s.write_consumption:
                consumption += [(c.status, c.view_count, c.completed_count, k.user_id, k.course_id, k.batch_id, cid)
                                for cid, c in result.contents.items() if c.from_input]
            aggs += [({"completedCount": float(n)}, {"completedCount": now}, activity_id, k.user_id, k.context_id)
                     for activity_id, n in result.aggregates]
            status_map = P.content_status_map(result.contents)
            if action == "update":
                updates.append((result.progress, status_map, now, k.user_id, k.course_id, k.batch_id))
            elif action == "complete":
                completes.append((k, (now, result.progress, status_map, now, k.user_id, k.course_id, k.batch_id)))
        for cql, rows in (("upsert_consumption", consumption), ("upsert_agg", aggs), ("update_enrolment", updates)):
            if rows:
                self.db.execute_many(self.cql[cql], rows)
                self.c["db-update-count"].inc(len(rows))
        applied: dict[P.EnrolmentKey, bool] = {}
        if completes:
            stmt = "complete_enrolment" if self.s.filter_processed else "complete_enrolment_unguarded"
            results = self.db.execute_many(self.cql[stmt], [p for _, p in completes])
            self.c["db-update-count"].inc(len(completes))
            for (k, _), res in zip(completes, results, strict=True):
                applied[k] = (not self.s.filter_processed) or bool(res and res[0][0])
        return applied

    def _missing_leaf_nodes(self, k: P.EnrolmentKey, works: list[Work]):
        try:
            status = self.search.status(k.course_id)
        except SearchError as e:
            yield from self._fail([works], f"leaf nodes are not available for {k.course_id} and its status is "
                                           f"unknown: {e}", "relation-cache")
            return
        if status == "Retired":
            # Reference: consumption of a retired collection is counted and dropped, not failed.
            self.c["retired-consumption-events-count"].inc(len(works))
            return
        yield from self._fail([works], f"leaf nodes are not available for a published collection: {k.course_id} "
                                       f"(status {status})", "relation-cache")

    def _fail(self, work_groups: Iterable[list[Work]], reason: str, stage: str):
        """One failed record per distinct source event (a split event fails once, kept whole)."""
        seen: set[str] = set()
        for works in work_groups:
            for w in works:
                src = w.source if w.source is not None else P.sync_request(w.key)
                identity = dumps(src)
                if identity in seen:
                    continue
                seen.add(identity)
                self.c["failed-events-count"].inc()
                yield pvalue.TaggedOutput(FAILED_TAG, failed_event(self.s.job_name, reason, src, stage=stage))


class ComputeProgress(beam.PTransform):
    """``PCollection[Work]`` -> tagged outputs ``audit``, ``certissue``, ``failed``, ``processed``.

    Work is batched per ``userId.hashCode % shards`` (the reference's key), at most ``batch_size``
    per batch, flushed after ``max_buffering_secs`` in streaming (``None`` for bounded input).
    """

    def __init__(self, settings: ProgressSettings, shards: int, batch_size: int, max_buffering_secs: float | None):
        super().__init__()
        self.settings, self.shards = settings, shards
        self.batch_size, self.max_buffering_secs = batch_size, max_buffering_secs

    def expand(self, works):
        return (
            works
            | "BatchByUser" >> ShardedBatches(lambda w: w.key.user_id, self.shards, self.batch_size,
                                              self.max_buffering_secs)
            | "Compute" >> beam.ParDo(_ComputeProgressFn(self.settings)).with_outputs(
                AUDIT_TAG, CERT_TAG, FAILED_TAG, PROCESSED_TAG)
        )
