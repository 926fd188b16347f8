"""Verifiable credentials without Sunbird RC (``--cert_backend=vc``): Open Badges 3.0 credentials
(W3C VC data model 2.0) as VC-JWTs, and W3C Bitstring Status Lists. Pure functions: no clock, no
randomness, no IO, so a credential and a status list are byte-identical on replay.

- ``status_index_candidates``: the credential's index in the status lists, pseudo-random but
  derived from its id (the transform takes the first candidate no other credential holds, with a
  lightweight transaction, so a replay finds the same one).
- ``encode_bitstring`` / ``decode_bitstring``: the list's ``encodedList``: one bit per index,
  index 0 = the left-most (most significant) bit of the first byte, GZIP (``mtime`` 0), base64url
  without padding, multibase prefix ``u``. At least 131,072 bits (16 KB), the spec's minimum for
  herd privacy. (Open edX writes one byte per index: a standard verifier reads the wrong bit.)
- ``badge_credential`` and ``status_list_credential``: the payloads; ``sign_jwt`` signs them
  (JWS compact, header ``{"alg","kid","typ":"vc+jwt"}``, JSON with sorted keys). EdDSA (Ed25519) and
  RS256 signatures are deterministic, so the same payload and key give the same bytes.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pipelines.domain.errors import InvalidRequest

LIST_BITS = 131_072
PURPOSES = ("revocation", "suspension")
CONTEXTS = ["https://www.w3.org/ns/credentials/v2", "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"]
ALGS = ("EdDSA", "RS256")
MAX_PROBES = 64
MAX_DECODED_BYTES = 16 * 1024 * 1024  # a gzip bomb stops here


class StatusListError(InvalidRequest):
    """An encoded status list or index that is not what the spec allows."""


# ------------------------------------------------------------------------------- bitstring


def status_index_candidates(cert_id: str, size: int = LIST_BITS, probes: int = MAX_PROBES) -> Iterator[int]:
    """Pseudo-random, replay-stable candidate indexes of a credential (SHA-256 of id and attempt)."""
    for attempt in range(probes):
        digest = hashlib.sha256(f"{cert_id}|{attempt}".encode()).digest()
        yield int.from_bytes(digest[:8], "big") % size


def encode_bitstring(set_indexes: Iterable[int], size: int = LIST_BITS) -> str:
    """Multibase base64url (``u``) of the GZIP (mtime 0) of the bits; index 0 = left-most bit."""
    if size < LIST_BITS or size % 8:
        raise StatusListError(f"a status list has at least {LIST_BITS} bits, a multiple of 8")
    bits = bytearray(size // 8)
    for i in set_indexes:
        if not 0 <= i < size:
            raise StatusListError(f"status index {i} is outside the list (0..{size - 1})")
        bits[i // 8] |= 0x80 >> (i % 8)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(bytes(bits))
    return "u" + base64.urlsafe_b64encode(buf.getvalue()).rstrip(b"=").decode()


def decode_bitstring(encoded: str, min_bits: int = LIST_BITS) -> bytes:
    """The bits of an ``encodedList`` (checked: multibase prefix, base64url, GZIP capped, length)."""
    if not isinstance(encoded, str) or not encoded.startswith("u"):
        raise StatusListError("encodedList must be multibase base64url (prefix 'u')")
    body = encoded[1:]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except ValueError as e:
        raise StatusListError(f"encodedList is not base64url: {e}") from None
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
            bits = gz.read(MAX_DECODED_BYTES + 1)
    except (OSError, EOFError) as e:
        raise StatusListError(f"encodedList is not GZIP: {e}") from None
    if len(bits) > MAX_DECODED_BYTES:
        raise StatusListError("encodedList expands beyond the size cap")
    if len(bits) * 8 < min_bits:
        raise StatusListError(f"status list has {len(bits) * 8} bits, fewer than {min_bits}")
    return bits


def bit_at(bits: bytes, index: Any) -> bool:
    if isinstance(index, str):
        if not index.isdigit() or len(index) > 12:
            raise StatusListError("statusListIndex must be a small non-negative integer")
        index = int(index)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(bits) * 8:
        raise StatusListError("statusListIndex is outside the list")
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


# ------------------------------------------------------------------------------ credentials


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_list_url(base_url: str, list_id: str, purpose: str) -> str:
    return f"{base_url.rstrip('/')}/{list_id}/{purpose}"


def credential_status(base_url: str, list_id: str, index: int) -> list[dict[str, Any]]:
    return [{"id": f"{status_list_url(base_url, list_id, p)}#{index}", "type": "BitstringStatusListEntry",
             "statusPurpose": p, "statusListIndex": str(index),
             "statusListCredential": status_list_url(base_url, list_id, p)} for p in PURPOSES]


def badge_credential(cert_id: str, issued_at: datetime, *, issuer: Mapping[str, Any], recipient_id: str,
                     recipient_name: str, achievement_id: str, name: str, narrative: str, course_id: str,
                     course_name: str, batch_id: str, status_base_url: str, list_id: str,
                     index: int) -> dict[str, Any]:
    """An Open Badges 3.0 ``OpenBadgeCredential`` (VC data model 2.0), every value from the issuance."""
    subject: dict[str, Any] = {
        "id": f"urn:sunbird:user:{recipient_id}", "type": ["AchievementSubject"],
        "achievement": {"id": achievement_id, "type": ["Achievement"], "name": name,
                        "criteria": {"narrative": narrative or name},
                        "description": f"{name}: {course_name}" if course_name else name},
        "source": {"id": f"urn:sunbird:course:{course_id}", "type": ["Profile"], "name": course_name or course_id},
    }
    if recipient_name:
        subject["name"] = recipient_name
    return {
        "@context": CONTEXTS, "id": f"urn:uuid:{cert_id}", "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"type": ["Profile"], **issuer}, "validFrom": iso(issued_at), "name": name,
        "credentialSubject": subject, "evidence": [{"id": f"urn:sunbird:batch:{batch_id}", "type": ["Evidence"]}],
        "credentialStatus": credential_status(status_base_url, list_id, index),
    }


def status_list_credential(base_url: str, list_id: str, purpose: str, issuer_id: str, set_indexes: Iterable[int],
                           valid_from: datetime, size: int = LIST_BITS) -> dict[str, Any]:
    """A ``BitstringStatusListCredential``; ``valid_from`` comes from the rows (their latest change)."""
    url = status_list_url(base_url, list_id, purpose)
    return {"@context": [CONTEXTS[0]], "id": url, "type": ["VerifiableCredential", "BitstringStatusListCredential"],
            "issuer": issuer_id, "validFrom": iso(valid_from),
            "credentialSubject": {"id": f"{url}#list", "type": "BitstringStatusList", "statusPurpose": purpose,
                                  "encodedList": encode_bitstring(set_indexes, size)}}


def purposes_of(status: str) -> tuple[str, ...]:
    """The lists whose bit a credential in ``status`` has set (a superseded credential is revoked)."""
    return {"revoked": ("revocation",), "superseded": ("revocation",), "suspended": ("suspension",)}.get(status, ())


# ------------------------------------------------------------------------------------- JOSE


def canonical_json(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign_jwt(payload: Mapping[str, Any], key: Any, alg: str, kid: str) -> str:
    """JWS compact serialization of ``payload`` (a ``jwcrypto.jwk.JWK`` private key; EdDSA or RS256)."""
    from jwcrypto import jws  # the JOSE library; imported here so the rules load without it

    if alg not in ALGS:
        raise ValueError(f"unsupported signing algorithm {alg}; one of {', '.join(ALGS)}")
    token = jws.JWS(canonical_json(payload).encode())
    token.add_signature(key, alg=alg, protected=canonical_json({"alg": alg, "kid": kid, "typ": "vc+jwt"}))
    return token.serialize(compact=True)


def status_lists_from_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``certificate_status`` rows -> per list: the indexes set per purpose, and ``valid_from`` (the
    latest issuance or change among its rows: data, not the clock, so a rebuild gives the same list)."""
    lists: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("list_id") is None or r.get("status_index") is None:
            continue
        entry = lists.setdefault(r["list_id"], {"revocation": set(), "suspension": set(),
                                                "valid_from": datetime(1970, 1, 1, tzinfo=UTC)})
        for purpose in purposes_of(r.get("status") or "active"):
            entry[purpose].add(int(r["status_index"]))
        times = [entry["valid_from"]]
        if r.get("issued_at") is not None:
            times.append(r["issued_at"].replace(tzinfo=UTC) if r["issued_at"].tzinfo is None else r["issued_at"])
        if r.get("changed_at"):
            times.append(datetime.fromtimestamp(int(r["changed_at"]) / 1000, tz=UTC))
        entry["valid_from"] = max(times)
    return {k: {**v, "revocation": sorted(v["revocation"]), "suspension": sorted(v["suspension"])}
            for k, v in lists.items()}


