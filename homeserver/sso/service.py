"""Single sign-on: the identity providers, and what happens once one has vouched for
a user (client-server API: "SSO client login/authentication").

For a login, the provider's user is mapped to a local account (an identity seen before
keeps its account; else an account with the mapped localpart is taken over, as
Synapse does for CAS; else one is created), and the client's ``redirectUrl`` gets a
login token. For user-interactive auth, the provider's user must be the session's
user: the stage is recorded as done by whoever they are, and a session proved by
someone else is refused when the client comes back to it.

Outcomes are data (`LoginGranted`, `UiaChecked`); failures the browser should show
are `SsoError`. The HTML is the client API's business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from homeserver.accounts import AccountService, UserInUse
from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.errors import MatrixError, NotFound, Unrecognized
from homeserver.sso.cas import CasError, CasProvider, meets_requirements
from homeserver.sso.localparts import map_username_to_localpart
from homeserver.sso.login_tokens import LoginTokenService
from homeserver.sso.oidc import InvalidSession, OidcError, OidcProvider, SessionSigner
from homeserver.sso.oidc.mapping import localpart_candidate
from homeserver.sso.redirect_urls import (
    check_client_redirect_url,
    display_url,
    is_trusted_client,
    with_login_token,
)
from homeserver.uia import UserInteractiveAuth
from storage.stores import Stores

logger = logging.getLogger(__name__)

SSO_STAGE: Final = "m.login.sso"
PICK_IDP_PATH: Final = "_synapse/client/pick_idp"
# as Synapse: alice, alice1 ... alice999, then give up
MAX_LOCALPART_ATTEMPTS: Final = 1000


class SsoError(Exception):
    """A failure to show the user as a page: HTTP ``status``, a short ``error`` code
    and a ``description``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class IdentityProvider:
    """How clients show a provider (GET /login's ``identity_providers``)."""

    id: str
    name: str
    icon: str | None = None
    brand: str | None = None


@dataclass(frozen=True)
class LoginGranted:
    """A login went through: send the browser to ``redirect_url`` (which carries the
    login token) straight away if ``trusted``, else after the user confirms the site
    ``display_url``."""

    user_id: str
    redirect_url: str
    display_url: str
    trusted: bool
    new_user: bool


@dataclass(frozen=True)
class UiaChecked:
    """The SSO stage of a user-interactive auth session ran: ``proved`` whether the
    SSO user was the session's user ``user_id``."""

    proved: bool
    user_id: str


@dataclass(frozen=True)
class UiaRedirect:
    """Where the fallback page sends the user to re-authenticate for a session, and
    what the session is about (its request, e.g. ``DELETE /devices/X``)."""

    redirect_url: str
    provider: IdentityProvider
    request: str
    cookie: str | None = None


@dataclass(frozen=True)
class SsoRedirect:
    """Where to send the browser, and the session cookie to set with it (OIDC's
    signed ``oidc_session``; None for CAS, which keeps its state in the URL)."""

    location: str
    cookie: str | None = None


Provider = CasProvider | OidcProvider


