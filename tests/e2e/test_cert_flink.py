"""collection-cert-pre-processor -> collection-certificate-generator on FlinkRunner over real Kafka
topics: issue requests in, generate-certificate events between the jobs, one RC certificate and one
``issued_certificates`` entry per learner, audit events out, duplicates and bad input handled."""

from __future__ import annotations

import json

import pytest
from cassandra.cluster import Cluster

from pipelines import cert_generate, cert_preprocess, job
from pipelines.options.certificates import CertOptions
from tests.e2e.kafka_helpers import consume_all, create_topics, produce
from tests.pipeline.test_cert_jobs import issue_request, issued, rc_creates, seed


def flink(module, *args: str) -> dict:
    return job.run(module.build, ["--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1",
                                  "--kafka_auto_offset_reset=earliest", *args], module.defaults,
                   extra_groups=(CertOptions,))


@pytest.mark.flink
def test_preprocess_then_generate_on_flink(stack, run_id):
    cluster = Cluster(["127.0.0.1"], port=stack["cassandra"])
    try:
        cql = cluster.connect("sunbird_courses")
        c = seed(cql, run_id, {"a": {}, "b": {}, "late": {"status": 1}})
        t = {k: f"e2e.{run_id}.{k}" for k in ("issue", "generate", "prefailed", "audit", "genfailed")}
        create_topics(*t.values())
        requests_in = [issue_request(c, "a"), issue_request(c, "b"), issue_request(c, "a"),  # a twice
                       issue_request(c, "late")]
        produce(t["issue"], [json.dumps(e).encode() for e in requests_in] + [b"{broken"])

        pre = flink(cert_preprocess, f"--kafka_input_topic={t['issue']}", f"--kafka_output_topic={t['generate']}",
                    f"--kafka_output_failed_topic={t['prefailed']}", f"--kafka_groupid={run_id}-pre",
                    "--max_num_records=5")
        assert pre["collection-cert-pre-processor:generate-certificate-events-count"] == 3
        assert pre["collection-cert-pre-processor:skipped-event-count"] == 1

        gen = flink(cert_generate, f"--kafka_input_topic={t['generate']}",
                    f"--kafka_output_audit_topic={t['audit']}", f"--kafka_output_failed_topic={t['genfailed']}",
                    f"--kafka_groupid={run_id}-gen", "--max_num_records=3")
        assert gen["collection-certificate-generator:success-events-count"] == 2
        assert gen["collection-certificate-generator:skipped-event-count"] == 1

        for s in ("a", "b"):
            certs = issued(cql, c, s)
            assert len(certs) == 1 and certs[0]["name"] == "Course Completion"
            assert len(rc_creates(c["uid"](s))) == 1
        assert issued(cql, c, "late") == []
    finally:
        cluster.shutdown()

    generated = [json.loads(v) for _, v in consume_all(t["generate"], expected=3)]
    assert sorted(g["edata"]["userId"] for g in generated) == sorted([c["uid"]("a")] * 2 + [c["uid"]("b")])
    audit = [json.loads(v) for _, v in consume_all(t["audit"], expected=2)]
    assert sorted(a["actor"]["id"] for a in audit) == [c["uid"]("a"), c["uid"]("b")]
    assert all(a["edata"]["type"] == "certificate-issued-svg" for a in audit)
    failed = [json.loads(v) for _, v in consume_all(t["prefailed"], expected=1)]
    assert [f["raw"] for f in failed] == ["{broken"]
    assert consume_all(t["genfailed"], expected=0, timeout=3) == []
