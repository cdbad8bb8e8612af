"""A fake OpenID provider on loopback for the OIDC tests (discovery, JWKS, authorize,
token and userinfo, signing real JWTs with joserfc), and a browser-free walk through
an OIDC login: follow the Location headers, carry the session cookie by hand."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.sso.support import CLIENT_URL, PUBLIC_BASEURL, V3

CLIENT_ID = "matrix-client"
CLIENT_SECRET = "s3cret-client"
CALLBACK = f"{PUBLIC_BASEURL}_synapse/client/oidc/callback"


@dataclass
class Grant:
    nonce: str
    challenge: str | None
    redirect_uri: str


@dataclass
class FakeOidc:
    """An OpenID provider. ``user`` is the claims of whoever "logs in" at the
    authorization endpoint; the other fields bend its answers for the bad cases."""

    now: Callable[[], int] = lambda: 1_700_000_000
    base_url: str = ""
    user: dict[str, Any] = field(
        default_factory=lambda: {"sub": "u-alice", "preferred_username": "alice", "name": "Alice"}
    )
    rsa: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "rsa1"})
    )
    ec: ECKey = field(
        default_factory=lambda: ECKey.generate_key("P-256", parameters={"kid": "ec1"})
    )
    alg: str = "RS256"
    published: list[str] = field(default_factory=lambda: ["rsa1", "ec1"])
    # claims forced into (or, with None, out of) the next ID tokens
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    token_error: tuple[int, dict[str, Any]] | None = None
    discovery_status: int = 200
    discovery_overrides: dict[str, Any] = field(default_factory=dict)
    auth_method: str = "client_secret_basic"
    grants: dict[str, Grant] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    jwks_fetches: int = 0
    userinfo_fetches: int = 0
    resign_with_other_key: bool = False

    @property
    def issuer(self) -> str:
        return self.base_url + "/"

    def key(self, kid: str) -> RSAKey | ECKey:
        return self.rsa if kid == "rsa1" else self.ec

    async def discovery(self, _request: web.Request) -> web.Response:
        if self.discovery_status != 200:
            return web.json_response({"error": "down"}, status=self.discovery_status)
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.base_url + "/authorize",
                "token_endpoint": self.base_url + "/token",
                "userinfo_endpoint": self.base_url + "/userinfo",
                "jwks_uri": self.base_url + "/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "none",
                ],
                "code_challenge_methods_supported": ["S256"],
                **self.discovery_overrides,
            }
        )

    async def jwks(self, _request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        keys = [self.key(kid).as_dict(private=False) for kid in self.published]
        return web.json_response({"keys": keys})

    async def authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        assert query["response_type"] == "code" and query["client_id"] == CLIENT_ID
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(
            query["nonce"], query.get("code_challenge"), query["redirect_uri"]
        )
        location = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return web.Response(status=302, headers={"Location": location})

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        if self.auth_method == "client_secret_basic":
            header = request.headers.get("Authorization", "")
            expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            return header == f"Basic {expected}"
        if self.auth_method == "client_secret_post":
            return form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET
        return form.get("client_id") == CLIENT_ID and "Authorization" not in request.headers

    async def token(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.token_requests.append(form)
        if self.token_error is not None:
            status, body = self.token_error
            return web.json_response(body, status=status)
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or form.get("redirect_uri") != grant.redirect_uri:
            return web.json_response({"error": "invalid_grant"}, status=400)
        if grant.challenge is not None:
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.challenge:
                return web.json_response({"error": "invalid_grant"}, status=400)
        now = self.now()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            **self.user,
        }
        for name, value in self.id_token_overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        kid = "rsa1" if self.alg == "RS256" else "ec1"
        key = self.key(kid)
        if self.resign_with_other_key:
            key = RSAKey.generate_key(2048) if self.alg == "RS256" else ECKey.generate_key("P-256")
        id_token = jwt.encode({"alg": self.alg, "kid": kid}, claims, key)
        return web.json_response(
            {
                "access_token": "at-" + secrets.token_urlsafe(8),
                "token_type": "Bearer",
                "id_token": id_token,
            }
        )

    async def userinfo(self, request: web.Request) -> web.Response:
        self.userinfo_fetches += 1
        if not request.headers.get("Authorization", "").startswith("Bearer at-"):
            return web.json_response({"error": "invalid_token"}, status=401)
        return web.json_response({**self.user, "groups": ["staff"]})


@pytest.fixture
async def oidc() -> AsyncIterator[FakeOidc]:
    fake = FakeOidc()
    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", fake.discovery)
    app.router.add_get("/jwks", fake.jwks)
    app.router.add_get("/authorize", fake.authorize)
    app.router.add_post("/token", fake.token)
    app.router.add_get("/userinfo", fake.userinfo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


def provider_config(oidc: FakeOidc, idp_id: str = "test", **options: Any) -> dict[str, Any]:
    mapping = options.pop(
        "user_mapping_provider",
        {
            "config": {
                "localpart_template": "{{ user.preferred_username }}",
                "display_name_template": "{{ user.name }}",
            }
        },
    )
    return {
        "idp_id": idp_id,
        "idp_name": f"Provider {idp_id}",
        "issuer": oidc.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "skip_verification": True,
        "user_mapping_provider": mapping,
        **options,
    }


async def oidc_homeserver(
    make_homeserver: HarnessFactory, oidc: FakeOidc, **options: Any
) -> HomeserverHarness:
    """A homeserver with ``oidc`` as provider ``oidc-test`` (loopback allowed); the
    provider's clock follows the homeserver's."""
    top_level = ("sso", "cas_config", "oidc_providers")
    extra = {k: options.pop(k) for k in top_level if k in options}
    extra.setdefault("oidc_providers", [provider_config(oidc, **options)])
    hs = await make_homeserver(
        public_baseurl=PUBLIC_BASEURL, ip_range_whitelist=["127.0.0.0/8"], **extra
    )
    oidc.now = lambda: hs.clock.time_ms() // 1000
    return hs


def session_cookie(resp: aiohttp.ClientResponse) -> str:
    morsel = resp.cookies["oidc_session"]
    assert morsel["httponly"] and morsel["secure"], morsel.OutputString()
    assert morsel["path"] == "/_synapse/client/oidc"
    assert morsel["samesite"] == "None"
    return morsel.value


@dataclass
class Walk:
    """An OIDC login under way: the provider's authorize URL and the cookie."""

    authorize_url: str
    cookie: str


