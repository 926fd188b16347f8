"""lern-cert-verify: checks a vc-backend certificate with local files only (the issuer's JWKS and
the published status lists), never opening a socket.

    python -m pipelines.cert_verify credential.jwt --jwks jwks.json --status_dir DIR \
        --status_base_url https://dev.sunbirded.org/certs/status [--at 2026-12-01T00:00:00Z]

A status list URL under ``--status_base_url`` is read from the same path under ``--status_dir``
(the layout ``lern-cert-status-lists`` writes); any other URL is "status unknown".

Exit codes: 0 valid, 10 bad signature or structure, 11 revoked, 12 suspended, 13 expired or not
yet valid, 14 status unknown (list missing, unreadable or not the issuer's); 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pipelines.domain import vc as V

EXIT = {V.VALID: 0, V.INVALID: 10, V.REVOKED: 11, V.SUSPENDED: 12, V.EXPIRED: 13, V.STATUS_UNKNOWN: 14}
MAX_FILE_BYTES = 4 * 1024 * 1024


def _read(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def local_lists(status_dir: Path, base_url: str):
    base = base_url.rstrip("/") + "/"
    root = status_dir.resolve()

    def status_list(url: str) -> str | None:
        if not url.startswith(base):
            return None
        path = (root / url[len(base):]).resolve()
        if root not in path.parents:  # no "../" out of the directory
            return None
        return _read(path)

    return status_list


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lern-cert-verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("credential", help="file holding the VC-JWT")
    ap.add_argument("--jwks", required=True, help="the issuer's public keys (JWKS JSON file)")
    ap.add_argument("--status_dir", required=True, help="directory of the published status lists")
    ap.add_argument("--status_base_url", required=True, help="the URL the status lists are published under")
    ap.add_argument("--at", default=None, help="check validity at this time (ISO 8601; default: now)")
    a = ap.parse_args(argv)
    token, jwks_text = _read(Path(a.credential)), _read(Path(a.jwks))
    try:
        jwks = json.loads(jwks_text or "")
        now = datetime.fromisoformat(a.at.replace("Z", "+00:00")) if a.at else datetime.now(tz=UTC)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if token is None or not isinstance(jwks, dict):
        outcome, detail = V.INVALID, "credential or key set unreadable"
    else:
        outcome, detail = V.verify_credential(token.strip(), jwks, local_lists(Path(a.status_dir), a.status_base_url),
                                              now.astimezone(UTC))
    print(f"{outcome}: {detail}")
    return EXIT[outcome]


if __name__ == "__main__":
    sys.exit(main())
