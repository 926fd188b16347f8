"""ScanEnrolments: the backfill source of the jobs that take ``--from_cassandra``.

A backfill takes its work straight from ``user_enrolments`` (no Kafka replay) and turns each
selected row into the job's own work item. The selection is optional: every enrolment of the
platform, or those of one course, batch and/or learner.

Why a token-range scan: ``user_enrolments`` is partitioned by ``userid``, so "every enrolment"
and "every enrolment of a course" are both full-table reads. One query would run on one worker
and, read into a list, hold the whole table in memory. Instead the Murmur3 token ring is cut
into ``ranges`` contiguous ranges, one query each
(``WHERE token(userid) > ? AND token(userid) <= ?``); the ranges are reshuffled so a runner
spreads them over its workers, and each range is read page by page (``page_size`` rows per
request, resumed from the driver's paging state, a page retried alone on a transient fault),
rows emitted as they arrive. Memory per worker is one page, whatever the table size.

How a selection is applied (measured in bench/README.md, "Backfills"):

* with a learner (``--user_id``) it is a partition read: one query, no token ranges;
* with a course (and optionally a batch) each range query also carries
  ``AND courseid = ? [AND batchid = ?] ALLOW FILTERING``: Cassandra drops the other courses'
  rows on the replica, so only the course's rows cross the network; still a parallel, paged,
  token-range scan;
* a batch without a course cannot be a clustering restriction (``batchid`` is the second
  clustering column), so it is filtered on the client.

Every row is also checked against the whole selection on the client (``matches``): a row
outside it is never a work item, whatever the server returned. ``scanned-enrolment-count``
counts the selected rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from pipelines.io.cassandra import TRANSIENT, CassandraClient, CassandraConfig
from pipelines.io.retry import call_with_retries
from pipelines.metrics import counter

Selection = tuple[str | None, str | None, str | None]  # (course_id, batch_id, user_id); None: any
ScanTask = tuple[str, tuple[Any, ...]]  # (cql, parameters): one query of the scan

MIN_TOKEN = -(2**63)
"""Murmur3Partitioner's minimum token; no key hashes to it (Cassandra maps it to the maximum)."""
MAX_TOKEN = 2**63 - 1
KEY_COLUMNS = ("userid", "courseid", "batchid")


@dataclass(frozen=True)
class ScanSettings:
    """How the scan is cut: token ranges (units of parallel work) and rows per page request."""

    ranges: int = 64
    page_size: int = 1000

    def __post_init__(self) -> None:
        if self.ranges < 1 or self.page_size < 1:
            raise ValueError(f"token ranges and page size must be positive: {self}")


def scan_settings(o: dict[str, Any]) -> ScanSettings:
    """``--scan_token_ranges`` and ``--scan_page_size`` from a job's option values."""
    return ScanSettings(int(o.get("scan_token_ranges") or ScanSettings.ranges),
                        int(o.get("scan_page_size") or ScanSettings.page_size))


def selection(o: dict[str, Any]) -> Selection:
    """The backfill selection from a job's options; no course, batch or learner means every enrolment."""
    return o.get("course_id") or None, o.get("batch_id") or None, o.get("user_id") or None


