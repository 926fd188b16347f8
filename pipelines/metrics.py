"""Beam counters named as the reference names them, and the table a batch run prints at the end.

The reference registers per-job gauges under the job's name; here each job is a Beam metrics
namespace and each reference metric a counter, so Flink's metric reporters and a DirectRunner
result expose the same names.
"""

from __future__ import annotations

from collections.abc import Iterable

from apache_beam.metrics.metric import Metrics, MetricsFilter

ACCOUNTING = "lern-beam"
"""Namespace of the job-independent record accounting (every job's reads and failed output)."""
INPUT_RECORDS = f"{ACCOUNTING}:input-record-count"
FAILED_RECORDS = f"{ACCOUNTING}:failed-record-count"


def counter(namespace: str, name: str):
    return Metrics.counter(namespace, name)


def counter_totals(result, namespace: str | None = None) -> dict[str, int]:
    """Committed counter values of a finished pipeline, keyed ``namespace:name``, summed over steps."""
    flt = MetricsFilter()
    if namespace:
        flt = flt.with_namespace(namespace)
    totals: dict[str, int] = {}
    for c in result.metrics().query(flt)["counters"]:
        key = f"{c.key.metric.namespace}:{c.key.metric.name}"
        value = c.committed if c.committed is not None else c.attempted
        totals[key] = totals.get(key, 0) + int(value or 0)
    return totals


def format_table(totals: dict[str, int]) -> str:
    rows: Iterable[tuple[str, int]] = sorted(totals.items())
    width = max((len(k) for k, _ in rows), default=10)
    lines = [f"{'metric':<{width}}  {'value':>10}", f"{'-' * width}  {'-' * 10}"]
    lines += [f"{k:<{width}}  {v:>10}" for k, v in sorted(totals.items())]
    return "\n".join(lines)
