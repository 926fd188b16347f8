"""The RC-free backend (``--cert_backend=vc``) on the real Cassandra: issue through the generator,
verify the VC-JWT with the public key, revoke/suspend through the status updater, rebuild and
publish the status lists, and read each credential's bit with a reader written here (not the code
under test). Each test uses its own status list (``--cert_vc_status_list=<run_id>``)."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import socket
from unittest import mock

from jwcrypto import jwk, jws

from pipelines import cert_status, cert_status_lists, cert_verify
from pipelines.domain import cert_status as S
from pipelines.options.certificates import CertOptions, cert_settings
from pipelines.options.cli import parse_job_options
from pipelines.transforms.issue_rc import _IssueFn
from tests.batch_runs import read_topic, run_job
from tests.pipeline.test_cert_jobs import generate, issue_request, preprocess, seed


def independent_bit(jwt_payload: dict, index: int) -> int:
    """W3C Bitstring Status List: multibase 'u' + base64url(GZIP(bits)); index 0 = left-most bit."""
    encoded = jwt_payload["credentialSubject"]["encodedList"]
    assert encoded[0] == "u"
    raw = gzip.decompress(base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4)))
    assert len(raw) * 8 >= 131072
    return (raw[index // 8] >> (7 - index % 8)) & 1


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def independently_verified(token: str, public: jwk.JWK) -> dict:
    """EdDSA checked with ``cryptography`` directly (RFC 8037), not through jwcrypto or the code under test."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    header, payload, signature = token.split(".")
    assert json.loads(b64url(header))["alg"] == "EdDSA"
    key = Ed25519PublicKey.from_public_bytes(b64url(json.loads(public.export_public())["x"]))
    key.verify(b64url(signature), f"{header}.{payload}".encode())  # raises InvalidSignature
    return json.loads(b64url(payload))


def verified(token: str, public: jwk.JWK) -> dict:
    t = jws.JWS()
    t.deserialize(token)
    t.verify(public, alg=t.jose_header["alg"])
    assert t.jose_header["typ"] == "vc+jwt"
    return json.loads(t.payload)


@contextlib.contextmanager
def no_network():
    """Any socket use fails the test: verification must read local files only."""
    def refuse(*a, **k):
        raise AssertionError("the verifier opened a socket")

    with mock.patch.object(socket.socket, "connect", refuse), mock.patch.object(socket, "create_connection", refuse), \
            mock.patch.object(socket, "getaddrinfo", refuse):
        yield


def verify(tmp_path, token: str, pub: str, name: str) -> int:
    path = tmp_path / f"{name}.jwt"
    path.write_text(token)
    with no_network():
        return cert_verify.main([str(path), "--jwks", str(tmp_path / pub / "jwks.json"), "--status_dir",
                                 str(tmp_path / pub), "--status_base_url", "https://dev.sunbirded.org/certs/status"])


def setup_key(tmp_path, alg="EdDSA"):
    from pipelines.io.vc_keys import generate_key

    key = generate_key(alg)
    path = tmp_path / "issuer.jwk"
    path.write_text(key.export_private())
    return str(path), jwk.JWK(**json.loads(key.export_public()))


def issue(cql, tmp_path, run_id, key_path, users=("a", "b"), alg="EdDSA"):
    c = seed(cql, run_id, {u: {} for u in users})
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, u) for u in users])
    vc = ("--cert_backend", "vc", "--cert_vc_key", key_path, "--cert_vc_status_list", run_id, "--cert_vc_alg", alg)
    totals, audit, failed = generate(tmp_path, "gen", gen, *vc)
    assert failed == [] and totals["success-events-count"] == len(users) and totals.get("rc-create-count", 0) == 0
    rows = {r.userid: r for r in cql.execute(
        "SELECT cert_id, userid, status, list_id, status_index, credential, issued_at FROM certificate_status "
        "WHERE courseid = %s", (c["course"],))}
    return c, gen, vc, {u: rows[c["uid"](u)] for u in users}


