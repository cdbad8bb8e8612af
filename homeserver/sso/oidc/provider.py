"""One OpenID Connect provider: the authorization code flow (OpenID Connect Core 1.0,
3.1) with PKCE (RFC 7636), as Synapse runs it.

1. `authorization_redirect`: the provider's authorization endpoint with a fresh
   ``state``, ``nonce`` and (when the provider supports it, or ``pkce_method:
   always``) an S256 code challenge; the same values go in the signed session cookie.
2. `complete`: the callback's code is exchanged at the token endpoint (client
   authentication per ``client_auth_method``), the ID token checked
   (`id_tokens.verify_id_token`), the userinfo endpoint asked when configured, the
   ``attribute_requirements`` applied and the claims mapped to a user.

The provider's metadata comes from its discovery document
(``<issuer>/.well-known/openid-configuration``) unless ``discover: false``;
configured endpoints override discovered ones.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode

from homeserver.clock import Clock
from homeserver.config import OidcProviderConfig
from homeserver.sso.oidc.http import OidcHttpError, OidcTransport
from homeserver.sso.oidc.id_tokens import InvalidIdToken, allowed_algorithms, verify_id_token
from homeserver.sso.oidc.mapping import ClaimsMapper, MappedUser, MappingFailed
from homeserver.sso.oidc.session import (
    SESSION_LIFETIME_MS,
    OidcSession,
    new_secret_token,
    s256_challenge,
)

logger = logging.getLogger(__name__)

CALLBACK_PATH: Final = "_synapse/client/oidc/callback"
DISCOVERY_SUFFIX: Final = "/.well-known/openid-configuration"


class OidcError(Exception):
    """A failure to show the user: ``error`` (a short code, the provider's own when
    it gave one), ``description``, and the HTTP ``status`` of the page."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class OidcUser:
    """Who the provider vouched for: the mapped user and the claims it came from."""

    user: MappedUser
    claims: dict[str, Any]


