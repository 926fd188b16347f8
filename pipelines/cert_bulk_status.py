"""lern-cert-bulk-status: a bulk revoke (or suspend/unsuspend) as a batch job that produces the same
certificate-status requests an operator would send one by one.

    python -m pipelines.cert_bulk_status --from_cassandra --course_id=C [--batch_id=B] \
        [--bulk_issued_from=MS] [--bulk_issued_to=MS] --bulk_change=revoke --bulk_reason="..." \
        --bulk_requested_by=ADMIN [--bulk_requested_at=MS] [--output_dir out/]

Selects the course's certificates in ``certificate_status`` (by batch and issue window; revoked
and superseded ones left out) and writes one request per certificate to
``<env>.certificate.status.request``, which certificate-status-updater applies exactly as any
other request. Each request's id is derived from the run (selection, change, requestedAt) and the
certificate, so running the same bulk job twice produces the same requests, skipped as duplicates.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import apache_beam as beam

from pipelines import job
from pipelines.domain import cert_status as S
from pipelines.io.events import WriteEvents
from pipelines.options.certificates import CertBulkOptions, CertOptions, cert_settings
from pipelines.transforms.cert_status import SelectCertificates

JOB_NAME = "certificate-bulk-status"


def defaults(env: str) -> dict[str, Any]:
    return {"kafka.output.topic": f"{env}.certificate.status.request"}


def build(p: beam.Pipeline, opts) -> None:
    o = job.values(opts)
    if not o["from_cassandra"] or not o["course_id"]:
        raise SystemExit("lern-cert-bulk-status needs --from_cassandra and --course_id")
    requested_at = o["bulk_requested_at"] if o["bulk_requested_at"] is not None else int(time.time() * 1000)
    change, reason, by = o["bulk_change"], o["bulk_reason"] or "", o["bulk_requested_by"] or ""
    run_id = "|".join(str(x) for x in (o["course_id"], o["batch_id"], o["bulk_issued_from"], o["bulk_issued_to"],
                                       change, requested_at))

    def to_request(row: dict) -> dict:
        return S.status_request_event(row["cert_id"], change, requested_at, S.bulk_request_id(run_id, row["cert_id"]),
                                      user_id=row["userid"] or "", course_id=row["courseid"] or "",
                                      batch_id=row["batchid"] or "", reason=reason, requested_by=by)

    rows = p | "Select" >> SelectCertificates(cert_settings(opts, JOB_NAME), o["course_id"], o["batch_id"],
                                              o["bulk_issued_from"], o["bulk_issued_to"])
    rows | "ToRequest" >> beam.Map(to_request) | "WriteRequests" >> WriteEvents(
        job.event_io(opts), o["kafka_output_topic"], key_fn=S.request_key)


main = job.entrypoint(build, defaults, extra_groups=(CertOptions, CertBulkOptions))


if __name__ == "__main__":
    sys.exit(main())