def token_ranges(n: int) -> list[tuple[int, int]]:
    """``n`` ranges ``(lo, hi]`` that together are the whole Murmur3 ring, without overlap.

    The first starts at the minimum token (exclusive: no key has it), the last ends at the
    maximum (inclusive), and each starts where the previous one ends.
    """
    if n < 1:
        raise ValueError(f"need at least one token range, got {n}")
    span = MAX_TOKEN - MIN_TOKEN
    bounds = [MIN_TOKEN + span * i // n for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def scan_columns(columns: Sequence[str]) -> tuple[str, ...]:
    """The asked columns plus the key columns the selection is checked on."""
    return tuple(columns) + tuple(c for c in KEY_COLUMNS if c not in columns)


def scan_tasks(table: str, sel: Selection, columns: Sequence[str], ranges: int) -> list[ScanTask]:
    """The queries of a scan (see the module docstring for which and why)."""
    course_id, batch_id, user_id = sel
    cols = f"SELECT {', '.join(scan_columns(columns))} FROM {table}"
    if user_id:
        where, params = "userid = ?", [user_id]
        if course_id:
            where, params = where + " AND courseid = ?", params + [course_id]
            if batch_id:
                where, params = where + " AND batchid = ?", params + [batch_id]
        return [(f"{cols} WHERE {where}", tuple(params))]
    where, extra = "token(userid) > ? AND token(userid) <= ?", []
    if course_id:
        where += " AND courseid = ?"
        extra.append(course_id)
        if batch_id:
            where += " AND batchid = ?"
            extra.append(batch_id)
        where += " ALLOW FILTERING"
    return [(f"{cols} WHERE {where}", (lo, hi, *extra)) for lo, hi in token_ranges(ranges)]


def matches(row: Any, sel: Selection) -> bool:
    """Whether an enrolment row is in the selection (``None`` selects any value)."""
    course_id, batch_id, user_id = sel
    return ((course_id is None or row.courseid == course_id)
            and (batch_id is None or row.batchid == batch_id)
            and (user_id is None or row.userid == user_id))


def pages(db: CassandraClient, cql: str, params: Sequence[Any], page_size: int) -> Iterator[list]:
    """The result of one query, one page (a list of rows) at a time.

    Each page is its own request, resumed from the previous page's paging state, so a transient
    fault retries that page only and nothing but the current page is held.
    """
    stmt = db.prepare(cql)
    state = None
    while True:
        def fetch(state=state):
            bound = stmt.bind(params)
            bound.fetch_size = page_size
            return db.session.execute(bound, paging_state=state)

        result = call_with_retries(fetch, db.retry, TRANSIENT, f"{cql} (page)")
        yield result.current_rows
        state = result.paging_state
        if not state:
            return


class _ScanFn(beam.DoFn):
    """Runs one query of the scan, emitting ``to_item(row)`` for the selected rows as pages arrive."""

    def __init__(self, cfg: CassandraConfig, sel: Selection, page_size: int, to_item: Callable, job_name: str):
        self.cfg, self.sel, self.page_size, self.to_item = cfg, sel, page_size, to_item
        self.scanned = counter(job_name, "scanned-enrolment-count")

    def setup(self):
        self.db = CassandraClient(self.cfg)

    def process(self, task: ScanTask):
        cql, params = task
        for page in pages(self.db, cql, params, self.page_size):
            selected = [row for row in page if matches(row, self.sel)]
            if selected:
                self.scanned.inc(len(selected))
            for row in selected:
                item = self.to_item(row)
                if item is not None:
                    yield item

    def teardown(self):
        self.db.close()


class ScanEnrolments(beam.PTransform):
    """``p | ScanEnrolments(...)`` -> ``to_item(row)`` for every selected enrolment (``None`` drops a row).

    ``sel`` is ``(course_id, batch_id, user_id)``, any of them ``None``; ``scan`` cuts the
    token-range scan. The queries are reshuffled before they run, so the ranges (not the rows)
    are what a runner distributes; the rows stream out of each range, counted as
    ``scanned-enrolment-count``.
    """

    def __init__(self, cfg: CassandraConfig, table: str, sel: Selection, to_item: Callable, job_name: str,
                 columns: Sequence[str] = KEY_COLUMNS, scan: ScanSettings = ScanSettings()):
        super().__init__()
        self.cfg, self.table, self.sel, self.to_item = cfg, table, sel, to_item
        self.job_name, self.columns, self.scan = job_name, tuple(columns), scan

    def expand(self, pbegin):
        tasks = scan_tasks(f"{self.cfg.keyspace}.{self.table}", self.sel, self.columns, self.scan.ranges)
        return (
            pbegin
            | "Queries" >> beam.Create(tasks)
            | "Spread" >> beam.Reshuffle()
            | "Scan" >> beam.ParDo(_ScanFn(self.cfg, self.sel, self.scan.page_size, self.to_item, self.job_name))
        )
