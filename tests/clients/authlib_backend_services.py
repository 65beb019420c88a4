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
