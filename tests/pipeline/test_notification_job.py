"""notification-job on DirectRunner: email to the stack's real SMTP server (asserted via its HTTP view),
SMS and FCM to a recording HTTP server started here (Sunbird's providers do not exist locally),
the dedup store in real Redis; replay, bad input and SMTP refusal."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import apache_beam as beam
import pytest
import redis
import requests

from pipelines import notification
from pipelines.domain.notification import ACTION
from tests.batch_runs import read_topic, run_job

SMTP_VIEW = "http://127.0.0.1:2526/messages"
ROOT = Path(__file__).resolve().parents[2]


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.status: dict[str, int] = {}  # path -> forced status
        self.replies: dict[str, dict] = {}  # path -> forced JSON reply
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                         "body": json.loads(body or b"null")})
        status = self.server.status.get(self.path, 200)
        reply = {"multicast_id": 1, "success": 1, "failure": 0, "results": [{"message_id": "m"}]} \
            if self.path.startswith("/fcm") else {"type": "success", "message": "ok"}
        data = json.dumps(self.server.replies.get(self.path, reply)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def providers():
    srv = Recorder()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def provider_args(srv: Recorder) -> list[str]:
    return [f"--sunbird_msg_91_baseurl={srv.url}/msg91/", "--sms_auth_key=sms-key-1",
            f"--sunbird_fcm_url={srv.url}/fcm/send", "--fcm_account_key=key=fcm-key-1", "--http_retries=0"]


def req(mid, mode, ids, data="Hi", params=None, iteration=1, **config) -> dict:
    return {"eid": "BE_JOB_REQUEST", "mid": mid, "ets": 1700000000000, "actor": {"id": "Notify", "type": "System"},
            "object": {"id": "obj", "type": "TopicNotifyAll"}, "context": {"pdata": {"id": "org.sunbird.platform"}},
            "edata": {"action": ACTION, "iteration": iteration,
                      "request": {"notification": {
                          "mode": mode, "ids": ids, "config": config, "deliveryType": "message",
                          "template": {"data": data, "params": params or {}}}}}}


def run(tmp_path: Path, name: str, lines: list, *extra: str) -> tuple[dict, Path]:
    return run_job(notification, tmp_path, name, lines, *extra, extra_groups=(notification.NotificationOptions,))


def read(out: Path, topic: str) -> list[dict]:
    return read_topic(out, topic, missing_ok=True)


def mails(run_id: str) -> list[dict]:
    return [m for m in requests.get(SMTP_VIEW, timeout=5).json() if any(run_id in r for r in m["rcpt_tos"])]


def outcome(t: dict) -> tuple[int, int, int]:
    """(processed: sent or re-queued, skipped: not a notification or duplicate, failed: dead-lettered)."""
    return (t.get("success-events-count", 0) + t.get("failed-events-count", 0),
            t.get("skipped-event-count", 0) + t.get("duplicate-event-count", 0),
            t.get("dead-letter-events-count", 0))


def test_email_sms_and_push_are_sent_once(stack, providers, tmp_path, run_id):
    a, b, c = (f"{run_id}-{x}@example.org" for x in "abc")
    events = [
        req(f"NS.{run_id}.1", "email", [a], data="<p>Dear $firstName, you completed ${course}.</p>",
            params={"firstName": "Ann <Admin> Ünïcødé ✓", "course": "Maths & Co"}, subject="Certificate for $course ✓"),
        req(f"NS.{run_id}.2", "email", [b, c], data="<p>Batch news</p>", subject="News"),
        req(f"NS.{run_id}.3", "phone", ["9876543210", "+919812345678"], data="You completed $course.",
            params={"course": "Sunbird training"}),
        req(f"NS.{run_id}.4", "Device", ["dev-1", "dev-2"]),
    ]
    events[3]["edata"]["request"]["notification"]["rawData"] = {"title": "Hello", "id": run_id}
    totals, out = run(tmp_path, "send", events, *provider_args(providers))

    got = {tuple(m["rcpt_tos"]): m for m in mails(run_id)}
    assert set(got) == {(a,), (b, c)}
    one = got[(a,)]
    assert one["from"] == "support@open-sunbird.org" and one["mail_from"] == "support@open-sunbird.org"
    assert one["to"] == a and one["subject"] == "Certificate for Maths & Co ✓"
    ctype = one["headers"]["Content-Type"]
    assert ctype.startswith("text/html") and 'charset="utf-8"' in ctype
    assert one["html"].strip() == "<p>Dear Ann &lt;Admin&gt; Ünïcødé ✓, you completed Maths &amp; Co.</p>"
    many = got[(b, c)]
    assert many["to"] is None and "Bcc" not in many["headers"] and many["subject"] == "News"  # recipients hidden

    by_path = {r["path"]: r for r in providers.requests}
    assert set(by_path) == {"/msg91/api/v2/sendsms", "/fcm/send"}
    sms = by_path["/msg91/api/v2/sendsms"]
    assert sms["headers"]["authkey"] == "sms-key-1" and sms["headers"]["content-type"] == "application/json"
    assert sms["body"] == {"sender": "TesSun", "route": "4", "country": "91",
                           "sms": [{"message": "You+completed+Sunbird+training.",
                                    "to": ["9876543210", "+919812345678"]}]}
    fcm = by_path["/fcm/send"]
    assert fcm["headers"]["authorization"] == "key=fcm-key-1"
    assert fcm["body"] == {"data": {"title": "Hello", "id": run_id}, "dry_run": False,
                           "registration_ids": ["dev-1", "dev-2"]}

    assert totals["success-events-count"] == 4 and totals["email-sent-count"] == 2
    assert totals["phone-sent-count"] == 1 and totals["device-sent-count"] == 1
    assert outcome(totals) == (4, 0, 0) and totals["total-events-count"] == 4
    assert read(out, "lms.notification.failed") == [] and read(out, "lms.notification") == []
    dedup = redis.Redis(port=stack["redis"], db=3)
    assert all(dedup.exists(f"notification:NS.{run_id}.{i}:{it}") for i in range(1, 5) for it in (1, 2))
    assert 0 < dedup.ttl(f"notification:NS.{run_id}.1:1") <= 604800

    # Replay: nothing is sent again.
    totals, out = run(tmp_path, "replay", events, *provider_args(providers))
    assert len(mails(run_id)) == 2 and len(providers.requests) == 2
    assert totals["duplicate-event-count"] == 4 and totals.get("success-events-count", 0) == 0
    assert outcome(totals) == (0, 4, 0)


def test_bad_input_and_smtp_refusal_are_accounted(stack, providers, tmp_path, run_id):
    ok = f"{run_id}-ok@example.org"
    lines = [
        req(f"NS.{run_id}.ok", "email", [ok], subject="fine"),
        req(f"NS.{run_id}.mode", "fax", ["x"]),
        req(f"NS.{run_id}.noids", "email", None),
        req(f"NS.{run_id}.badaddr", "email", [f"{run_id}-x@example.org", "not an address"]),
        {"eid": "BE_JOB_REQUEST", "mid": f"NS.{run_id}.other", "edata": {"action": "something-else"}},
        "{not json",
        req(f"NS.{run_id}.sms500", "phone", ["9876543210"], data="x"),
        req(f"NS.{run_id}.fcmfail", "device", ["stale-token"]),
    ]
    providers.status["/msg91/api/v2/sendsms"] = 503
    providers.replies["/fcm/send"] = {"multicast_id": 2, "success": 0, "failure": 1,
                                      "results": [{"error": "NotRegistered"}]}
    totals, out = run(tmp_path, "bad", lines, *provider_args(providers))

    assert [m["rcpt_tos"] for m in mails(run_id)] == [[ok]]  # the bad address's valid neighbour was not mailed
    failed = read(out, "lms.notification.failed")
    reasons = {f.get("mid", "raw"): f["failInfo"]["error"] for f in failed}
    assert set(reasons) == {f"NS.{run_id}.mode", f"NS.{run_id}.noids", f"NS.{run_id}.badaddr", "raw"}
    assert "unknown notification mode" in reasons[f"NS.{run_id}.mode"]
    assert "without ids" in reasons[f"NS.{run_id}.noids"] and "not an address" in reasons[f"NS.{run_id}.badaddr"]
    assert all(f["jobName"] == "notification-trigger" for f in failed)
    requeued = read(out, "lms.notification")
    assert sorted((r["mid"], r["edata"]["iteration"]) for r in requeued) == [
        (f"NS.{run_id}.fcmfail", 2), (f"NS.{run_id}.sms500", 2)]
    sms = next(r for r in requeued if r["mid"].endswith("sms500"))
    assert sms["edata"]["request"] == lines[-2]["edata"]["request"] and sms["ets"] == lines[-2]["ets"]
    processed, skipped, failed_n = outcome(totals)
    assert (processed, skipped, failed_n) == (3, 1, 4) and processed + skipped + failed_n == len(lines)
    assert totals["failed-events-count"] == 2 and totals["success-events-count"] == 1
    # A failed send is not marked: its retry is not a duplicate.
    assert not redis.Redis(port=stack["redis"], db=3).exists(f"notification:NS.{run_id}.sms500:2")


def test_smtp_refusing_requeues_then_dead_letters(stack, tmp_path, run_id):
    first = req(f"NS.{run_id}.r1", "email", [f"{run_id}-r@example.org"], iteration=1)
    last = req(f"NS.{run_id}.r2", "email", [f"{run_id}-r@example.org"], iteration=2)
    # Nothing listens on port 1: the connection is refused.
    totals, out = run(tmp_path, "refused", [first, last], "--mail_server_port=1", "--mail_server_timeout_secs=2")
    assert [(r["mid"], r["edata"]["iteration"]) for r in read(out, "lms.notification")] == [(first["mid"], 2)]
    dead = read(out, "lms.notification.failed")
    assert [d["mid"] for d in dead] == [last["mid"]]
    assert "SMTP send failed" in dead[0]["failInfo"]["error"] and "iteration 2 of 2" in dead[0]["failInfo"]["error"]
    assert outcome(totals) == (1, 0, 1) and mails(run_id) == []


def _smtp_module():
    spec = importlib.util.spec_from_file_location("lern_emulator_smtp_nt", ROOT / "local" / "emulator" / "smtp.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_smtp_login_with_password_from_env_and_refused_login(stack, tmp_path, run_id, monkeypatch, capsys):
    smtp = _smtp_module().start(port=0, maildir=tmp_path / "maildir", user="mailer", password="s3cret-pw")
    try:
        args = ["--mail_server_host=127.0.0.1", f"--mail_server_port={smtp.smtp_port}",
                "--mail_server_username=mailer", "--mail_server_from_email=noreply@example.org"]
        monkeypatch.setenv("sunbird_mail_server_password", "s3cret-pw")
        ev = req(f"NS.{run_id}.auth", "email", [f"{run_id}@example.org"], subject="auth")
        totals, _ = run(tmp_path, "auth", [ev], *args)
        assert totals["success-events-count"] == 1
        [m] = smtp.messages()
        assert m["auth_user"] == "mailer" and m["from"] == "noreply@example.org"

        monkeypatch.setenv("sunbird_mail_server_password", "wrong-pw")
        ev2 = req(f"NS.{run_id}.auth2", "email", [f"{run_id}@example.org"], subject="auth", iteration=2)
        totals, out = run(tmp_path, "auth2", [ev2], *args)
        [dead] = read(out, "lms.notification.failed")
        assert "SMTP login refused (535)" in dead["failInfo"]["error"]
        assert len(smtp.messages()) == 1
        logs = capsys.readouterr()
        assert "s3cret-pw" not in logs.out + logs.err and "wrong-pw" not in json.dumps(dead)
    finally:
        smtp.stop()


def test_absurd_iterations_are_dead_lettered_before_anything_is_sent(stack, providers, tmp_path, run_id):
    """Issue 12: an email with iteration 3,000,000 used to be sent and then mark 3,000,001 dedup
    keys (1e40 exhausted the worker's memory). Such requests are rejected with a reason now."""
    to = f"{run_id}-it@example.org"
    values = [3_000_000, 1e40, -1, 3, 2.5, "x"]
    lines = [req(f"NS.{run_id}.bad{i}", "email", [to], iteration=v) for i, v in enumerate(values)]
    ok = req(f"NS.{run_id}.ok", "email", [to], iteration=2)
    totals, out = run(tmp_path, "iterations", [*lines, ok], *provider_args(providers))

    failed = read(out, "lms.notification.failed")
    assert sorted(f["mid"] for f in failed) == sorted(e["mid"] for e in lines)
    for f in failed:
        assert "edata.iteration must be a whole number from 0 to 2" in f["failInfo"]["error"]
        assert f["failInfo"]["stage"] == "validate" and f["edata"]["request"] == ok["edata"]["request"]
    assert [f["edata"]["iteration"] for f in sorted(failed, key=lambda f: f["mid"])] == values  # kept whole
    assert [m["rcpt_tos"] for m in mails(run_id)] == [[to]]  # only the valid request was sent
    dedup = redis.Redis(port=stack["redis"], db=3)
    assert sorted(k.decode() for k in dedup.scan_iter(f"notification:NS.{run_id}.*", count=1000)) == [
        f"notification:NS.{run_id}.ok:{i}" for i in range(3)]
    assert totals["dead-letter-events-count"] == len(values) and totals["success-events-count"] == 1
    assert outcome(totals) == (1, 0, len(values))


def test_send_notifications_composite_against_smtp_and_redis(stack, tmp_path, run_id):
    """SendNotifications alone (as Beam's own composites are tested): one email sent through the
    real SMTP server, a duplicate dropped by the real dedup store, a refused SMTP send re-queued
    and, on its last attempt, dead-lettered."""
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.io.redis_store import RedisConfig
    from pipelines.io.senders import ChannelConfig
    from pipelines.options.notification import NotificationSettings
    from pipelines.transforms.notification import SendNotifications

    good = req(f"NS.{run_id}.c1", "email", [f"{run_id}-c@example.org"], subject="composite")
    dedup_cfg = RedisConfig(port=stack["redis"], db=3)
    ok = NotificationSettings(ChannelConfig(smtp_port=stack["smtp"]))
    with TestPipeline() as p:
        sent, retry, failed = (p | "Good" >> beam.Create([good, good])
                               | "SendOk" >> SendNotifications("notification-trigger", ok, dedup_cfg,
                                                               max_buffering_secs=None))
        assert_that(sent | "SentMid" >> beam.Map(lambda e: e["mid"]), equal_to([good["mid"]]), label="sent")
        assert_that(retry, equal_to([]), label="noretry")
        assert_that(failed, equal_to([]), label="nofail")
    assert [m["subject"] for m in mails(run_id)] == ["composite"]
    assert redis.Redis(port=stack["redis"], db=3).exists(f"notification:{good['mid']}:2")

    first = req(f"NS.{run_id}.c2", "email", [f"{run_id}-r@example.org"], iteration=1)
    last = req(f"NS.{run_id}.c3", "email", [f"{run_id}-r@example.org"], iteration=2)
    refused = NotificationSettings(ChannelConfig(smtp_port=1, smtp_timeout_secs=2), dedup_enabled=False)
    with TestPipeline() as p:
        sent, retry, failed = (p | "Refused" >> beam.Create([first, last])
                               | "SendRefused" >> SendNotifications("notification-trigger", refused, None,
                                                                    max_buffering_secs=None))
        assert_that(sent, equal_to([]), label="nothing-sent")
        assert_that(retry | "RetryIt" >> beam.Map(lambda e: (e["mid"], e["edata"]["iteration"])),
                    equal_to([(first["mid"], 2)]), label="requeued")
        assert_that(failed | "Why" >> beam.Map(lambda f: (f["mid"], "SMTP send failed" in f["failInfo"]["error"],
                                                          f["jobName"])),
                    equal_to([(last["mid"], True, "notification-trigger")]), label="dead")



# ---------------------------------------------------------------- issue 12: a hostile corpus

_DEEP: dict = {}
_node = _DEEP
for _ in range(80):
    _node["x"] = {}
    _node = _node["x"]
HOSTILE = [None, "", " ", 0, -1, 3_000_000, 1.5e308, 2.5, True, [], {}, ["a", 1, None], {"k": "v"}, "x" * 100_000,
           "Zoë 🎓 \u202eevil\u202c ☃", "\x00\x01\x7f", "'; DROP TABLE x; --", "<script>alert(1)</script>",
           "${jndi:ldap://x/a}", "$b {0} %s", "a@b.org\r\nBcc: eve@example.org", "a/b?fields=x#frag", _DEEP]
MISSING = object()
RAW = ["{broken", "[]", "42", "null", '"text"', '{"a": NaN}', '{"a": 1e999999}', '"\\ud800"', "{" * 10_000]


def hostile_corpus(base: dict, paths: list[tuple], run_id: str) -> list:
    """One event per (field, hostile value) with its own mid, plus raw lines that are not events."""
    events = []
    for path in paths:
        for value in [*HOSTILE, MISSING]:
            ev = copy.deepcopy(base)
            node = ev
            for key in path[:-1]:
                node = node[key]
            if value is MISSING:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = copy.deepcopy(value)
            events.append(ev)
    for i, ev in enumerate(events):
        ev["mid"] = f"NS.{run_id}.h{i}"
    return [*events, *RAW]


def strict_topics(out: Path) -> dict[str, list[dict]]:
    def reject(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return {p.name: [json.loads(line, parse_constant=reject) for line in p.read_bytes().decode().splitlines() if line]
            for p in out.glob("*.jsonl")}


def test_hostile_corpus_is_contained_and_accounted(stack, tmp_path, run_id):
    base = req("placeholder", "email", [f"{run_id}-h@example.org"], data="<p>$n</p>", params={"n": "x"}, subject="S")
    paths = [("edata",), ("edata", "action"), ("edata", "iteration"), ("edata", "request"),
             ("edata", "request", "notification"), ("edata", "request", "notification", "mode"),
             ("edata", "request", "notification", "ids"), ("edata", "request", "notification", "config"),
             ("edata", "request", "notification", "config", "subject"),
             ("edata", "request", "notification", "template"),
             ("edata", "request", "notification", "template", "data"),
             ("edata", "request", "notification", "template", "params"), ("eid",)]
    inputs = hostile_corpus(base, paths, run_id)
    assert len(inputs) >= 200
    totals, out = run(tmp_path, "corpus", inputs)  # no SMS/FCM keys: those sends fail without a network call

    topics = strict_topics(out)
    failed = topics.get("local.lms.notification.failed.jsonl", [])
    requeued = topics.get("local.lms.notification.jsonl", [])
    processed, skipped, failed_n = outcome(totals)
    assert processed + skipped + failed_n == len(inputs)
    assert len(failed) == failed_n and len(requeued) == totals.get("failed-events-count", 0)
    assert all(str(f["failInfo"]["error"]).strip() for f in failed)
    by_mid = {e["mid"]: e for e in inputs if isinstance(e, dict)}
    for f in failed:
        if f.get("mid") in by_mid:  # the original event kept whole, null-valued keys included
            original = {k: v for k, v in by_mid[f["mid"]].items() if k not in ("metadata", "flags")}
            assert {k: f[k] for k in original} == original
    sent = mails(run_id)
    assert len(sent) == totals.get("email-sent-count", 0) >= 1
    assert all(m["rcpt_tos"] == [f"{run_id}-h@example.org"] for m in sent)  # never another recipient
    assert all("\n" not in m["subject"] for m in sent)
    keys = list(redis.Redis(port=stack["redis"], db=3).scan_iter(f"notification:NS.{run_id}.*", count=1000))
    assert len(keys) <= 3 * totals.get("success-events-count", 0)  # iterations 0..2 per sent request, never more
