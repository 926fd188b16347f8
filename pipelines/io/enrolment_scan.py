"""ScanEnrolments: the backfill source of the jobs that take ``--from_cassandra``.

A backfill selects the enrolments of one course, optionally one batch or one learner, straight
from ``user_enrolments`` (no Kafka replay) and turns each row into the job's own work item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import apache_beam as beam

from pipelines.io.cassandra import CassandraClient, CassandraConfig
from pipelines.metrics import counter

Selection = tuple[str, str | None, str | None]  # (course_id, batch_id, user_id)


def scan_query(table: str, course_id: str, batch_id: str | None, user_id: str | None,
               columns: Sequence[str] = ("userid", "courseid", "batchid")) -> tuple[str, list[str]]:
    """The CQL that selects a backfill's enrolments, with its parameters.

    With a learner it is a partition read. Without one it filters on the clustering column of
    every partition (``ALLOW FILTERING``): a full scan, which is what a course-wide backfill is;
    the driver pages through it.
    """
    cols = f"SELECT {', '.join(columns)} FROM {table}"
    if user_id:
        where, params = "userid = ? AND courseid = ?", [user_id, course_id]
        if batch_id:
            where, params = where + " AND batchid = ?", params + [batch_id]
        return f"{cols} WHERE {where}", params
    where, params = "courseid = ?", [course_id]
    if batch_id:
        where, params = where + " AND batchid = ?", params + [batch_id]
    return f"{cols} WHERE {where} ALLOW FILTERING", params


def selection(o: dict[str, Any]) -> Selection:
    """The backfill selection from a job's options; a course is required."""
    if not o.get("course_id"):
        raise SystemExit("--from_cassandra needs --course_id (and optionally --batch_id, --user_id)")
    return o["course_id"], o.get("batch_id"), o.get("user_id")


class _ScanFn(beam.DoFn):
    def __init__(self, cfg: CassandraConfig, table: str, columns: Sequence[str], to_item: Callable, job_name: str):
        self.cfg, self.table, self.columns, self.to_item = cfg, table, tuple(columns), to_item
        self.scanned = counter(job_name, "scanned-enrolment-count")

    def setup(self):
        self.db = CassandraClient(self.cfg)

    def process(self, sel: Selection):
        cql, params = scan_query(f"{self.cfg.keyspace}.{self.table}", *sel, columns=self.columns)
        for row in self.db.execute(cql, params):
            self.scanned.inc()
            item = self.to_item(row)
            if item is not None:
                yield item

    def teardown(self):
        self.db.close()


class ScanEnrolments(beam.PTransform):
    """``p | ScanEnrolments(...)`` -> ``to_item(row)`` for every selected enrolment (``None`` drops a row).

    Counted as ``scanned-enrolment-count``; reshuffled so the work spreads over the workers.
    """

    def __init__(self, cfg: CassandraConfig, table: str, sel: Selection, to_item: Callable, job_name: str,
                 columns: Sequence[str] = ("userid", "courseid", "batchid")):
        super().__init__()
        self.cfg, self.table, self.sel, self.to_item = cfg, table, sel, to_item
        self.job_name, self.columns = job_name, columns

    def expand(self, pbegin):
        return (
            pbegin
            | "Selection" >> beam.Create([self.sel])
            | "Scan" >> beam.ParDo(_ScanFn(self.cfg, self.table, self.columns, self.to_item, self.job_name))
            | "Spread" >> beam.Reshuffle()
        )
