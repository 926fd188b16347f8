"""lern-cert-status-lists: rebuilds the Bitstring Status Lists of the vc backend from Cassandra and
writes them, signed, to the publish directory (``--cert_vc_publish_dir``).

    python -m pipelines.cert_status_lists --cert_vc_publish_dir=/srv/status [--cert_vc_key=key.jwk]
    python -m pipelines.cert_status_lists keys generate --alg EdDSA --out key.jwk
    python -m pipelines.cert_status_lists keys export-jwks --key key.jwk --issuer did:web:example.org
    python -m pipelines.cert_status_lists keys did-web --key key.jwk --issuer did:web:example.org > did.json

Every list is rebuilt from the ``certificate_status`` rows (a revoked or superseded credential sets
its bit in ``<list>/revocation``, a suspended one in ``<list>/suspension``), so a lost or damaged
file is repaired by running this again; the same rows give byte-identical files (no clock: the
list's ``validFrom`` is its latest issuance or change). Files: ``<dir>/<list>/<purpose>`` (the
VC-JWT, served at ``--cert_vc_status_base_url``/<list>/<purpose>) and ``<dir>/jwks.json`` (the
issuer's public key). Not a Beam job: one partition-free scan of a table of one row per credential.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines.domain import vc as V
from pipelines.io.cassandra import CassandraClient
from pipelines.io.vc_keys import did_web_document, generate_key, key_id, load_signing_key, public_jwks
from pipelines.options.certificates import CertOptions, CertSettings, cert_settings
from pipelines.options.cli import parse_job_options

JOB_NAME = "certificate-status-lists"


def read_rows(s: CertSettings) -> list[dict]:
    db = CassandraClient(s.cassandra)
    try:
        rows = db.execute(f"SELECT list_id, status_index, status, issued_at, changed_at FROM "
                          f"{s.cassandra.keyspace}.{s.status_table}")
        return [r._asdict() for r in rows]
    finally:
        db.close()


def _write(path: Path, data: str) -> None:
    """Atomically: a verifier fetching the file never reads half a list."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(data)
    os.replace(tmp, path)


def publish(s: CertSettings, rows: list[dict], out_dir: Path) -> list[Path]:
    key = load_signing_key(s.vc_key)
    kid = key_id(s.vc_issuer_id, key)
    written = []
    for list_id, entry in sorted(V.status_lists_from_rows(rows).items()):
        for purpose in V.PURPOSES:
            payload = V.status_list_credential(s.vc_status_base_url, list_id, purpose, s.vc_issuer_id,
                                               entry[purpose], entry["valid_from"])
            path = out_dir / list_id / purpose
            _write(path, V.sign_jwt(payload, key, s.vc_alg, kid))
            written.append(path)
    jwks = out_dir / "jwks.json"
    _write(jwks, V.canonical_json(public_jwks(key, kid)))
    return [*written, jwks]


def keys_main(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="lern-cert-status-lists keys")
    sub = ap.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate", help="a new private signing key (JWK JSON) written to --out (mode 600)")
    gen.add_argument("--alg", choices=V.ALGS, default="EdDSA")
    gen.add_argument("--out", required=True)
    exp = sub.add_parser("export-jwks", help="the public JWKS of a key, to stdout")
    exp.add_argument("--key", default="")
    exp.add_argument("--issuer", required=True)
    did = sub.add_parser("did-web", help="the did:web document (did.json) holding the public key, to stdout")
    did.add_argument("--key", default="")
    did.add_argument("--issuer", required=True, help="did:web:<host>")
    a = ap.parse_args(argv)
    if a.cmd == "generate":
        fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(generate_key(a.alg).export_private())
        print(f"wrote {a.out}")
        return 0
    key = load_signing_key(a.key)
    kid = key_id(a.issuer, key)
    print(json.dumps(did_web_document(a.issuer, key, kid) if a.cmd == "did-web" else public_jwks(key, kid), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["keys"]:
        return keys_main(args[1:])
    s = cert_settings(parse_job_options(args, extra_groups=(CertOptions,), prog="lern-cert-status-lists"), JOB_NAME)
    if not s.vc_publish_dir:
        raise SystemExit("error: --cert_vc_publish_dir is required")
    for path in publish(s, read_rows(s), Path(s.vc_publish_dir)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
