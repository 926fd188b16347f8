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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam import pvalue

from pipelines.domain import cache_keys as K
from pipelines.domain import progress as P
from pipelines.domain.progress import Work
from pipelines.io.cassandra import TRANSIENT as CASSANDRA_TRANSIENT
from pipelines.io.cassandra import CassandraClient
from pipelines.io.codec import dumps
from pipelines.io.http import HttpClient
from pipelines.io.redis_store import TRANSIENT as REDIS_TRANSIENT
from pipelines.io.redis_store import RedisClient
from pipelines.io.search import CollectionStatus, SearchError, TTLCache
from pipelines.metrics import counter
from pipelines.options.progress import ProgressSettings
from pipelines.transforms.batching import ShardedBatches
from pipelines.transforms.failures import FAILED_TAG, fail, raise_outage

AUDIT_TAG, CERT_TAG, PROCESSED_TAG, CONFIRM_TAG = "audit", "certissue", "processed", "confirm"
TRANSIENT_STORE = CASSANDRA_TRANSIENT + REDIS_TRANSIENT


IN_CHUNK = 100
"""Users per ``userid IN ?`` read: one request per chunk of a course batch's enrolments."""
BATCH_STATEMENTS = 50
"""Statements per write batch (well under Cassandra's batch size failure threshold)."""


