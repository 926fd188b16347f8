"""The VC signing key (``--cert_backend=vc``): loaded from a file or the environment, never logged.

    key = load_signing_key(path)          # JWK JSON or PEM file; "" -> $LERN_CERT_VC_KEY (JWK JSON or PEM)
    jwks = public_jwks(key, kid)          # what a verifier needs, for publishing
    key = generate_key("EdDSA")           # Ed25519 (or "RS256": RSA 2048)

The key's text goes only to ``jwcrypto``; errors name the source, never the content.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jwcrypto import jwk

KEY_ENV = "LERN_CERT_VC_KEY"


class SigningKeyError(ValueError):
    """No usable signing key; the message names where it was looked for."""


def _parse(text: str, source: str) -> jwk.JWK:
    try:
        if text.lstrip().startswith("{"):
            return jwk.JWK(**json.loads(text))
        return jwk.JWK.from_pem(text.encode())
    except Exception as e:  # noqa: BLE001 - never echo the key text
        raise SigningKeyError(f"the VC signing key in {source} cannot be read ({type(e).__name__})") from None


def load_signing_key(path: str = "") -> jwk.JWK:
    if path:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise SigningKeyError(f"the VC signing key file {path} cannot be read: {e.strerror}") from None
        key = _parse(text, path)
    elif os.environ.get(KEY_ENV):
        key = _parse(os.environ[KEY_ENV], f"${KEY_ENV}")
    else:
        raise SigningKeyError(f"--cert_backend=vc needs a signing key: --cert_vc_key=<file> or ${KEY_ENV}")
    if not key.has_private:
        raise SigningKeyError("the VC signing key has no private part")
    return key


def generate_key(alg: str = "EdDSA") -> jwk.JWK:
    if alg == "EdDSA":
        return jwk.JWK.generate(kty="OKP", crv="Ed25519")
    if alg == "RS256":
        return jwk.JWK.generate(kty="RSA", size=2048)
    raise ValueError(f"unsupported signing algorithm {alg}")


def key_id(issuer_id: str, key: jwk.JWK) -> str:
    """``<issuer>#<RFC 7638 thumbprint>``: stable for a key, so replays sign with the same header."""
    return f"{issuer_id}#{key.thumbprint()}"


def public_jwks(key: jwk.JWK, kid: str) -> dict[str, Any]:
    pub = json.loads(key.export_public())
    return {"keys": [{**pub, "kid": kid}]}


def did_web_document(issuer_id: str, key: jwk.JWK, kid: str) -> dict[str, Any]:
    """The ``did.json`` of a ``did:web`` issuer holding its public key (served at
    ``https://<host>/.well-known/did.json``), so a verifier resolving the issuer finds ``kid``."""
    if not issuer_id.startswith("did:web:"):
        raise ValueError(f"{issuer_id} is not a did:web identifier")
    pub = json.loads(key.export_public())
    return {"@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/jws-2020/v1"],
            "id": issuer_id,
            "verificationMethod": [{"id": kid, "type": "JsonWebKey2020", "controller": issuer_id,
                                    "publicKeyJwk": pub}],
            "assertionMethod": [kid]}
