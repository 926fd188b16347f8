"""notification-job on FlinkRunner: requests on a real Kafka topic -> email on the real SMTP server,
a failed SMS re-queued to the input topic with iteration + 1, bad input on the failed topic."""

from __future__ import annotations

import json

import pytest
import requests

from pipelines import job, notification
from tests.e2e.kafka_helpers import consume_all, create_topics, produce
from tests.pipeline.test_notification_job import Recorder, mails, provider_args, req


@pytest.mark.flink
def test_notification_on_flink_sends_once_and_requeues(stack, run_id):
    import threading

    providers = Recorder()
    providers.status["/msg91/api/v2/sendsms"] = 503
    threading.Thread(target=providers.serve_forever, daemon=True).start()
    try:
        topics = {k: f"e2e.{run_id}.{k}" for k in ("in", "failed")}
        create_topics(*topics.values())
        mail = req(f"NS.{run_id}.1", "email", [f"{run_id}@example.org"], data="<p>Hi $n</p>", params={"n": "A&B"},
                   subject="e2e $n")
        events = [mail, mail,  # the same request twice: one email
                  req(f"NS.{run_id}.2", "phone", ["9876543210"], data="text"),
                  req(f"NS.{run_id}.3", "pager", ["x"]),
                  # issue 12: an absurd iteration is dead-lettered, never sent nor marked 3M times
                  req(f"NS.{run_id}.4", "email", [f"{run_id}-it@example.org"], iteration=3_000_000)]
        produce(topics["in"], [json.dumps(e).encode() for e in events] + [b"{broken"])

        totals = job.run(notification.build, [
            "--runner=FlinkRunner", "--flink_master=[local]", "--parallelism=1",
            f"--kafka_input_topic={topics['in']}", f"--kafka_output_failed_topic={topics['failed']}",
            f"--kafka_groupid={run_id}", "--kafka_auto_offset_reset=earliest", "--max_num_records=6",
            *provider_args(providers),
        ], notification.defaults, extra_groups=(notification.NotificationOptions,))
    finally:
        providers.shutdown()
        providers.server_close()

    [m] = mails(run_id)
    assert m["subject"] == "e2e A&B" and m["html"].strip() == "<p>Hi A&amp;B</p>"
    assert [r["path"] for r in providers.requests] == ["/msg91/api/v2/sendsms"]
    records = [json.loads(v) for _, v in consume_all(topics["in"], expected=7) if v != b"{broken"]
    assert [(r["mid"], r["edata"]["iteration"]) for r in records if r["edata"].get("iteration") == 2] == \
        [(f"NS.{run_id}.2", 2)]
    failed = [json.loads(v) for _, v in consume_all(topics["failed"], expected=3)]
    assert sorted(f.get("raw") or f["mid"] for f in failed) == sorted(["{broken", f"NS.{run_id}.3", f"NS.{run_id}.4"])
    [absurd] = [f for f in failed if f.get("mid") == f"NS.{run_id}.4"]
    assert "edata.iteration must be a whole number from 0 to 2" in absurd["failInfo"]["error"]
    t = {k.split(":", 1)[1]: v for k, v in totals.items()}
    assert t["success-events-count"] == 1 and t["duplicate-event-count"] == 1 and t["failed-events-count"] == 1
    assert requests.get("http://127.0.0.1:2526/messages", timeout=5).ok