class OidcProvider:
    def __init__(
        self,
        config: OidcProviderConfig,
        public_baseurl: str,
        transport: OidcTransport,
        clock: Clock,
    ) -> None:
        self.config = config
        self.callback_url = public_baseurl + CALLBACK_PATH
        self._transport = transport
        self._clock = clock
        self._mapper = ClaimsMapper(config.user_mapping)
        self._metadata: dict[str, Any] | None = None
        self._jwks: object | None = None
        self._lock = asyncio.Lock()

    @property
    def idp_id(self) -> str:
        return self.config.idp_id

    async def close(self) -> None:
        await self._transport.close()

    # -- metadata ------------------------------------------------------------------

    async def load_metadata(self) -> dict[str, Any]:
        """The provider's metadata (discovered once, then kept); OidcError
        ``discovery_error`` when it cannot be had or is unusable."""
        async with self._lock:
            if self._metadata is None:
                self._metadata = await self._fetch_metadata()
            return self._metadata

    async def _fetch_metadata(self) -> dict[str, Any]:
        config = self.config
        metadata: dict[str, Any] = {"issuer": config.issuer}
        if config.discover:
            url = config.issuer.rstrip("/") + DISCOVERY_SUFFIX
            try:
                discovered = await self._transport.request_json("GET", url)
            except OidcHttpError as exc:
                logger.warning("OIDC discovery of %s at %s failed: %s", config.idp_id, url, exc)
                raise self._discovery_error(
                    f"its discovery document cannot be had ({exc})"
                ) from None
            if not isinstance(discovered, dict):
                raise self._discovery_error("its discovery document is not a JSON object")
            if discovered.get("issuer") != config.issuer and not config.skip_verification:
                raise self._discovery_error(
                    f"it names its issuer {discovered.get('issuer')!r}, not {config.issuer!r}"
                )
            metadata.update(discovered)
        overrides = {
            "authorization_endpoint": config.authorization_endpoint,
            "token_endpoint": config.token_endpoint,
            "userinfo_endpoint": config.userinfo_endpoint,
            "jwks_uri": config.jwks_uri,
        }
        metadata.update({key: value for key, value in overrides.items() if value is not None})
        if config.pkce_method == "always":
            metadata["code_challenge_methods_supported"] = ["S256"]
        elif config.pkce_method == "never":
            metadata.pop("code_challenge_methods_supported", None)
        self._validate_metadata(metadata)
        return metadata

    def _discovery_error(self, why: str) -> OidcError:
        return OidcError(
            "discovery_error",
            f"The identity provider {self.config.idp_name} cannot be used: {why}.",
            503,
        )

    def _validate_metadata(self, metadata: dict[str, Any]) -> None:
        needed = ["authorization_endpoint", "token_endpoint", "jwks_uri"]
        if self._uses_userinfo:
            needed.append("userinfo_endpoint")
        for name in needed:
            value = metadata.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise self._discovery_error(f"it gives no {name}")
            if not self.config.skip_verification and not value.startswith("https://"):
                raise self._discovery_error(f"its {name} is not an https:// URL")
        if self.config.skip_verification:
            return
        response_types = metadata.get("response_types_supported")
        if isinstance(response_types, list) and "code" not in response_types:
            raise self._discovery_error('it does not support the "code" response type')
        auth_methods = metadata.get("token_endpoint_auth_methods_supported")
        if isinstance(auth_methods, list) and self.config.client_auth_method not in auth_methods:
            raise self._discovery_error(
                f"it does not support the {self.config.client_auth_method} client authentication"
            )
        challenges = metadata.get("code_challenge_methods_supported")
        if isinstance(challenges, list) and "S256" not in challenges:
            raise self._discovery_error("it does not support S256 PKCE challenges")

    @property
    def _uses_userinfo(self) -> bool:
        return self.config.user_profile_method == "userinfo_endpoint"

    async def load_jwks(self, force: bool) -> object:
        if self._jwks is not None and not force:
            return self._jwks
        metadata = await self.load_metadata()
        try:
            self._jwks = await self._transport.request_json("GET", metadata["jwks_uri"])
        except OidcHttpError as exc:
            logger.warning("OIDC JWKS of %s cannot be fetched: %s", self.idp_id, exc)
            raise OidcError(
                "fetch_error", f"The provider's keys cannot be had ({exc})", 502
            ) from None
        return self._jwks

    # -- the flow ------------------------------------------------------------------

    async def authorization_redirect(
        self, client_redirect_url: str, ui_auth_session_id: str
    ) -> tuple[str, OidcSession]:
        """Where to send the browser, and the session its cookie must carry."""
        metadata = await self.load_metadata()
        session = OidcSession(
            idp_id=self.idp_id,
            state=new_secret_token(),
            nonce=new_secret_token(),
            code_verifier=new_secret_token(48)
            if metadata.get("code_challenge_methods_supported")
            else "",
            client_redirect_url=client_redirect_url,
            ui_auth_session_id=ui_auth_session_id,
            expires_ms=self._clock.time_ms() + SESSION_LIFETIME_MS,
        )
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.callback_url,
            "scope": " ".join(self.config.scopes),
            "state": session.state,
            "nonce": session.nonce,
        }
        if session.code_verifier:
            params["code_challenge_method"] = "S256"
            params["code_challenge"] = s256_challenge(session.code_verifier)
        endpoint: str = metadata["authorization_endpoint"]
        separator = "&" if "?" in endpoint else "?"
        return f"{endpoint}{separator}{urlencode(params, quote_via=quote)}", session

    async def complete(self, session: OidcSession, code: str) -> OidcUser:
        """The user the authorization ``code`` of ``session`` proves; OidcError if
        any step fails."""
        metadata = await self.load_metadata()
        token = await self._exchange_code(metadata, code, session.code_verifier)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("invalid_token", "The provider gave no ID token")
        try:
            claims = await verify_id_token(
                id_token,
                load_jwks=self.load_jwks,
                algorithms=allowed_algorithms(
                    metadata.get("id_token_signing_alg_values_supported")
                ),
                issuer=metadata["issuer"],
                client_id=self.config.client_id,
                nonce=session.nonce,
                now_s=self._clock.time_ms() // 1000,
            )
        except InvalidIdToken as exc:
            logger.warning("OIDC ID token from %s refused: %s", self.idp_id, exc)
            raise OidcError("invalid_token", f"The provider's ID token is refused: {exc}") from None
        if self._uses_userinfo:
            claims = await self._fetch_userinfo(metadata, token, claims)
        for requirement in self.config.attribute_requirements:
            if not requirement.met_by(claims):
                logger.info(
                    "OIDC user of %s does not meet the requirement on %r",
                    self.idp_id,
                    requirement.attribute,
                )
                raise OidcError("unauthorised", "You are not authorised to log in here.", 403)
        try:
            user = self._mapper.map(claims)
        except MappingFailed as exc:
            raise OidcError("mapping_error", str(exc)) from None
        return OidcUser(user, claims)

    async def _exchange_code(
        self, metadata: dict[str, Any], code: str, code_verifier: str
    ) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.callback_url,
        }
        if code_verifier:
            form["code_verifier"] = code_verifier
        headers: dict[str, str] = {}
        method = self.config.client_auth_method
        secret = self.config.client_secret or ""
        if method == "client_secret_basic":
            # RFC 6749 2.3.1: both form-urlencoded, then Basic
            pair = f"{quote(self.config.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form["client_id"] = self.config.client_id
            if method == "client_secret_post":
                form["client_secret"] = secret
        try:
            token = await self._transport.request_json(
                "POST", metadata["token_endpoint"], headers=headers, form=form
            )
        except OidcHttpError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            error = body.get("error")
            description = body.get("error_description")
            logger.warning("OIDC code exchange at %s failed: %s %s", self.idp_id, exc, error or "")
            if isinstance(error, str) and error:
                raise OidcError(
                    error, str(description or "The provider refused the login code")
                ) from None
            raise OidcError(
                "fetch_error", f"The login code cannot be exchanged ({exc})", 502
            ) from None
        if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
            raise OidcError("invalid_token", "The provider's token answer has no access token")
        token_type = token.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise OidcError("invalid_token", "The provider's token is not a bearer token")
        return token

    async def _fetch_userinfo(
        self, metadata: dict[str, Any], token: dict[str, Any], id_claims: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            userinfo = await self._transport.request_json(
                "GET",
                metadata["userinfo_endpoint"],
                headers={"Authorization": f"Bearer {token['access_token']}"},
            )
        except OidcHttpError as exc:
            logger.warning("OIDC userinfo of %s cannot be fetched: %s", self.idp_id, exc)
            raise OidcError(
                "fetch_error", f"The user's profile cannot be had ({exc})", 502
            ) from None
        if not isinstance(userinfo, dict):
            raise OidcError("fetch_error", "The provider's userinfo is not a JSON object", 502)
        if userinfo.get("sub") != id_claims.get("sub"):
            raise OidcError("invalid_token", "The userinfo is about another user than the ID token")
        return userinfo
