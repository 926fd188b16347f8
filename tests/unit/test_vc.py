"""VC rules (pipelines.domain.vc): the bitstring layout against the spec, credentials, signing."""

from __future__ import annotations

import base64
import gzip
import io
import json
from datetime import UTC, datetime

import pytest
from jwcrypto import jwk, jws

from pipelines.domain import vc as V
from pipelines.io import vc_keys


def raw_bits(encoded: str) -> bytes:
    """Independent of the code under test: strip 'u', base64url-decode, gunzip."""
    body = encoded[1:]
    return gzip.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_index_zero_is_the_left_most_bit_of_the_first_byte():
    bits = raw_bits(V.encode_bitstring({0}))
    assert len(bits) == V.LIST_BITS // 8 == 16384
    assert bits[0] == 0x80 and not any(bits[1:])
    bits = raw_bits(V.encode_bitstring({7, 8, 131071}))
    assert (bits[0], bits[1], bits[-1]) == (0x01, 0x80, 0x01)


def test_encoding_is_multibase_base64url_gzip_with_mtime_zero():
    enc = V.encode_bitstring({5, 99})
    assert enc.startswith("u") and "=" not in enc and "+" not in enc and "/" not in enc
    gz = base64.urlsafe_b64decode(enc[1:] + "=" * (-len(enc[1:]) % 4))
    assert gz[:2] == b"\x1f\x8b" and gz[4:8] == b"\x00\x00\x00\x00"  # GZIP magic, MTIME 0
    assert V.encode_bitstring({99, 5}) == enc  # byte-identical on rebuild


def test_decode_and_bit_at_round_trip():
    bits = V.decode_bitstring(V.encode_bitstring({3, 4000}))
    assert [i for i in range(V.LIST_BITS) if V.bit_at(bits, i)] == [3, 4000]
    assert V.bit_at(bits, "4000") and not V.bit_at(bits, "4001")


def test_a_list_shorter_than_the_minimum_is_rejected():
    with pytest.raises(V.StatusListError, match="at least 131072"):
        V.encode_bitstring({0}, size=1024)
    short = "u" + base64.urlsafe_b64encode(gzip.compress(b"\x80" * 128, mtime=0)).decode().rstrip("=")
    with pytest.raises(V.StatusListError, match="fewer than 131072"):
        V.decode_bitstring(short)


def test_out_of_range_indexes_and_missing_prefix_are_rejected():
    with pytest.raises(V.StatusListError, match="outside the list"):
        V.encode_bitstring({V.LIST_BITS})
    bits = V.decode_bitstring(V.encode_bitstring(set()))
    for bad in (V.LIST_BITS, -1, "1" * 1_000_000, "12x", True, 1.0):
        with pytest.raises(V.StatusListError):
            V.bit_at(bits, bad)
    with pytest.raises(V.StatusListError, match="prefix 'u'"):
        V.decode_bitstring(V.encode_bitstring(set())[1:])
    with pytest.raises(V.StatusListError, match="not GZIP"):
        V.decode_bitstring("u" + base64.urlsafe_b64encode(b"not gzip").decode())


