#!/usr/bin/env python3
"""SMART Backend Services with a third-party client library (Authlib, private_key_jwt).

Run by crates/server/tests/oauth.rs against a running Passport server:

    authlib_backend_services.py TOKEN_URL CLIENT_ID PRIVATE_JWK_FILE SCOPE

Prints one JSON object: the token response Authlib received, and the error Passport gave
for an assertion with Authlib's default lifetime (one hour: more than SMART's five minutes).
"""

import json
import sys
import time

from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, RSAKey
from joserfc._rfc7518.jws_algs import ESAlgorithm

# Passport accepts client assertions signed in the low-S form only (docs/SECURITY.md §16):
# for every ECDSA signature (r, s), (r, n - s) verifies too. joserfc, like most JOSE
# libraries on OpenSSL, returns either form, so an integrator normalises S as here.
CURVE_ORDER = {
    "P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "P-384": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
        "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
}
_sign = ESAlgorithm.sign


def _low_s_sign(self, msg, key):
    sig = _sign(self, msg, key)
    half = len(sig) // 2
    n = CURVE_ORDER[self.curve]
    s = int.from_bytes(sig[half:], "big")
    if s > n // 2:
        s = n - s
    return sig[:half] + s.to_bytes(half, "big")


ESAlgorithm.sign = _low_s_sign


def session(client_id, jwk, scope, token_url, claims):
    key = (ECKey if jwk["kty"] == "EC" else RSAKey).import_key(jwk)
    s = OAuth2Session(
        client_id,
        key,
        token_endpoint_auth_method="private_key_jwt",
        scope=scope,
    )
    s.register_client_auth_method(
        PrivateKeyJWT(token_url, claims=claims, headers={"kid": jwk["kid"]}, alg=jwk["alg"])
    )
    return s


def main():
    token_url, client_id, jwk_file, scope = sys.argv[1:5]
    with open(jwk_file) as f:
        jwk = json.load(f)
    ok = session(client_id, jwk, scope, token_url, {"exp": int(time.time()) + 240})
    token = ok.fetch_token(token_url, grant_type="client_credentials")
    refused = None
    try:
        session(client_id, jwk, scope, token_url, None).fetch_token(
            token_url, grant_type="client_credentials"
        )
    except OAuthError as e:
        refused = e.error
    print(json.dumps({"token": dict(token), "default_lifetime_error": refused}))


if __name__ == "__main__":
    main()
