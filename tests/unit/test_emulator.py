"""Exercise the local Sunbird and SMTP emulators over real HTTP and SMTP on loopback."""

from __future__ import annotations

import importlib.util
import json
import os
import smtplib
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EMULATOR_DIR = Path(__file__).resolve().parents[2] / "local" / "emulator"
SEED_FILE = EMULATOR_DIR / "seed.json"
COURSE, ASSESS, DRAFT = "do_lern_course_001", "do_lern_assess_001", "do_lern_draft_001"
USER = "user-lern-0001"


def _load(name: str) -> ModuleType:
    """local/emulator is not a package; load each module from its file."""
    spec = importlib.util.spec_from_file_location(f"lern_emulator_{name}", EMULATOR_DIR / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


sunbird = _load("sunbird")
smtp = _load("smtp")


def call(url: str, method: str = "GET", body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    srv = sunbird.make_server("127.0.0.1", 0, SEED_FILE)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture
def base(server: Any) -> str:
    status, _ = call(f"{server.base_url}/__emulator/reset", "POST")
    assert status == 200
    return str(server.base_url)


def recorded(base: str, path_prefix: str = "") -> list[dict[str, Any]]:
    status, body = call(f"{base}/__emulator/requests?path_prefix={path_prefix}")
    assert status == 200
    return list(body)


# ----------------------------------------------------------------------------- sunbird


def test_health(base: str) -> None:
    status, body = call(f"{base}/__emulator/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["counts"]["contents"] == 7  # 1 course + 2 units + 3 leaves + 1 draft


def test_content_read_v3_envelope(base: str) -> None:
    status, body = call(f"{base}/content/v3/read/{COURSE}")
    assert status == 200
    assert body["responseCode"] == "OK"
    assert body["params"]["status"] == "successful"
    assert {"id", "ver", "ts", "params", "result"} <= body.keys()
    content = body["result"]["content"]
    assert content["identifier"] == COURSE
    assert content["contentType"] == "Course"
    assert "children" not in content
    assert set(content["childNodes"]) >= {"do_lern_unit_001", ASSESS, "do_lern_pdf_001"}


def test_content_read_gateway_path_and_fields(base: str) -> None:
    status, body = call(f"{base}/api/content/v1/read/{ASSESS}")
    assert status == 200
    assert body["result"]["content"]["totalQuestions"] == 4
    status, body = call(f"{base}/content/v3/read/{COURSE}?fields=name")
    assert body["result"]["content"] == {"identifier": COURSE, "name": "Streaming Basics for Teachers"}
    assert recorded(base, "/content/v3/")[-1]["query"] == {"fields": "name"}


def test_content_read_unknown_is_404_envelope(base: str) -> None:
    status, body = call(f"{base}/api/content/v1/read/do_missing")
    assert status == 404
    assert body["responseCode"] == "RESOURCE_NOT_FOUND"
    assert body["params"]["status"] == "failed"
    assert body["params"]["err"] == "NOT_FOUND"


def _search(base: str, filters: dict[str, Any], path: str = "/search/v3/search", **extra: Any) -> Any:
    status, body = call(f"{base}{path}", "POST", {"request": {"filters": filters, **extra}})
    assert status == 200
    assert body["responseCode"] == "OK"
    return body["result"]


def test_search_collection_status_like_activity_aggregator(base: str) -> None:
    result = _search(base, {"objectType": "Collection", "identifier": COURSE,
                            "status": ["Live", "Unlisted", "Retired"]}, fields=["status"])
    assert result["count"] == 1
    assert result["content"] == [{"identifier": COURSE, "objectType": "Collection", "status": "Live"}]


def test_search_filters_identifier_list_and_status(base: str) -> None:
    ids = [ASSESS, DRAFT, "do_missing"]
    assert {c["identifier"] for c in _search(base, {"identifier": ids}, path="/v3/search")["content"]} \
        == {ASSESS, DRAFT}
    live = _search(base, {"identifier": ids, "status": "Live"})
    assert [c["identifier"] for c in live["content"]] == [ASSESS]
    assert _search(base, {"identifier": DRAFT, "status": ["Live"]}) == {"count": 0}


def test_user_read_paths(base: str) -> None:
    for path in (f"/private/user/v1/read/{USER}?organisations,roles,locations,declarations,externalIds",
                 f"/userorg/private/user/v1/read//{USER}?identifier,rootOrgId",
                 f"/api/user/v1/read/{USER}?fields=locations,organisations"):
        status, body = call(f"{base}{path}")
        assert status == 200, path
        user = body["result"]["response"]
        assert user["identifier"] == USER
        assert user["firstName"] == "Meera"
        assert user["rootOrgId"] == "org-lern-0001"
    assert recorded(base, "/api/user/")[0]["query"] == {"fields": "locations,organisations"}


def test_user_read_unknown_and_blocked(base: str) -> None:
    status, body = call(f"{base}/private/user/v1/read/nobody")
    assert status == 404
    assert body["responseCode"] == "RESOURCE_NOT_FOUND"
    call(f"{base}/__emulator/seed", "POST", {"users": {"user-blocked": {"firstName": "B", "status": 0}}})
    status, body = call(f"{base}/private/user/v1/read/user-blocked")
    assert status == 400
    assert body["responseCode"] == "CLIENT_ERROR"
    assert body["params"]["err"] == "UOS_USRRED0006"
    assert "USER_ACCOUNT_BLOCKED" in json.dumps(body)


def test_framework_read_and_batch_search(base: str) -> None:
    status, body = call(f"{base}/api/framework/v1/read/lern_emu_fw")
    assert status == 200
    assert body["result"]["framework"]["categories"][0]["code"] == "board"
    status, body = call(f"{base}/v1/course/batch/search", "POST", {"request": {
        "filters": {"mentors": ["user-lern-0002"], "status": [0, 1]}, "fields": ["courseId", "mentors"]}})
    assert status == 200
    response = body["result"]["response"]
    assert response["count"] == 1
    assert response["content"][0] == {"batchId": "batch-lern-0001", "courseId": COURSE,
                                      "mentors": ["user-lern-0002"]}
    _, body = call(f"{base}/lms/v1/course/batch/search", "POST",
                   {"request": {"filters": {"createdBy": USER, "status": [0, 1]}}})
    assert body["result"]["response"]["count"] == 0


def test_rc_public_key_create_read_search_delete(base: str) -> None:
    status, keys = call(f"{base}/api/v1/PublicKey/search", "POST", {"filters": {}})
    assert status == 200
    assert keys[0]["osid"] == "1-lern-emu-public-key-0001"

    cert = {"certificateLabel": "Course completion", "status": "ACTIVE", "oldId": "old-cert-1",
            "recipient": {"id": USER, "name": "Meera Kotwal"},
            "training": {"id": COURSE, "name": "Streaming Basics", "type": "Course",
                         "batchId": "batch-lern-0001"}}
    status, body = call(f"{base}/api/v1/TrainingCertificate", "POST", cert, {"Authorization": "token"})
    assert status == 200
    assert body["id"] == "sunbird-rc.registry.create"
    assert body["params"]["status"] == "SUCCESSFUL"
    osid = body["result"]["TrainingCertificate"]["osid"]
    assert osid.startswith("1-")

    (req,) = recorded(base, "/api/v1/TrainingCertificate")
    assert req["method"] == "POST"
    assert req["body"] == cert
    assert req["headers"]["authorization"] == "token"
    assert req["status"] == 200

    status, record = call(f"{base}/api/v1/TrainingCertificate/{osid}")
    assert status == 200
    assert record["recipient"]["id"] == USER
    assert record["osid"] == osid
    _, hits = call(f"{base}/api/v1/TrainingCertificate/search", "POST",
                   {"filters": {"oldId": {"eq": "old-cert-1"}}, "limit": 1})
    assert [h["osid"] for h in hits] == [osid]
    _, hits = call(f"{base}/api/v1/TrainingCertificate/search", "POST",
                   {"filters": {"recipient.id": {"eq": "someone-else"}}})
    assert hits == []

    assert call(f"{base}/api/v1/TrainingCertificate/{osid}", "DELETE")[0] == 200
    assert call(f"{base}/api/v1/TrainingCertificate/{osid}", "DELETE")[0] == 404
    assert call(f"{base}/api/v1/TrainingCertificate/{osid}")[0] == 404


def test_enc_sign_and_verify(base: str) -> None:
    entity = {"id": "cert-1", "recipient": {"name": "Meera"}}
    status, signed = call(f"{base}/enc/sign/256", "POST", {"entity": entity})
    assert status == 200
    assert signed["keyId"] == "256"
    assert signed["signatureValue"]
    signed_entity = {**entity, "signature": {"signatureValue": signed["signatureValue"]}}
    assert call(f"{base}/enc/verify", "POST", {"entity": signed_entity}) == (200, True)
    forged = {**entity, "signature": {"signatureValue": "Zm9yZ2Vk"}}
    assert call(f"{base}/enc/verify", "POST", {"entity": forged}) == (200, False)


def test_feed_notification_and_certreg(base: str) -> None:
    feed = {"request": {"userId": USER, "category": "Notification", "priority": 1,
                        "data": {"type": 1, "actionData": {"actionType": "certificateUpdate"}}}}
    status, body = call(f"{base}/userorg/private/user/feed/v1/create", "POST", feed)
    assert status == 200
    assert body["result"]["response"] == "SUCCESS"
    notice = {"request": {"recipientUserIds": [USER], "firstName": "Meera", "body": "email body"}}
    assert call(f"{base}/userorg/v2/notification", "POST", notice)[0] == 200
    assert call(f"{base}/userorg/v2/notification", "POST", {"request": {}})[0] == 400
    status, body = call(f"{base}/certreg/certs/v2/registry/add", "POST", {"request": {"id": "c-1"}})
    assert status == 200
    assert body["result"]["id"] == "c-1"

    reqs = recorded(base, "/userorg/")
    assert [(r["path"], r["status"]) for r in reqs] == [
        ("/userorg/private/user/feed/v1/create", 200), ("/userorg/v2/notification", 200),
        ("/userorg/v2/notification", 400)]
    assert reqs[0]["body"] == feed


def test_fault_injection_then_recovery(base: str) -> None:
    fault = {"path_prefix": "/api/v1/", "status": 500, "times": 2}
    assert call(f"{base}/__emulator/faults", "POST", fault)[0] == 200
    create = {"certificateLabel": "x"}
    statuses = [call(f"{base}/api/v1/TrainingCertificate", "POST", create)[0] for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert call(f"{base}/content/v3/read/{COURSE}")[0] == 200  # other paths unaffected
    assert [r["status"] for r in recorded(base, "/api/v1/")] == [500, 500, 200]

    blocked = {"responseCode": "CLIENT_ERROR", "params": {"err": "UOS_USRRED0006"}, "result": {}}
    call(f"{base}/__emulator/faults", "POST",
         {"path_prefix": "/private/user/", "status": 400, "method": "GET", "body": blocked})
    assert call(f"{base}/private/user/v1/read/{USER}") == (400, blocked)
    assert call(f"{base}/private/user/v1/read/{USER}")[0] == 200


def test_seed_merge_reset_and_unknown_routes(base: str) -> None:
    seed = {"contents": [{"identifier": "do_new", "status": "Live", "name": "New"}],
            "collections": [{"identifier": "do_c2", "status": "Retired",
                             "children": [{"identifier": "do_c2_leaf", "status": "Live"}]}]}
    status, body = call(f"{base}/__emulator/seed", "POST", seed)
    assert status == 200
    assert body["counts"]["contents"] == 10
    assert call(f"{base}/content/v3/read/do_new")[0] == 200
    assert call(f"{base}/content/v3/read/do_c2_leaf")[1]["result"]["content"]["parent"] == "do_c2"
    assert call(f"{base}/__emulator/seed", "POST", {"contentz": {}})[0] == 400

    assert call(f"{base}/no/such/route")[0] == 404
    assert call(f"{base}/content/v3/read/{COURSE}", "POST", {})[0] == 405
    assert len(recorded(base)) == 4

    assert call(f"{base}/__emulator/reset", "POST")[0] == 200
    assert call(f"{base}/content/v3/read/do_new")[0] == 404
    assert recorded(base) == [recorded(base, "/content/")[0]]  # only the read just made
    assert call(f"{base}/__emulator/requests", "DELETE")[0] == 200
    assert recorded(base) == []


def test_sunbird_cli_serves(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(EMULATOR_DIR / "sunbird.py"), "--port", "0",
                             "--seed", str(SEED_FILE)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert call(f"{url}/api/v1/PublicKey/search", "POST", {"filters": {}})[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ----------------------------------------------------------------------------- smtp


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[Any]:
    handle = smtp.start("127.0.0.1", 0, tmp_path / "maildir", 0, user="lern-mailer", password="s3cret-pw")
    yield handle
    handle.stop()


def _message(html: bool = False) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "Your certificate is ready"
    msg["From"] = "LERN <noreply@lern.example.org>"
    msg["To"] = "meera@example.org"
    msg.set_content("Congratulations! Download your certificate from your profile page.")
    if html:
        msg.add_alternative("<p>Congratulations!</p>", subtype="html")
    return msg


def test_smtp_records_message(mail: Any) -> None:
    with smtplib.SMTP("127.0.0.1", mail.smtp_port, timeout=10) as client:
        client.login("lern-mailer", "s3cret-pw")
        client.send_message(_message(html=True), to_addrs=["meera@example.org", "bcc@example.org"])

    status, messages = call(f"{mail.http_url}/messages")
    assert status == 200
    assert len(messages) == 1
    (msg,) = messages
    assert msg["subject"] == "Your certificate is ready"
    assert msg["from"] == "LERN <noreply@lern.example.org>"
    assert msg["to"] == "meera@example.org"
    assert msg["mail_from"] == "noreply@lern.example.org"
    assert msg["rcpt_tos"] == ["meera@example.org", "bcc@example.org"]
    assert msg["text"].startswith("Congratulations! Download")
    assert msg["html"].startswith("<p>")
    assert msg["auth_user"] == "lern-mailer"
    files = list((mail.store.maildir).glob("*.json"))
    assert len(files) == 1
    assert "s3cret-pw" not in files[0].read_text()

    assert call(f"{mail.http_url}/reset", "POST") == (200, {"status": "ok", "deleted": 1})
    assert call(f"{mail.http_url}/messages") == (200, [])


def test_smtp_rejects_wrong_password_and_anonymous(mail: Any) -> None:
    with smtplib.SMTP("127.0.0.1", mail.smtp_port, timeout=10) as client, \
            pytest.raises(smtplib.SMTPAuthenticationError):
        client.login("lern-mailer", "wrong")
    with smtplib.SMTP("127.0.0.1", mail.smtp_port, timeout=10) as client, \
            pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.send_message(_message())
    assert refused.value.smtp_code == 530
    assert mail.messages() == []


def test_smtp_without_configured_user_accepts_anyone(tmp_path: Path) -> None:
    handle = smtp.start("127.0.0.1", 0, tmp_path / "open", 0)
    try:
        with smtplib.SMTP("127.0.0.1", handle.smtp_port, timeout=10) as client:
            client.send_message(_message())
        with smtplib.SMTP("127.0.0.1", handle.smtp_port, timeout=10) as client:
            client.login("whoever", "whatever")
            client.send_message(_message())
        assert [m["auth_user"] for m in handle.messages()] == [None, "whoever"]
        assert handle.messages()[0]["body"].startswith("Congratulations!")
    finally:
        handle.stop()


def test_smtp_cli_uses_env_credentials_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "SMTP_USER": "cli-user", "SMTP_PASSWORD": "cli-pw"}
    proc = subprocess.Popen([sys.executable, str(EMULATOR_DIR / "smtp.py"), "--port", "0",
                             "--maildir", str(tmp_path / "cli")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "auth required" in banner
        port = int(banner.split("127.0.0.1:")[1].split(" ")[0])
        http_url = banner.strip().rsplit(" ", 1)[-1].removesuffix("/messages")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.login("cli-user", "cli-pw")
            client.send_message(_message())
        status, messages = call(f"{http_url}/messages")
        assert status == 200
        assert [m["auth_user"] for m in messages] == ["cli-user"]
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "cli-pw" not in stderr


def test_route_parameters_are_percent_decoded_like_a_real_server() -> None:
    handler, params, _path, known = sunbird.resolve("GET", "/api/user/v1/read/u1%3Ffields%3Dx%23")
    assert known and handler is not None
    assert params == {"id": "u1?fields=x#"}