# ---------------------------------------------------------------------------------- verify

VALID, INVALID, REVOKED, SUSPENDED, EXPIRED, STATUS_UNKNOWN = (
    "valid", "invalid", "revoked", "suspended", "expired-or-not-yet-valid", "status-unknown")
MAX_TOKEN_CHARS = 1_000_000


def _verify_jws(token: Any, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of a compact JWS signed by a key of ``jwks`` (EdDSA or RS256 only; ``alg: none``,
    an unknown ``kid``, a bad signature or a non-JSON payload raise ``ValueError``)."""
    from jwcrypto import jwk, jws

    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise ValueError("not a compact JWS")
    try:
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=" * (-len(token.split(".")[0]) % 4)))
    except ValueError:
        raise ValueError("the JWS header is not JSON") from None
    if not isinstance(header, dict) or header.get("alg") not in ALGS:
        raise ValueError(f"signature algorithm {header.get('alg') if isinstance(header, dict) else '?'} "
                         "is not accepted")
    keys = [k for k in (jwks.get("keys") or []) if isinstance(k, Mapping) and k.get("kid") == header.get("kid")]
    if not keys:
        raise ValueError(f"no issuer key {header.get('kid')!r} in the key set")
    try:
        checked = jws.JWS()
        checked.deserialize(token)
        checked.verify(jwk.JWK(**{k: v for k, v in keys[0].items() if k != "d"}), alg=header["alg"])
        payload = json.loads(checked.payload)
    except Exception as e:  # noqa: BLE001 - any failure here is a credential that does not verify
        raise ValueError(f"signature does not verify ({type(e).__name__})") from None
    if not isinstance(payload, dict):
        raise ValueError("the payload is not a JSON object")
    return payload


def _time(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("not a date-time")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def verify_credential(token: str, jwks: Mapping[str, Any], status_list: Any, now: datetime) -> tuple[str, str]:
    """``(outcome, detail)`` of a VC-JWT: ``status_list(url)`` returns the list's JWT text or ``None``
    (the caller decides where lists come from: local files, never the network here)."""
    try:
        cred = _verify_jws(token, jwks)
        if "VerifiableCredential" not in (cred.get("type") or []):
            raise ValueError("not a VerifiableCredential")
        valid_from = _time(cred.get("validFrom"))
        valid_until = _time(cred["validUntil"]) if cred.get("validUntil") is not None else None
        entries = cred.get("credentialStatus") or []
        entries = [entries] if isinstance(entries, Mapping) else entries
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
            raise ValueError("credentialStatus is not a list of entries")
    except (ValueError, TypeError) as e:
        return INVALID, str(e)
    if now < valid_from or (valid_until is not None and now >= valid_until):
        return EXPIRED, f"valid from {cred.get('validFrom')} until {cred.get('validUntil')}"
    found: dict[str, bool] = {}
    for entry in entries:
        purpose, url = entry.get("statusPurpose"), entry.get("statusListCredential")
        if entry.get("type") != "BitstringStatusListEntry" or purpose not in PURPOSES:
            continue
        try:
            text = status_list(url) if isinstance(url, str) else None
            if text is None:
                return STATUS_UNKNOWN, f"no status list {url}"
            listed = _verify_jws(text.strip(), jwks)
            subject = listed.get("credentialSubject") or {}
            if listed.get("id") != url or subject.get("statusPurpose") != purpose:
                raise ValueError(f"{url} is not the {purpose} list it should be")
            found[purpose] = bit_at(decode_bitstring(subject.get("encodedList")), entry.get("statusListIndex"))
        except (ValueError, TypeError) as e:
            return STATUS_UNKNOWN, f"status list {url}: {e}"
    if found.get("revocation"):
        return REVOKED, "the revocation bit is set"
    if found.get("suspension"):
        return SUSPENDED, "the suspension bit is set"
    if not found:
        return STATUS_UNKNOWN, "the credential has no status entry"
    return VALID, f"signed by {jwks_kid(token)}"


def jwks_kid(token: str) -> str:
    head = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))).get("kid"))