async def start_login(
    hs: HomeserverHarness, idp: str | None = "oidc-test", redirect_url: str = CLIENT_URL
) -> Walk:
    path = f"{V3}/login/sso/redirect" + (f"/{idp}" if idp else "")
    resp = await hs.client.get(path, params={"redirectUrl": redirect_url}, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return Walk(resp.headers["Location"], session_cookie(resp))


async def authorize(walk: Walk) -> str:
    """The browser at the provider: where it is sent back (the callback URL)."""
    async with aiohttp.ClientSession() as browser:
        async with browser.get(walk.authorize_url, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            return resp.headers["Location"]


async def callback(
    hs: HomeserverHarness, url: str, cookie: str | None, method: str = "GET"
) -> tuple[int, str, aiohttp.ClientResponse]:
    """The browser back at the homeserver's callback, with ``cookie`` (if any)."""
    assert url.startswith(CALLBACK), url
    parts = urlsplit(url)
    hs.client.session.cookie_jar.clear()
    headers = {"Cookie": f"oidc_session={cookie}"} if cookie is not None else {}
    if method == "POST":
        form = {k: v[0] for k, v in parse_qs(parts.query).items()}
        resp = await hs.client.post(parts.path, data=form, headers=headers, allow_redirects=False)
    else:
        resp = await hs.client.get(
            f"{parts.path}?{parts.query}", headers=headers, allow_redirects=False
        )
    return resp.status, await resp.text(), resp


async def oidc_login_page(hs: HomeserverHarness, idp: str = "oidc-test") -> tuple[int, str]:
    """A whole login: the status and page the callback ends on."""
    walk = await start_login(hs, idp)
    status, page, _ = await callback(hs, await authorize(walk), walk.cookie)
    return status, page