def test_a_gzip_bomb_is_capped():
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        for _ in range(V.MAX_DECODED_BYTES // (1 << 20) + 2):
            gz.write(b"\x00" * (1 << 20))
    bomb = "u" + base64.urlsafe_b64encode(buf.getvalue()).decode().rstrip("=")
    assert len(bomb) < 100_000
    with pytest.raises(V.StatusListError, match="size cap"):
        V.decode_bitstring(bomb)


def test_status_index_candidates_are_stable_spread_and_in_range():
    a = list(V.status_index_candidates("cert-1"))
    assert a == list(V.status_index_candidates("cert-1")) and len(a) == V.MAX_PROBES
    assert all(0 <= i < V.LIST_BITS for i in a) and len(set(a)) > V.MAX_PROBES - 3
    assert a[0] != next(V.status_index_candidates("cert-2"))


def credential(index=42):
    return V.badge_credential(
        "c-1", datetime(2024, 5, 6, 10, 0, 1, 999000, tzinfo=UTC), issuer={"id": "did:web:x.org", "name": "X"},
        recipient_id="u1", recipient_name="Ada", achievement_id="urn:t", name="Completion", narrative="n",
        course_id="do_1", course_name="Maths", batch_id="b1", status_base_url="https://x.org/status/", list_id="1",
        index=index)


def test_badge_credential_is_an_open_badge_with_two_status_entries():
    c = credential()
    assert c["type"] == ["VerifiableCredential", "OpenBadgeCredential"] and c["id"] == "urn:uuid:c-1"
    assert c["@context"][0] == "https://www.w3.org/ns/credentials/v2" and c["validFrom"] == "2024-05-06T10:00:01Z"
    assert c["credentialSubject"]["type"] == ["AchievementSubject"]
    assert c["credentialSubject"]["achievement"]["criteria"] == {"narrative": "n"}
    assert c["credentialStatus"] == [
        {"id": f"https://x.org/status/1/{p}#42", "type": "BitstringStatusListEntry", "statusPurpose": p,
         "statusListIndex": "42", "statusListCredential": f"https://x.org/status/1/{p}"}
        for p in ("revocation", "suspension")]


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_signed_jwt_verifies_with_the_public_key_and_is_byte_identical(alg):
    key = vc_keys.generate_key(alg)
    kid = vc_keys.key_id("did:web:x.org", key)
    token = V.sign_jwt(credential(), key, alg, kid)
    assert token == V.sign_jwt(credential(), key, alg, kid)
    pub = jwk.JWK(**vc_keys.public_jwks(key, kid)["keys"][0])
    assert not pub.has_private
    checked = jws.JWS()
    checked.deserialize(token)
    checked.verify(pub, alg=alg)
    assert json.loads(checked.payload) == credential()
    assert checked.jose_header == {"alg": alg, "kid": kid, "typ": "vc+jwt"}
    other = jwk.JWK(**json.loads(vc_keys.generate_key(alg).export_public()))
    wrong = jws.JWS()
    wrong.deserialize(token)
    with pytest.raises(jws.InvalidJWSSignature):
        wrong.verify(other, alg=alg)


def test_status_lists_from_rows_set_the_right_bits_and_take_time_from_the_rows():
    rows = [{"list_id": "1", "status_index": 3, "status": "revoked", "changed_at": 1_700_000_000_000,
             "issued_at": datetime(2023, 1, 1)},
            {"list_id": "1", "status_index": 9, "status": "suspended", "changed_at": 0, "issued_at": None},
            {"list_id": "1", "status_index": 11, "status": "superseded", "changed_at": 0, "issued_at": None},
            {"list_id": "1", "status_index": 12, "status": "active", "changed_at": 0,
             "issued_at": datetime(2024, 1, 1)},
            {"list_id": None, "status_index": None, "status": "revoked"}]
    lists = V.status_lists_from_rows(rows)
    assert lists == {"1": {"revocation": [3, 11], "suspension": [9], "valid_from": datetime(2024, 1, 1, tzinfo=UTC)}}


def test_keys_load_from_file_or_env_and_never_echo_the_key(tmp_path, monkeypatch):
    key = vc_keys.generate_key()
    path = tmp_path / "k.jwk"
    path.write_text(key.export_private())
    assert vc_keys.load_signing_key(str(path)).thumbprint() == key.thumbprint()
    monkeypatch.setenv(vc_keys.KEY_ENV, key.export_private())
    assert vc_keys.load_signing_key("").thumbprint() == key.thumbprint()
    monkeypatch.setenv(vc_keys.KEY_ENV, '{"kty": "OKP", "secret": "s3cr3t-material"}')
    with pytest.raises(vc_keys.SigningKeyError) as e:
        vc_keys.load_signing_key("")
    assert "s3cr3t" not in str(e.value)
    path.write_text(key.export_public())
    with pytest.raises(vc_keys.SigningKeyError, match="no private part"):
        vc_keys.load_signing_key(str(path))


# ---------------------------------------------------------------------------------- verify

BASE = "https://x.org/status/"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def signed_set(alg="EdDSA", revoked=(), suspended=(), index=42):
    key = vc_keys.generate_key(alg)
    kid = vc_keys.key_id("did:web:x.org", key)
    lists = {f"{BASE}1/{p}": V.sign_jwt(V.status_list_credential(BASE, "1", p, "did:web:x.org", idx, NOW), key, alg,
                                        kid)
             for p, idx in (("revocation", revoked), ("suspension", suspended))}
    return V.sign_jwt(credential(index), key, alg, kid), vc_keys.public_jwks(key, kid), lists, key, kid


def check(token, jwks, lists, now=NOW):
    return V.verify_credential(token, jwks, lists.get, now)[0]


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_verify_valid_revoked_suspended(alg):
    token, jwks, lists, _, _ = signed_set(alg)
    assert check(token, jwks, lists) == V.VALID
    assert check(*signed_set(alg, revoked={42})[:3]) == V.REVOKED
    assert check(*signed_set(alg, suspended={42})[:3]) == V.SUSPENDED
    assert check(*signed_set(alg, revoked={41, 43}, suspended={0})[:3]) == V.VALID


def test_verify_rejects_tampering_wrong_keys_and_alg_none():
    token, jwks, lists, key, kid = signed_set()
    head, payload, sig = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["name"] = "Honours"
    forged_payload = base64.urlsafe_b64encode(V.canonical_json(forged).encode()).decode().rstrip("=")
    assert check(f"{head}.{forged_payload}.{sig}", jwks, lists) == V.INVALID
    other = signed_set()[1]
    other["keys"][0]["kid"] = kid  # a different key under the same id
    assert check(token, other, lists) == V.INVALID
    none_head = base64.urlsafe_b64encode(b'{"alg":"none","kid":"%s"}' % kid.encode()).decode().rstrip("=")
    assert check(f"{none_head}.{payload}.", jwks, lists) == V.INVALID
    assert check(token, {"keys": []}, lists) == V.INVALID
    for junk in ("", "a.b", "x" * 2_000_000, "a.b.c"):
        assert check(junk, jwks, lists) == V.INVALID


def test_verify_dates_and_unknown_status():
    token, jwks, lists, key, kid = signed_set()
    assert check(token, jwks, lists, datetime(2024, 1, 1, tzinfo=UTC)) == V.EXPIRED  # before validFrom
    assert check(token, jwks, {}) == V.STATUS_UNKNOWN
    swapped = {f"{BASE}1/revocation": lists[f"{BASE}1/suspension"], f"{BASE}1/suspension": lists[f"{BASE}1/revocation"]}
    assert check(token, jwks, swapped) == V.STATUS_UNKNOWN
    foreign = signed_set()[2]  # lists signed by another issuer
    assert check(token, jwks, foreign) == V.STATUS_UNKNOWN
    def with_index(index):
        entry = {**credential()["credentialStatus"][0], "statusListIndex": index}
        return V.sign_jwt({**credential(), "credentialStatus": [entry]}, key, "EdDSA", kid)

    assert check(with_index("9" * 5000), jwks, lists) == V.STATUS_UNKNOWN
    assert check(with_index("9" * 1_000_000), jwks, lists) == V.INVALID  # the token itself is over the size cap
    assert check(with_index("131072"), jwks, lists) == V.STATUS_UNKNOWN
    expiring = V.sign_jwt({**credential(), "validUntil": "2024-12-31T00:00:00Z"}, key, "EdDSA", kid)
    assert check(expiring, jwks, lists) == V.EXPIRED


def test_keys_commands_generate_export_and_did_web(tmp_path, capsys):
    from pipelines import cert_status_lists

    path = tmp_path / "k.jwk"
    assert cert_status_lists.main(["keys", "generate", "--alg", "EdDSA", "--out", str(path)]) == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    key = vc_keys.load_signing_key(str(path))
    capsys.readouterr()
    assert cert_status_lists.main(["keys", "export-jwks", "--key", str(path), "--issuer", "did:web:x.org"]) == 0
    jwks = json.loads(capsys.readouterr().out)
    assert jwks["keys"][0]["kid"] == vc_keys.key_id("did:web:x.org", key) and "d" not in jwks["keys"][0]
    assert cert_status_lists.main(["keys", "did-web", "--key", str(path), "--issuer", "did:web:x.org"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["id"] == "did:web:x.org" and doc["assertionMethod"] == [jwks["keys"][0]["kid"]]
    assert doc["verificationMethod"][0]["publicKeyJwk"]["x"] == jwks["keys"][0]["x"]
    assert "d" not in doc["verificationMethod"][0]["publicKeyJwk"]
    with pytest.raises(ValueError, match="not a did:web"):
        vc_keys.did_web_document("https://x.org", key, "k")