def _cql(settings: ProgressSettings) -> dict[str, str]:
    t = settings.tables
    ks = settings.cassandra.keyspace
    in_users = "WHERE userid IN ? AND courseid = ? AND batchid = ?"
    return {
        "consumption": f"SELECT userid, contentid, status, viewcount, completedcount FROM {ks}.{t['consumption']} "
                       + in_users,
        "enrolment": f"SELECT userid, status, progress, contentstatus, completedon FROM {ks}.{t['enrolments']} "
                     + in_users,
        "applied": f"SELECT userid, contentid, eventid, completes, confirmed FROM {ks}.{t['applied']} " + in_users,
        "upsert_consumption": f"UPDATE {ks}.{t['consumption']} SET status = ?, viewcount = ?, completedcount = ? "
                              "WHERE userid = ? AND courseid = ? AND batchid = ? AND contentid = ?",
        "mark_applied": f"INSERT INTO {ks}.{t['applied']} (userid, courseid, batchid, contentid, eventid, completes) "
                        "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?",
        "confirm_applied": f"UPDATE {ks}.{t['applied']} USING TTL ? SET confirmed = true "
                           "WHERE userid = ? AND courseid = ? AND batchid = ? AND contentid = ? AND eventid = ?",
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


@dataclass
class _Stored:
    """What the reads found for one enrolment."""

    consumption: list = field(default_factory=list)
    enrolment: Any = None
    applied: P.Applied = field(default_factory=set)
    completing: P.Applied = field(default_factory=set)  # completions that completed the enrolment
    unconfirmed: P.Applied = field(default_factory=set)  # ... whose outputs are not known to have left


@dataclass
class _Plan:
    key: P.EnrolmentKey
    works: list[Work]
    result: P.ProgressResult
    action: str | None
    stored: _Stored
    fresh: list[tuple[P.ContentCompletion, str]]
    aggregates: list[tuple[str, int]]
    reemit: bool = False


def _ms(value: Any) -> int | None:
    if isinstance(value, datetime):
        v = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(v.timestamp() * 1000)
    return None


class _ComputeProgressFn(beam.DoFn):
    def __init__(self, s: ProgressSettings):
        self.s = s
        n = s.job_name
        self.c = {name: counter(n, name) for name in (
            "processed-enrolment-count", "failed-events-count", "db-read-count", "db-update-count",
            "cache-hit-count", "cache-miss-count", "retired-consumption-events-count", "enrolment-complete-count",
            "cert-issue-events-count", "enrolment-skipped-count", "replayed-content-count",
            "completion-reemitted-count")}

    def setup(self):
        self.db = CassandraClient(self.s.cassandra, self.s.store_retry)
        self.redis = RedisClient(self.s.relation_cache, self.s.store_retry)
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

    def _read(self, keys: list[P.EnrolmentKey]) -> tuple[dict[P.EnrolmentKey, _Stored], dict[P.EnrolmentKey, str]]:
        """Every enrolment's rows, one ``userid IN ?`` request per table and chunk of a course batch.

        Returns the rows found, and a reason for the enrolments whose chunk the store rejected
        (a bad value fails its own chunk, which is then read one enrolment at a time so only the
        offender fails). Transient faults past the retry budget raise.
        """
        stored = {k: _Stored() for k in keys}
        rejected: dict[P.EnrolmentKey, str] = {}
        by_batch: dict[tuple[str, str], list[P.EnrolmentKey]] = defaultdict(list)
        for k in keys:
            by_batch[(k.course_id, k.batch_id)].append(k)
        chunks = [(cb, ks[i:i + IN_CHUNK]) for cb, ks in by_batch.items() for i in range(0, len(ks), IN_CHUNK)]
        tables = ["consumption", "enrolment"] + (["applied"] if self.s.write_consumption else [])
        for table in tables:
            params = [([k.user_id for k in ks], c, b) for (c, b), ks in chunks]
            for ((_, _), ks), rows in zip(chunks, self._read_chunks(self.cql[table], params, rejected, chunks),
                                          strict=True):
                if rows is None:
                    continue
                by_user = {k.user_id: stored[k] for k in ks}
                for r in rows:
                    st = by_user.get(r.userid)
                    if st is None:
                        continue
                    if table == "consumption":
                        st.consumption.append(r)
                    elif table == "enrolment":
                        st.enrolment = r
                    else:
                        st.applied.add((r.contentid, r.eventid))
                        if r.completes:
                            st.completing.add((r.contentid, r.eventid))
                            if not r.confirmed:
                                st.unconfirmed.add((r.contentid, r.eventid))
        self.c["db-read-count"].inc(2 * len(keys))
        return stored, rejected

    def _read_chunks(self, cql: str, params: list, rejected: dict, chunks: list) -> list:
        try:
            return self.db.execute_many(cql, params)
        except TRANSIENT_STORE:
            raise
        except RuntimeError:
            raise
        except Exception:  # noqa: BLE001 - a value the store rejects: find the offending enrolments
            out = []
            for ((c, b), ks), _ in zip(chunks, params, strict=True):
                rows = []
                for k in ks:
                    if k in rejected:
                        continue
                    try:
                        rows += self.db.execute(cql, ([k.user_id], c, b))
                    except TRANSIENT_STORE:
                        raise
                    except Exception as e:  # noqa: BLE001
                        rejected[k] = f"store read rejected the enrolment: {e}"
                out.append(rows)
            return out

    # ------------------------------------------------------------------------------- process

    def process(self, shard_batch):
        _, works = shard_batch
        groups: dict[P.EnrolmentKey, list[Work]] = defaultdict(list)
        for w in works:
            groups[w.key].append(w)
        try:
            stored, rejected = self._read(list(groups))
            for k, reason in rejected.items():
                yield from self._fail([groups.pop(k)], reason, "read")
            contents, fresh = {}, {}
            for k in groups:
                st = stored[k]
                db = P.db_statuses(r._asdict() for r in st.consumption)
                fresh[k] = P.fresh_completions(groups[k], st.applied) if self.s.write_consumption else []
                replayed = sum(len(w.completions) for w in groups[k]) - len(fresh[k])
                self.c["replayed-content-count"].inc(max(0, replayed))
                inputs = P.input_statuses(c for c, _ in fresh[k])
                contents[k] = P.merge_consumption(inputs, db) if inputs else db
            caches = self._relation_caches(contents)
        except Exception as e:  # noqa: BLE001 - after retries
            yield from self._store_fault(groups.values(), f"store read failed: {e}", "read", e)
            return

        now_ms = int(time.time() * 1000)
        plans = []
        for k, works_k in groups.items():
            course_leaves = caches[k].leaf_nodes.get(k.course_id)
            if not course_leaves:
                yield from self._missing_leaf_nodes(k, works_k)
                continue
            st = stored[k]
            result = P.compute_progress(k, contents[k], caches[k], self.s.module_aggs)
            row = st.enrolment
            action = P.enrolment_action(result, row.status if row else None, row is not None, self.s.filter_processed)
            changed = {c.content_id for c, _ in fresh[k]} if self.s.write_consumption else None
            aggregates = P.changed_aggregates(result, changed, caches[k].ancestors) if changed != set() else []
            if action == "update" and row is not None and (row.status, row.progress, dict(row.contentstatus or {})) \
                    == (1, result.progress, P.content_status_map(result.contents)):
                action = "unchanged"
            completed_recently = row is not None and row.status == P.COMPLETED and (
                now_ms - (_ms(row.completedon) or 0) < self.s.replay_window_secs * 1000)
            recompute = not any(w.completions for w in works_k)  # enrolment-reconciliation, a republish
            reemit = row is not None and row.status == P.COMPLETED and (
                P.replayed_completing_event(works_k, st.unconfirmed)
                or (completed_recently and (recompute or P.replayed_completing_event(works_k, st.completing))))
            plans.append(_Plan(k, works_k, result, action, st, fresh[k], aggregates, reemit))

        try:
            applied = self._write(plans, now_ms)
        except Exception as e:  # noqa: BLE001
            yield from self._store_fault((p.works for p in plans), f"store write failed: {e}", "write", e)
            return

        for plan in plans:
            k, result, action = plan.key, plan.result, plan.action
            self.c["processed-enrolment-count"].inc()
            if self.s.write_consumption:
                for ev in P.content_audit_events(k, result.contents, now_ms):
                    yield pvalue.TaggedOutput(AUDIT_TAG, ev)
            if action is None:
                self.c["enrolment-skipped-count"].inc()
            if action == "complete" and applied.get(k):
                self.c["enrolment-complete-count"].inc()
                yield from self._completion_events(k, now_ms)
                yield pvalue.TaggedOutput(CONFIRM_TAG, (k, tuple((c.content_id, eid) for c, eid in plan.fresh)))
            elif plan.reemit:
                # The event that completed this enrolment is back and its completion was never
                # confirmed (a crash before its outputs left): they go again, with the same ids.
                self.c["completion-reemitted-count"].inc()
                yield from self._completion_events(k, _ms(plan.stored.enrolment.completedon) or now_ms)
                yield pvalue.TaggedOutput(CONFIRM_TAG, (k, tuple(sorted(plan.stored.unconfirmed))))
            for w in plan.works:
                yield pvalue.TaggedOutput(PROCESSED_TAG, w)

    def _completion_events(self, k: P.EnrolmentKey, ets_ms: int):
        self.c["cert-issue-events-count"].inc()
        ids = P.completion_ids(k)
        yield pvalue.TaggedOutput(CERT_TAG, P.cert_issue_event(k, ets_ms, ids))
        yield pvalue.TaggedOutput(AUDIT_TAG, P.enrol_complete_audit_event(k, ets_ms, ids))

    def _write(self, plans: list[_Plan], now_ms: int) -> dict[P.EnrolmentKey, bool]:
        """Writes in the order that makes every crash point safe to replay.

        1. aggregates and in-progress enrolment updates (values: rewriting them is harmless);
        2. consumption counters together with their applied-event records, one LOGGED batch per
           group of enrolments (all or nothing: a replay either finds both or neither), events
           that will complete the enrolment flagged ``completes``;
        3. the completion LWT. A crash before 3 is replayed with the counters already counted and
           the completion still to do; a crash after 3 replays a ``completes`` event, which
           re-emits the completion's events (same ids) instead of losing them while unconfirmed
           (``_ConfirmCompletionsFn``) or, in streaming, younger than the replay window.
        """
        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        values, counted, completes = [], [], []
        for plan in plans:
            k, result, action = plan.key, plan.result, plan.action
            values += [(self.cql["upsert_agg"], ({"completedCount": float(n)}, {"completedCount": now}, activity_id,
                                                 k.user_id, k.context_id))
                       for activity_id, n in plan.aggregates]
            status_map = P.content_status_map(result.contents)
            if action == "update":
                values.append((self.cql["update_enrolment"],
                               (result.progress, status_map, now, k.user_id, k.course_id, k.batch_id)))
            elif action == "complete":
                completes.append((k, (now, result.progress, status_map, now, k.user_id, k.course_id, k.batch_id)))
            if self.s.write_consumption and plan.fresh:
                group = [(self.cql["upsert_consumption"], (c.status, c.view_count, c.completed_count, k.user_id,
                                                           k.course_id, k.batch_id, cid))
                         for cid, c in result.contents.items() if c.from_input]
                group += [(self.cql["mark_applied"], (k.user_id, k.course_id, k.batch_id, c.content_id, eid,
                                                      action == "complete", self.s.applied_ttl_secs))
                          for c, eid in plan.fresh]
                counted.append(group)
        self.db.execute_batches(values, max_statements=BATCH_STATEMENTS)
        self.db.execute_batches(counted, logged=True, max_statements=BATCH_STATEMENTS)
        self.c["db-update-count"].inc(len(values) + sum(1 for g in counted for cql, _ in g
                                                         if cql == self.cql["upsert_consumption"]))
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

    def _store_fault(self, work_groups: Iterable[list[Work]], reason: str, stage: str, error: Exception):
        """An outage in streaming fails the bundle (``raise_outage``); anything else, or any fault
        in batch, is dead-lettered with the reason (``lern-replay-failed`` re-drives it)."""
        raise_outage(error, self.s.dead_letter_outages)
        yield from self._fail(work_groups, reason, stage)

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
                yield fail(self.s.job_name, reason, src, stage=stage)


class _ConfirmCompletionsFn(beam.DoFn):
    """Sets ``confirmed`` on the applied completions whose completion outputs have left.

    It runs one buffered stage after the completion (``ShardedBatches`` holds its input in
    checkpointed state, and flushes in a later bundle than the one that emitted the outputs), so
    a crash before it leaves the completion unconfirmed and a replay re-emits it; a deliberate
    replay after it finds it confirmed and emits nothing (in streaming, unless the completion is
    younger than the replay window: a crash replay, whose outputs may still be lost).
    """

    def __init__(self, s: ProgressSettings):
        self.s = s
        self.confirmed = counter(s.job_name, "completion-confirmed-count")
        self.unconfirmed = counter(s.job_name, "completion-confirm-failed-count")

    def setup(self):
        self.db = CassandraClient(self.s.cassandra, self.s.store_retry)
        self.cql = _cql(self.s)["confirm_applied"]

    def teardown(self):
        self.db.close()

    def process(self, shard_batch):
        _, confirms = shard_batch
        rows = [(self.s.applied_ttl_secs, k.user_id, k.course_id, k.batch_id, cid, eid)
                for k, pairs in confirms for cid, eid in pairs]
        try:
            self.db.execute_batches([(self.cql, r) for r in rows], max_statements=BATCH_STATEMENTS)
        except Exception as e:
            raise_outage(e, self.s.dead_letter_outages)
            # Batch: the only cost of a lost confirmation is one re-emission (same ids) on a replay.
            self.unconfirmed.inc(len(confirms))
            return []
        self.confirmed.inc(len(confirms))
        return []  # a sink step: nothing goes on


class ComputeProgress(beam.PTransform):
    """``PCollection[Work]`` -> tagged outputs ``audit``, ``certissue``, ``failed``, ``processed``.

    Work is batched per ``userId.hashCode % shards`` (the reference's key), at most ``batch_size``
    per batch, flushed after ``max_buffering_secs`` in streaming (``None`` for bounded input).
    Completions are confirmed in a later stage (``_ConfirmCompletionsFn``).
    """

    def __init__(self, settings: ProgressSettings, shards: int, batch_size: int, max_buffering_secs: float | None):
        super().__init__()
        self.settings, self.shards = settings, shards
        self.batch_size, self.max_buffering_secs = batch_size, max_buffering_secs

    def expand(self, works):
        out = (
            works
            | "BatchByUser" >> ShardedBatches(lambda w: w.key.user_id, self.shards, self.batch_size,
                                              self.max_buffering_secs)
            | "Compute" >> beam.ParDo(_ComputeProgressFn(self.settings)).with_outputs(
                AUDIT_TAG, CERT_TAG, FAILED_TAG, PROCESSED_TAG, CONFIRM_TAG)
        )
        _ = (
            out[CONFIRM_TAG]
            | "BatchConfirms" >> ShardedBatches(lambda kv: kv[0].user_id, self.shards, self.batch_size,
                                                self.max_buffering_secs)
            | "ConfirmCompletions" >> beam.ParDo(_ConfirmCompletionsFn(self.settings))
        )
        return out
