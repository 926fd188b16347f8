"""Local SMTP server that records every message it accepts, for notification-job tests.

The reference notification-job sends email through Sunbird's notification-sdk to the SMTP server
named by mail_server_host/port, logging in with mail_server_username/password. Tests need a
real SMTP peer (so the client code path is exercised) and a way to see what arrived, so this
server stores each accepted message as one JSON file in --maildir and serves them over HTTP:

  GET  /messages   JSON list of recorded messages, oldest first
  POST /reset      delete the recorded messages
  GET  /health     {"status": "ok"}

AUTH PLAIN/LOGIN: with --user/--password (or SMTP_USER/SMTP_PASSWORD) authentication is required
and checked; without them any credentials are accepted and AUTH is optional. TLS is not offered,
so AUTH is allowed in clear text on purpose. Credentials are never logged or recorded (only the
login name is kept, as "auth_user"), and aiosmtpd's own protocol log is silenced in the CLI.

Run: python local/emulator/smtp.py --host 127.0.0.1 --port 2525 --maildir DIR [--http-port 2526]
"""

from __future__ import annotations

import argparse
import hmac
import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

log = logging.getLogger("lern.emulator.smtp")


class MailStore:
    """One JSON file per message; names sort in arrival order, so the directory is the log."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = Path(maildir)
        self.maildir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def save(self, record: dict[str, Any]) -> str:
        with self._lock:
            message_id = f"{time.time_ns():020d}-{next(self._seq):06d}"
            record = {"id": message_id, **record}
            tmp = self.maildir / f".{message_id}.tmp"
            tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
            tmp.replace(self.maildir / f"{message_id}.json")  # readers never see half a file
        return message_id

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            files = sorted(self.maildir.glob("*.json"))
            return [json.loads(f.read_text(encoding="utf-8")) for f in files]

    def clear(self) -> int:
        with self._lock:
            files = list(self.maildir.glob("*.json"))
            for f in files:
                f.unlink(missing_ok=True)
            return len(files)


def parse_message(envelope: Envelope, session: Session) -> dict[str, Any]:
    """Envelope plus the headers and bodies a test is likely to assert on."""
    raw = envelope.original_content or envelope.content or b""
    msg = BytesParser(policy=policy.default).parsebytes(raw if isinstance(raw, bytes) else raw.encode())
    assert isinstance(msg, EmailMessage)
    text, html = _part(msg, "plain"), _part(msg, "html")
    login = getattr(session.auth_data, "login", None)
    return {
        "received_at": datetime.now(UTC).isoformat(),
        "peer": str(session.peer[0]) if session.peer else None,
        "auth_user": login.decode(errors="replace") if isinstance(login, bytes) else login,
        "mail_from": envelope.mail_from,
        "rcpt_tos": list(envelope.rcpt_tos),
        "subject": msg.get("Subject"),
        "from": msg.get("From"),
        "to": msg.get("To"),
        "cc": msg.get("Cc"),
        "headers": {name: str(value) for name, value in msg.items()},
        "text": text,
        "html": html,
        "body": text if text is not None else html,
        "size": len(raw),
    }


def _part(msg: EmailMessage, subtype: str) -> str | None:
    part = msg.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else None


class RecordingHandler:
    """aiosmtpd handler: accept every message and store it."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message_id = self.store.save(parse_message(envelope, session))
        log.info("stored message %s for %s", message_id, ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class Authenticator:
    """Checks AUTH PLAIN/LOGIN against one configured user; accepts anyone if none is set."""

    def __init__(self, user: str | None, password: str | None) -> None:
        self.user, self.password = user, password

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if mechanism not in ("PLAIN", "LOGIN") or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        if self.user is None:
            return AuthResult(success=True, auth_data=auth_data)
        ok = hmac.compare_digest(auth_data.login, self.user.encode()) and \
            hmac.compare_digest(auth_data.password, (self.password or "").encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class _Controller(Controller):
    """aiosmtpd's Controller pings its own port after binding; learn the real one for port 0."""

    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # clear-text AUTH on loopback is the point here
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return super().factory()

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _HttpHandler(BaseHTTPRequestHandler):
    server: _MailHttpServer

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/messages":
            self._send(200, self.server.store.messages())
        elif self.path == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": f"no route for GET {self.path}"})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/reset":
            self._send(200, {"status": "ok", "deleted": self.server.store.clear()})
        else:
            self._send(404, {"error": f"no route for POST {self.path}"})

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


class _MailHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: MailStore) -> None:
        super().__init__(address, _HttpHandler)
        self.store = store


@dataclass
class MailServer:
    """Handle returned by start(); stop() shuts down both the SMTP and the HTTP side."""

    host: str
    store: MailStore
    controller: _Controller
    http: _MailHttpServer
    http_thread: threading.Thread

    @property
    def smtp_port(self) -> int:
        return int(self.controller.port)

    @property
    def http_port(self) -> int:
        return int(self.http.server_address[1])

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def messages(self) -> list[dict[str, Any]]:
        return self.store.messages()

    def reset(self) -> None:
        self.store.clear()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.http_thread.join(timeout=5)
        self.controller.stop()


def start(host: str = "127.0.0.1", port: int = 0, maildir: str | Path = "maildir", http_port: int = 0,
          *, user: str | None = None, password: str | None = None) -> MailServer:
    """Start SMTP and HTTP in background threads; port 0 picks a free port (see .smtp_port)."""
    store = MailStore(Path(maildir))
    controller = _Controller(
        RecordingHandler(store), hostname=host, port=port, server_hostname="lern-emulator",
        authenticator=Authenticator(user, password), auth_required=user is not None,
        auth_require_tls=False,
    )
    controller.start()
    try:
        http = _MailHttpServer((host, http_port), store)
    except OSError:
        controller.stop()
        raise
    thread = threading.Thread(target=http.serve_forever, name="smtp-emulator-http", daemon=True)
    thread.start()
    return MailServer(host, store, controller, http, thread)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--maildir", required=True, help="directory for the recorded JSON messages")
    parser.add_argument("--http-port", type=int, help="HTTP inspection port (default: --port + 1)")
    parser.add_argument("--user", default=os.environ.get("SMTP_USER"))
    parser.add_argument("--password", default=os.environ.get("SMTP_PASSWORD"))
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("give both --user and --password (or SMTP_USER and SMTP_PASSWORD), or neither")
    http_port = args.http_port if args.http_port is not None else (args.port + 1 if args.port else 0)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # its debug log echoes AUTH LOGIN data
    server = start(args.host, args.port, args.maildir, http_port, user=args.user, password=args.password)
    auth = "required" if args.user is not None else "optional, any credentials"
    print(f"smtp emulator listening on {args.host}:{server.smtp_port} (auth {auth}); "
          f"messages at {server.http_url}/messages", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