class SsoService:
    def __init__(
        self,
        config: HomeserverConfig,
        stores: Stores,
        accounts: AccountService,
        uia: UserInteractiveAuth,
        login_tokens: LoginTokenService,
        cas: CasProvider | None,
        oidc: Sequence[OidcProvider],
        session_signer: SessionSigner,
        clock: Clock,
    ) -> None:
        self._config = config
        self._stores = stores
        self._accounts = accounts
        self._uia = uia
        self.login_tokens = login_tokens
        self.cas = cas
        self.oidc: dict[str, OidcProvider] = {provider.idp_id: provider for provider in oidc}
        self._signer = session_signer
        self._clock = clock
        # one mapping at a time: two first logins of one user make one account
        self._mapping_lock = asyncio.Lock()
        if self.enabled:
            uia.register_out_of_band_stage(SSO_STAGE, self.user_can_reauthenticate)

    async def close(self) -> None:
        if self.cas is not None:
            await self.cas.close()
        for provider in self.oidc.values():
            await provider.close()

    @property
    def enabled(self) -> bool:
        return self.cas is not None or bool(self.oidc)

    @property
    def identity_providers(self) -> list[IdentityProvider]:
        """Every provider, CAS first, then the OIDC ones in configuration order."""
        described = []
        if self.cas is not None:
            cas = self.cas
            described.append(
                IdentityProvider(cas.idp_id, cas.idp_name, cas.idp_icon, cas.idp_brand)
            )
        for provider in self.oidc.values():
            config = provider.config
            described.append(
                IdentityProvider(config.idp_id, config.idp_name, config.idp_icon, config.idp_brand)
            )
        return described

    def _provider(self, idp_id: str | None) -> Provider:
        """The provider ``idp_id`` (the only one when None)."""
        if not self.enabled:
            raise Unrecognized("Homeserver not configured for SSO.", status=400)
        if idp_id is None:
            if self.cas is not None:
                return self.cas
            return next(iter(self.oidc.values()))
        if self.cas is not None and idp_id == self.cas.idp_id:
            return self.cas
        if idp_id in self.oidc:
            return self.oidc[idp_id]
        raise NotFound("Unknown identity provider")

    # -- login -------------------------------------------------------------------

    def picker_url(self, client_redirect_url: str) -> str:
        """The page where the user picks a provider (``/_synapse/client/pick_idp``)."""
        query = urlencode({"redirectUrl": client_redirect_url})
        return f"{self._config.public_baseurl_effective}{PICK_IDP_PATH}?{query}"

    async def login_redirect(
        self, client_redirect_url: str, idp_id: str | None = None
    ) -> SsoRedirect:
        """GET /login/sso/redirect[/{idpId}]: where to send the browser to log in, to
        come back to ``client_redirect_url`` (M_INVALID_PARAM if no token may go
        there). With several providers and none named, the provider picker."""
        check_client_redirect_url(client_redirect_url)
        if idp_id is None and len(self.identity_providers) > 1:
            return SsoRedirect(self.picker_url(client_redirect_url))
        provider = self._provider(idp_id)
        if isinstance(provider, CasProvider):
            return SsoRedirect(provider.redirect_url({"redirectUrl": client_redirect_url}))
        return await self._oidc_redirect(provider, client_redirect_url, "")

    async def _oidc_redirect(
        self, provider: OidcProvider, client_redirect_url: str, ui_auth_session_id: str
    ) -> SsoRedirect:
        try:
            location, session = await provider.authorization_redirect(
                client_redirect_url, ui_auth_session_id
            )
        except OidcError as exc:
            raise SsoError(exc.status, exc.error, exc.description) from None
        return SsoRedirect(location, self._signer.sign(session))

    async def handle_oidc_callback(
        self, params: Mapping[str, str], cookie: str | None
    ) -> LoginGranted | UiaChecked:
        """GET/POST /_synapse/client/oidc/callback: the provider sent the browser back
        with a code (or an error) for the session of ``cookie``."""
        error = params.get("error")
        if error:
            description = params.get("error_description", "")
            logger.log(
                logging.INFO if error == "access_denied" else logging.WARNING,
                "OIDC callback with error %r: %s",
                error,
                description,
            )
            raise SsoError(400, error, description or "The identity provider refused the login")
        if cookie is None:
            logger.info("OIDC callback without a session cookie")
            raise SsoError(400, "missing_session", "No session cookie found")
        state = params.get("state")
        if not state:
            raise SsoError(400, "invalid_request", "State parameter is missing")
        try:
            session = self._signer.verify(cookie, state, self._clock.time_ms())
        except InvalidSession as exc:
            logger.info("OIDC callback refused: %s", exc.description)
            raise SsoError(400, exc.error, exc.description) from None
        provider = self.oidc.get(session.idp_id)
        if provider is None:
            raise SsoError(400, "unknown_idp", "Unknown IdP")
        code = params.get("code")
        if not code:
            raise SsoError(400, "invalid_request", "Code parameter is missing")
        try:
            proved = await provider.complete(session, code)
        except OidcError as exc:
            raise SsoError(exc.status, exc.error, exc.description) from None
        mapped = proved.user
        if session.ui_auth_session_id:
            return await self._complete_ui_auth(
                provider.idp_id, mapped.remote_user_id, session.ui_auth_session_id
            )
        config = provider.config
        user_id, new_user = await self._map_user(
            provider.idp_id,
            mapped.remote_user_id,
            mapped.localpart,
            mapped.display_name,
            registration_enabled=config.enable_registration,
            take_over_existing=config.allow_existing_users,
            email=mapped.email,
        )
        return await self._grant_login(
            user_id, provider.idp_id, session.client_redirect_url, new_user
        )

    async def handle_cas_ticket(
        self, ticket: str, client_redirect_url: str | None, session_id: str | None
    ) -> LoginGranted | UiaChecked:
        """GET /login/cas/ticket: validate the ticket for the service URL the browser
        came back to, then finish the UIA stage of ``session_id`` if given, else the
        login that goes back to ``client_redirect_url``."""
        if self.cas is None:
            raise Unrecognized("Homeserver not configured for CAS.", status=400)
        provider = self.cas
        if session_id is None and client_redirect_url is not None:
            try:
                check_client_redirect_url(client_redirect_url)
            except MatrixError as exc:
                raise SsoError(400, "invalid_redirect", exc.message) from None
        args: dict[str, str] = {}
        if client_redirect_url:
            args["redirectUrl"] = client_redirect_url
        if session_id:
            args["session"] = session_id
        try:
            response = await provider.validate_ticket(ticket, args)
        except CasError as exc:
            logger.info("CAS ticket not validated: %s", exc.error)
            raise SsoError(401, exc.error, exc.description) from None
        if session_id:
            return await self._complete_ui_auth(provider.idp_id, response.username, session_id)
        assert client_redirect_url is not None
        if not meets_requirements(response.attributes, provider.config.required_attributes):
            logger.info("CAS user %r lacks a required attribute", response.username)
            raise SsoError(400, "unauthorised", "You are not authorised to log in here.")
        user_id, new_user = await self._map_user(
            provider.idp_id,
            response.username,
            map_username_to_localpart(response.username),
            provider.display_name(response),
            registration_enabled=provider.config.enable_registration,
            take_over_existing=True,
        )
        return await self._grant_login(user_id, provider.idp_id, client_redirect_url, new_user)

    async def _map_user(
        self,
        idp_id: str,
        remote_user: str,
        localpart: str | None,
        display_name: str | None,
        *,
        registration_enabled: bool,
        take_over_existing: bool,
        email: str | None = None,
    ) -> tuple[str, bool]:
        """The account ``remote_user`` logs in as, and whether it was just created.

        An identity seen before keeps its account. Else, with ``take_over_existing``
        (CAS; OIDC's ``allow_existing_users``), an account of the mapped localpart is
        linked to it; without, a taken localpart gets 1, 2 ... appended (Synapse)."""
        async with self._mapping_lock:
            user_id = await self._stores.external_ids.get_user(idp_id, remote_user)
            if user_id is not None:
                return user_id, False
            if localpart is None:
                raise SsoError(
                    400, "mapping_error", "The identity provider gave no user name to register"
                )
            if take_over_existing:
                existing = await self._existing_account(localpart)
                if existing is not None:
                    await self._check_can_take_over(existing)
                    logger.info("SSO user %r of %s takes over %s", remote_user, idp_id, existing)
                    linked = await self._stores.external_ids.record(idp_id, remote_user, existing)
                    return linked, False
            else:
                localpart = await self._free_localpart(localpart)
            if not registration_enabled:
                raise SsoError(
                    400, "mapping_error", "User does not exist and registrations are disabled"
                )
            try:
                self._accounts.check_new_localpart(localpart)
            except MatrixError:
                raise SsoError(
                    400, "mapping_error", f"No valid Matrix ID can be made of {remote_user!r}"
                ) from None
            try:
                user_id, _ = await self._accounts.register(
                    localpart, None, displayname=display_name, login=False
                )
                new_user = True
            except UserInUse:
                # registered meanwhile (by another process)
                raced = await self._existing_account(localpart)
                if raced is None or not take_over_existing:
                    raise SsoError(
                        400, "mapping_error", "The Matrix ID was taken meanwhile; try again"
                    ) from None
                await self._check_can_take_over(raced)
                user_id, new_user = raced, False
            linked = await self._stores.external_ids.record(idp_id, remote_user, user_id)
            logger.info("SSO user %r of %s registered as %s", remote_user, idp_id, linked)
            created = new_user and linked == user_id
            if created and email:
                await self._add_email(user_id, email)
            return linked, created

    async def _add_email(self, user_id: str, email: str) -> None:
        """A new SSO user's mapped email becomes their (validated) email address, as
        Synapse binds it, unless another account already has it."""
        address = email.lower()
        holder = await self._stores.user_admin.user_of_threepid("email", address)
        if holder is not None:
            logger.info("SSO email of %s is already another account's; not added", user_id)
            return
        await self._stores.user_admin.replace_threepids(
            user_id, {("email", address)}, self._clock.time_ms()
        )

    async def _free_localpart(self, localpart: str) -> str:
        """``localpart``, or the first of ``localpart1``, ``localpart2`` ... nobody has."""
        for failures in range(MAX_LOCALPART_ATTEMPTS):
            candidate = localpart_candidate(localpart, failures)
            if await self._existing_account(candidate) is None:
                return candidate
        raise SsoError(400, "mapping_error", "Unable to generate a Matrix ID from the SSO response")

    async def _check_can_take_over(self, user_id: str) -> None:
        """A guest account is nobody's identity: an SSO user named like it does not
        get it (nor its rooms and history)."""
        account = await self._stores.accounts.get_user(user_id)
        if account is not None and account.is_guest:
            raise SsoError(400, "mapping_error", f"The Matrix ID {user_id} is already taken")

    async def _existing_account(self, localpart: str) -> str | None:
        user_id = self._accounts.user_id_for(localpart)
        matches = await self._stores.accounts.get_user_case_insensitive(user_id)
        if user_id in matches:
            return user_id
        return matches[0] if matches else None

    async def _grant_login(
        self, user_id: str, idp_id: str, client_redirect_url: str, new_user: bool
    ) -> LoginGranted:
        account = await self._stores.accounts.get_user(user_id)
        if account is None or account.deactivated:
            raise SsoError(403, "user_deactivated", "This account has been deactivated.")
        token = await self.login_tokens.create(user_id, idp_id)
        return LoginGranted(
            user_id=user_id,
            redirect_url=with_login_token(client_redirect_url, token),
            display_url=display_url(client_redirect_url),
            trusted=is_trusted_client(client_redirect_url, self._config.sso.client_whitelist),
            new_user=new_user,
        )

    # -- user-interactive auth ---------------------------------------------------

    async def user_can_reauthenticate(self, user_id: str) -> bool:
        """Whether ``user_id`` has logged in through a configured provider (only they
        are offered m.login.sso, as Synapse)."""
        providers = await self._stores.external_ids.get_providers_of_user(user_id)
        return any(idp.id in providers for idp in self.identity_providers)

    async def ui_auth_redirect(self, session_id: str) -> UiaRedirect:
        """GET /auth/m.login.sso/fallback/web: where the session's user
        re-authenticates (the first provider they have an identity with)."""
        session = await self._uia.live_session(session_id)
        if session.user_id is None:
            raise MatrixError(400, "M_UNKNOWN", "User has no SSO identities")
        linked = await self._stores.external_ids.get_providers_of_user(session.user_id)
        choices = [idp for idp in self.identity_providers if idp.id in linked]
        if not choices:
            raise MatrixError(400, "M_UNKNOWN", "User has no SSO identities")
        described = choices[0]
        provider = self._provider(described.id)
        if isinstance(provider, CasProvider):
            return UiaRedirect(
                provider.redirect_url({"session": session_id}), described, session.request
            )
        redirect = await self._oidc_redirect(provider, "", session_id)
        return UiaRedirect(redirect.location, described, session.request, redirect.cookie)

    async def _complete_ui_auth(self, idp_id: str, remote_user: str, session_id: str) -> UiaChecked:
        try:
            session = await self._uia.live_session(session_id)
        except MatrixError:
            raise SsoError(400, "unknown_session", "Unknown or expired session") from None
        expected = session.user_id or ""
        user_id = await self._stores.external_ids.get_user(idp_id, remote_user)
        proved = user_id is not None and user_id == expected
        if not proved:
            logger.warning(
                "SSO user %r of %s is not %s: user-interactive auth fails",
                remote_user,
                idp_id,
                expected,
            )
        await self._uia.complete_out_of_band(session_id, SSO_STAGE, expected if proved else "")
        return UiaChecked(proved, expected)
