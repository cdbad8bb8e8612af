"""Checking an ID token (OpenID Connect Core 1.0, 3.1.3.7) with joserfc.

The token must be a JWS signed with an asymmetric algorithm the provider announces
(RS256 when it announces none) by a key of its JWKS, issued by the provider's issuer
for our client_id, carry the nonce of this login, and be current: ``exp`` in the
future and ``iat`` not in the future, give or take two minutes of clock skew (as
Synapse allows).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

# joserfc (and the cryptography it loads, several MB) is imported on first use, by a
# server that logs users in with OpenID Connect, not by every server at start-up.
if TYPE_CHECKING:
    from joserfc.jwk import KeySet
    from joserfc.jwt import Token

CLOCK_SKEW_S: Final = 120
# asymmetric signatures only: never "none", never a MAC under a shared secret
SUPPORTED_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class InvalidIdToken(Exception):
    """The ID token is not acceptable; the message says why (no token content)."""


def allowed_algorithms(announced: object) -> list[str]:
    if not isinstance(announced, list) or not announced:
        return ["RS256"]
    return [alg for alg in announced if isinstance(alg, str) and alg in SUPPORTED_ALGORITHMS]


def _import_key_set(jwks: object) -> KeySet:
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise InvalidIdToken("the provider's JWKS is not a key set")
    usable = [
        key
        for key in jwks["keys"]
        if isinstance(key, dict) and key.get("use", "sig") == "sig" and key.get("kty") != "oct"
    ]
    try:
        return KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise InvalidIdToken(f"the provider's JWKS cannot be read ({exc})") from None


def _decode(id_token: str, jwks: object, algorithms: Sequence[str]) -> Token:
    """The token, its signature checked; InvalidKeyIdError/MissingKeyError when no
    key of ``jwks`` matches (the caller refetches the set once)."""
    from joserfc import jwt
    from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError, MissingKeyError

    key_set = _import_key_set(jwks)
    try:
        return jwt.decode(id_token, key_set, algorithms=list(algorithms))
    except (InvalidKeyIdError, MissingKeyError):
        raise
    except BadSignatureError:
        raise InvalidIdToken("the ID token's signature is not valid") from None
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidIdToken(f"the ID token cannot be decoded ({exc})") from None


async def verify_id_token(
    id_token: str,
    *,
    load_jwks: Callable[[bool], Awaitable[object]],
    algorithms: Sequence[str],
    issuer: str,
    client_id: str,
    nonce: str,
    now_s: int,
) -> dict[str, Any]:
    """The claims of ``id_token`` if it passes every check; InvalidIdToken if not.
    ``load_jwks(force)`` gives the provider's JWKS (``force``: fetch it anew, done
    once when the token's key is not in the cached set: keys rotate)."""
    from joserfc import jwt
    from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError, MissingKeyError

    if not algorithms:
        raise InvalidIdToken("the provider announces no signing algorithm this server supports")
    try:
        token = _decode(id_token, await load_jwks(False), algorithms)
    except (InvalidKeyIdError, MissingKeyError):
        try:
            token = _decode(id_token, await load_jwks(True), algorithms)
        except (InvalidKeyIdError, MissingKeyError):
            raise InvalidIdToken(
                "the ID token is signed by a key the provider does not list"
            ) from None
    registry = jwt.JWTClaimsRegistry(
        now=now_s,
        leeway=CLOCK_SKEW_S,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    claims = dict(token.claims)
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise InvalidIdToken("the ID token has expired") from None
    except JoseError as exc:
        raise InvalidIdToken(f"the ID token is not valid: {exc.description or exc.error}") from None
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat > now_s + CLOCK_SKEW_S:
        raise InvalidIdToken("the ID token is issued in the future")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise InvalidIdToken("the ID token is for several parties but not authorized for us")
    return claims