def publish(tmp_path, run_id, key_path, name):
    out = tmp_path / name
    assert cert_status_lists.main(["--cert_vc_key", key_path, "--cert_vc_publish_dir", str(out)]) == 0
    return {p: (out / run_id / p).read_text() for p in ("revocation", "suspension")}


def test_vc_issue_verify_revoke_suspend_and_publish(cql, tmp_path, run_id):
    key_path, public = setup_key(tmp_path)
    c, gen, vc, rows = issue(cql, tmp_path, run_id, key_path)
    a, b = rows["a"], rows["b"]
    assert a.list_id == run_id and a.status_index != b.status_index and a.status == "active"
    cred = verified(a.credential, public)
    assert independently_verified(a.credential, public) == cred
    assert cred["id"] == f"urn:uuid:{a.cert_id}" and "OpenBadgeCredential" in cred["type"]
    assert cred["credentialSubject"]["id"] == f"urn:sunbird:user:{c['uid']('a')}"
    assert cred["validFrom"] == a.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    entries = {e["statusPurpose"]: e for e in cred["credentialStatus"]}
    assert entries["revocation"]["statusListIndex"] == str(a.status_index)
    assert entries["revocation"]["statusListCredential"].endswith(f"/{run_id}/revocation")

    # a replay of the generate requests issues nothing more and leaves the credential as it was
    totals, _, _ = generate(tmp_path, "gen-replay", gen, *vc)
    assert totals.get("success-events-count", 0) == 0
    assert cql.execute("SELECT credential FROM certificate_status WHERE cert_id = %s", (a.cert_id,)).one() \
        .credential == a.credential

    before = publish(tmp_path, run_id, key_path, "pub1")
    lists = {p: verified(t, public) for p, t in before.items()}
    assert lists["revocation"]["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert lists["revocation"]["credentialSubject"]["statusPurpose"] == "revocation"
    assert independent_bit(lists["revocation"], a.status_index) == 0
    assert independent_bit(lists["suspension"], b.status_index) == 0
    assert verify(tmp_path, a.credential, "pub1", "a") == 0
    head, payload, sig = a.credential.split(".")
    assert verify(tmp_path, f"{head}.{payload[:-4]}AAAA.{sig}", "pub1", "tampered") == 10

    reqs = [S.status_request_event(a.cert_id, "revoke", 1_800_000_000_000, "r1", reason="fraud"),
            S.status_request_event(b.cert_id, "suspend", 1_800_000_000_000, "s1")]
    totals, out = run_job(cert_status, tmp_path, "status", reqs * 3, *vc, extra_groups=(CertOptions,))
    assert totals["status-changed-count"] == 2 and totals["duplicate-change-count"] == 4
    assert totals.get("rc-revoke-count", 0) == 0 and len(read_topic(out, "telemetry.raw")) == 2

    after = publish(tmp_path, run_id, key_path, "pub2")
    lists2 = {p: independently_verified(t, public) for p, t in after.items()}
    assert independent_bit(lists2["revocation"], a.status_index) == 1
    assert independent_bit(lists2["suspension"], a.status_index) == 0
    assert independent_bit(lists2["suspension"], b.status_index) == 1
    assert independent_bit(lists2["revocation"], b.status_index) == 0
    assert lists2["revocation"]["validFrom"] == "2027-01-15T08:00:00Z"  # the latest change, not the clock
    assert independent_bit(verified(before["revocation"], public), a.status_index) == 0  # old copy: still valid
    assert publish(tmp_path, run_id, key_path, "pub3") == after  # rebuilt: byte-identical
    assert (verify(tmp_path, a.credential, "pub2", "a"), verify(tmp_path, b.credential, "pub2", "b")) == (11, 12)
    assert verify(tmp_path, a.credential, "pub1", "a") == 0  # the old list copy: still valid until refreshed


def test_vc_credential_is_byte_identical_when_signed_again(cql, tmp_path, run_id):
    """What a taker-over does after a crash: the same stored issuance gives the same bytes (RS256 too)."""
    key_path, public = setup_key(tmp_path, "RS256")
    c, gen, vc, rows = issue(cql, tmp_path, run_id, key_path, users=("a",), alg="RS256")
    first = rows["a"]
    assert verified(first.credential, public)["credentialStatus"][0]["statusListIndex"] == str(first.status_index)
    opts = parse_job_options(["--input=x", *vc], extra_groups=(CertOptions,))
    fn = _IssueFn(cert_settings(opts, "collection-certificate-generator"))
    fn.setup()
    try:
        cql.execute("UPDATE certificate_status SET credential = null WHERE cert_id = %s", (first.cert_id,))
        req = _generate_request(gen[0])
        fn._vc_issue(req, req.recipients[0], c["uid"]("a"), first.cert_id)
    finally:
        fn.teardown()
    again = cql.execute("SELECT credential, status_index FROM certificate_status WHERE cert_id = %s",
                        (first.cert_id,)).one()
    assert (again.credential, again.status_index) == (first.credential, first.status_index)


def _generate_request(event: dict):
    from pipelines.domain.certificates import generate_requests

    return generate_requests(event)[0]


def test_vc_index_collision_takes_the_next_candidate(cql, tmp_path, run_id):
    """The first candidate index of the credential is held by another: the LWT moves it to the next."""
    from pipelines.domain import certificates as C
    from pipelines.domain import vc as V

    key_path, public = setup_key(tmp_path)
    c = seed(cql, run_id, {"a": {}})
    cert_id = C.certificate_id(c["uid"]("a"), c["course"], c["batch"], c["tmpl"])
    first, second = list(V.status_index_candidates(cert_id))[:2]
    cql.execute("INSERT INTO certificate_status_index (list_id, idx, cert_id) VALUES (%s, %s, 'someone-else')",
                (run_id, first))
    _, gen, _ = preprocess(tmp_path, "pre", [issue_request(c, "a")])
    vc = ("--cert_backend", "vc", "--cert_vc_key", key_path, "--cert_vc_status_list", run_id)
    totals, _, failed = generate(tmp_path, "gen", gen, *vc)
    assert failed == [] and totals["success-events-count"] == 1
    row = cql.execute("SELECT status_index, credential FROM certificate_status WHERE cert_id = %s", (cert_id,)).one()
    assert row.status_index == second
    assert verified(row.credential, public)["credentialStatus"][0]["statusListIndex"] == str(second)
    held = {r.idx: r.cert_id for r in cql.execute("SELECT idx, cert_id FROM certificate_status_index "
                                                  "WHERE list_id = %s", (run_id,))}
    assert held == {first: "someone-else", second: cert_id}


def test_revoked_certificate_leaves_issued_certificates_unless_the_flag_says_so(cql, tmp_path, run_id):
    key_path, _ = setup_key(tmp_path)
    c, _, vc, rows = issue(cql, tmp_path, run_id, key_path, users=("a",))
    cert_id = rows["a"].cert_id

    def listed():
        row = cql.execute("SELECT issued_certificates FROM user_enrolments WHERE userid = %s AND courseid = %s AND "
                          "batchid = %s", (c["uid"]("a"), c["course"], c["batch"])).one()
        return [x["identifier"] for x in (row.issued_certificates or [])]

    assert listed() == [cert_id]
    revoke = [S.status_request_event(cert_id, "revoke", 1_800_000_000_000, "r1")]
    totals, _ = run_job(cert_status, tmp_path, "plain", revoke, *vc, extra_groups=(CertOptions,))
    assert totals["status-changed-count"] == 1 and listed() == [cert_id]  # as the reference leaves it
    flag = ("--cert_status_update_enrolment", "true")
    totals, _ = run_job(cert_status, tmp_path, "flag", revoke, *vc, *flag, extra_groups=(CertOptions,))
    assert totals["duplicate-change-count"] == 1 and totals["db-update-user-enrollment-count"] == 1
    assert listed() == []
    totals, _ = run_job(cert_status, tmp_path, "again", revoke, *vc, *flag, extra_groups=(CertOptions,))
    assert totals.get("db-update-user-enrollment-count", 0) == 0 and listed() == []
