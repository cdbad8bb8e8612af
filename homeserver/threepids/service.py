"""Users' third-party IDs: validating them, adding and removing them, and their
bindings on identity servers (client-server API "Adding Account Administrative
Contact Information", the requestToken endpoints, m.login.email.identity).

Email addresses are validated here: ``request_email_token`` mails a link carrying a
single-use token that expires after ``email.validation_token_lifetime``; submitting it
(``submit_token``) validates the session; a validated session is spent once, by the
UIA stage or by adding the address to an account. Phone numbers are validated by the
``account_threepid_delegates.msisdn`` identity server. Bindings made through this
server are recorded, so that deleting the address, ``/unbind`` without an identity
server and deactivation unbind them where they are (the unbind request signed with
this server's key, as Synapse).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.email import MailDeliveryError, MailTemplates, SmtpMailer, ValidationPurpose
from homeserver.errors import Forbidden, MatrixError
from homeserver.identity.client import UNBIND_PATH, IdentityServerClient, IdentityServerError
from homeserver.ratelimit import RateLimit, RateLimiter
from homeserver.threepids.validation import (
    allowed,
    canonical_address,
    canonical_email,
    check_client_secret,
    check_next_link,
    phone_number_to_msisdn,
)
from storage.database import Transaction
from storage.stores import Stores
from storage.threepid_validation import ValidationSession

logger = logging.getLogger(__name__)

EMAIL_STAGE = "m.login.email.identity"
MSISDN_STAGE = "m.login.msisdn"

# (destination, method, uri, content) -> the X-Matrix Authorization header
RequestSigner = Callable[[str, str, str, Any], str]

# Where a mailed link leads (under public_baseurl), by purpose: Synapse's links.
LINK_PATHS = {
    ValidationPurpose.PASSWORD_RESET: "_synapse/client/password_reset/email/submit_token",
    ValidationPurpose.REGISTRATION: "_matrix/client/unstable/registration/email/submit_token",
    ValidationPurpose.ADD_THREEPID: "_matrix/client/unstable/add_threepid/email/submit_token",
}


class ThreepidValidationFailed(MatrixError):
    """A submitted token did not validate its session (400, shown on the link's page)."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, "M_UNKNOWN", reason)


@dataclass(frozen=True)
class ValidatedThreepid:
    medium: str
    address: str
    validated_at: int


class ThreepidService:
    def __init__(
        self,
        config: HomeserverConfig,
        stores: Stores,
        clock: Clock,
        limiter: RateLimiter,
        identity: IdentityServerClient,
        sign_request: RequestSigner,
        *,
        mailer: SmtpMailer | None = None,
        templates: MailTemplates | None = None,
    ) -> None:
        self._config = config
        self._stores = stores
        self._clock = clock
        self._limiter = limiter
        self._identity = identity
        self._sign = sign_request
        email = config.email
        self._mailer = mailer or (SmtpMailer(email) if email.can_verify_email else None)
        self.templates = templates or MailTemplates(email.template_dir)
        rc = config.rc_3pid_validation
        self._request_limit = RateLimit(rc.per_second, rc.burst_count)

    @property
    def can_verify_email(self) -> bool:
        return self._config.email.can_verify_email and self._mailer is not None

    @property
    def changes_enabled(self) -> bool:
        return self._config.enable_3pid_changes

    def check_changes_enabled(self) -> None:
        if not self._config.enable_3pid_changes:
            raise MatrixError(400, "M_FORBIDDEN", "3PID changes are disabled on this server")

    # -- requestToken ------------------------------------------------------------------

    async def request_email_token(
        self,
        purpose: ValidationPurpose,
        address: str,
        client_secret: str,
        send_attempt: int,
        next_link: str | None,
        client_ip: str,
    ) -> dict[str, Any]:
        """POST .../email/requestToken for ``purpose``: mail a validation link unless
        this ``send_attempt`` was already seen; ``{"sid", "submit_url"}``."""
        if not self.can_verify_email:
            raise self._email_disabled(purpose)
        check_client_secret(client_secret)
        address = canonical_email(address)
        await self._check_request(
            purpose,
            "email",
            address,
            client_ip,
            next_link,
            denied="Your email domain is not authorized on this server",
            not_found="Email not found",
            in_use="Email is already in use",
        )
        sid = await self._send_validation(purpose, address, client_secret, send_attempt, next_link)
        submit_url = self._config.public_baseurl_effective + LINK_PATHS[purpose].replace(
            "_synapse/client/", "_matrix/client/unstable/"
        )
        return {"sid": sid, "submit_url": submit_url}

    async def _check_request(
        self,
        purpose: ValidationPurpose,
        medium: str,
        address: str,
        client_ip: str,
        next_link: str | None,
        *,
        denied: str,
        not_found: str,
        in_use: str,
    ) -> None:
        """What every requestToken checks, in Synapse's order: the address is allowed
        here (``allowed_local_3pids``; not for a reset), the rate limit, ``next_link``,
        and that the address is someone's (a reset) or no one's (registering, adding)."""
        if purpose is not ValidationPurpose.PASSWORD_RESET and not allowed(
            self._config.allowed_local_3pids, medium, address
        ):
            raise Forbidden(denied, errcode="M_THREEPID_DENIED")
        self._rate_limit(medium, address, client_ip)
        if next_link is not None:
            check_next_link(next_link)
        holder = await self._stores.threepids.user_of(medium, address)
        if purpose is ValidationPurpose.PASSWORD_RESET:
            if holder is None:
                raise MatrixError(400, "M_THREEPID_NOT_FOUND", not_found)
        elif holder is not None:
            raise MatrixError(400, "M_THREEPID_IN_USE", in_use)

    async def request_msisdn_token(
        self,
        purpose: ValidationPurpose,
        country: str,
        phone_number: str,
        client_secret: str,
        send_attempt: int,
        next_link: str | None,
        client_ip: str,
    ) -> dict[str, Any]:
        """POST .../msisdn/requestToken: the delegate texts the code; its answer."""
        check_client_secret(client_secret)
        msisdn = phone_number_to_msisdn(country, phone_number)
        await self._check_request(
            purpose,
            "msisdn",
            msisdn,
            client_ip,
            next_link,
            denied="Phone numbers are not authorized on this server",
            not_found="Account phone number not found",
            in_use="Phone number is already in use",
        )
        delegate = self._config.account_threepid_delegates.msisdn
        if delegate is None:
            raise MatrixError(
                400,
                "M_THREEPID_MEDIUM_NOT_SUPPORTED",
                "Phone numbers are not supported by this homeserver",
            )
        body: dict[str, Any] = {
            "client_secret": client_secret,
            "country": country,
            "phone_number": phone_number,
            "send_attempt": send_attempt,
        }
        if next_link is not None:
            body["next_link"] = next_link
        return await self._identity.request_msisdn_token(delegate, body)

    def _rate_limit(self, medium: str, address: str, client_ip: str) -> None:
        """rc_3pid_validation per client address and per third-party ID."""
        self._limiter.check("3pid_validation_ip", f"{medium} {client_ip}", self._request_limit)
        self._limiter.check("3pid_validation_address", f"{medium} {address}", self._request_limit)

    @staticmethod
    def _email_disabled(purpose: ValidationPurpose) -> MatrixError:
        if purpose is ValidationPurpose.ADD_THREEPID:
            return MatrixError(
                400,
                "M_THREEPID_MEDIUM_NOT_SUPPORTED",
                "Adding an email to your account is disabled on this server",
            )
        if purpose is ValidationPurpose.PASSWORD_RESET:
            return MatrixError(
                400, "M_UNKNOWN", "Email-based password resets have been disabled on this server"
            )
        return MatrixError(
            400, "M_UNKNOWN", "Email-based registration has been disabled on this server"
        )

    async def _send_validation(
        self,
        purpose: ValidationPurpose,
        address: str,
        client_secret: str,
        send_attempt: int,
        next_link: str | None,
    ) -> str:
        """The session of (address, client_secret), continued or new; mails a new token
        only when ``send_attempt`` is higher than the last one seen (idempotence)."""
        existing = await self._stores.threepid_validation.unvalidated_session(
            "email", client_secret, address
        )
        if existing is not None and send_attempt <= existing.last_send_attempt:
            return existing.session_id
        sid = existing.session_id if existing is not None else secrets.token_urlsafe(12)
        if next_link is not None:
            next_link += ("&" if "?" in next_link else "?") + urlencode({"sid": sid})
        token = secrets.token_urlsafe(24)
        query = urlencode({"token": token, "client_secret": client_secret, "sid": sid})
        link = f"{self._config.public_baseurl_effective}{LINK_PATHS[purpose]}?{query}"
        email = self._config.email
        mail = self.templates.validation_mail(
            purpose,
            email.subjects[purpose.subject_key],
            link=link,
            server_name=self._config.server_name,
            app_name=email.app_name,
        )
        assert self._mailer is not None
        try:
            await self._mailer.send(address, mail.subject, mail.text, mail.html)
        except MailDeliveryError:
            raise MatrixError(
                500, "M_UNKNOWN", "An error was encountered when sending the email"
            ) from None
        now = self._clock.time_ms()
        session = ValidationSession(sid, "email", address, client_secret, send_attempt, None)
        await self._stores.threepid_validation.start_or_continue(
            session, token, next_link, now + email.validation_token_lifetime, now
        )
        return sid

    # -- submitting a token ------------------------------------------------------------

    async def submit_token(self, sid: str, client_secret: str, token: str) -> str | None:
        """Validate session ``sid`` with a mailed ``token``; the session's next_link.
        ThreepidValidationFailed (400) with the reason otherwise; nothing changes."""
        check_client_secret(client_secret)
        now = self._clock.time_ms()
        store = self._stores.threepid_validation

        async def txn_func(txn: Transaction) -> str | None:
            session = await store.session_txn(txn, sid)
            if session is None:
                raise ThreepidValidationFailed("Unknown session_id")
            found = await store.token_txn(txn, sid, token)
            if found is None:
                raise ThreepidValidationFailed("Validation token not found or has expired")
            if not secrets.compare_digest(session.client_secret, client_secret):
                raise ThreepidValidationFailed(
                    "This client_secret does not match the provided session_id"
                )
            if found.expires <= now:
                raise ThreepidValidationFailed("This token has expired. Please request a new one")
            await store.mark_validated_txn(txn, sid, now)
            return found.next_link

        return await self._stores.db.run_transaction("validate_threepid_session", txn_func)

    # -- spending a validated session ----------------------------------------------------

    async def take_validated(self, medium: str, sid: str, client_secret: str) -> ValidatedThreepid:
        """The third-party ID validated in session ``sid``, spending the session (email),
        or as the msisdn delegate reports it; 401 M_UNAUTHORIZED otherwise."""
        check_client_secret(client_secret)
        found: ValidatedThreepid | None = None
        if medium == "email":
            if not self.can_verify_email:
                raise MatrixError(
                    400, "M_UNKNOWN", "Email address verification is not enabled on this homeserver"
                )
            found = await self._spend_email_session(sid, client_secret)
        else:
            delegate = self._config.account_threepid_delegates.msisdn
            if delegate is None:
                raise MatrixError(
                    400, "M_UNKNOWN", "Phone number verification is not enabled on this homeserver"
                )
            answer = await self._identity.validated_threepid(delegate, sid, client_secret)
            if answer is not None and answer.get("medium") == "msisdn":
                found = ValidatedThreepid(
                    "msisdn", str(answer.get("address")), _int(answer.get("validated_at"))
                )
        if found is None:
            raise MatrixError(401, "M_UNAUTHORIZED", "Unable to get validated threepid")
        return found

    async def _spend_email_session(self, sid: str, client_secret: str) -> ValidatedThreepid | None:
        store = self._stores.threepid_validation

        async def txn_func(txn: Transaction) -> ValidatedThreepid | None:
            session = await store.session_txn(txn, sid)
            if (
                session is None
                or session.medium != "email"
                or session.validated_at is None
                or not secrets.compare_digest(session.client_secret, client_secret)
            ):
                return None
            await store.delete_session_txn(txn, sid)
            return ValidatedThreepid(session.medium, session.address, session.validated_at)

        return await self._stores.db.run_transaction("spend_threepid_session", txn_func)

    async def email_stage(self, auth: dict[str, Any], user_id: str | None) -> dict[str, Any]:
        """UIA ``m.login.email.identity``: ``threepid_creds`` name a validated session."""
        return await self._threepid_stage("email", auth)

    async def msisdn_stage(self, auth: dict[str, Any], user_id: str | None) -> dict[str, Any]:
        """UIA ``m.login.msisdn``: a session the msisdn delegate validated."""
        return await self._threepid_stage("msisdn", auth)

    async def _threepid_stage(self, medium: str, auth: dict[str, Any]) -> dict[str, Any]:
        creds = auth.get("threepid_creds", auth.get("threepidCreds"))
        if not isinstance(creds, dict):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing threepid_creds")
        sid = creds.get("sid")
        client_secret = creds.get("client_secret", creds.get("clientSecret"))
        if not isinstance(sid, str) or not sid:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing param sid in threepid_creds")
        found = await self.take_validated(medium, sid, check_client_secret(client_secret))
        return {
            "medium": found.medium,
            "address": found.address,
            "validated_at": found.validated_at,
            "threepid_creds": {k: v for k, v in creds.items() if k != "id_access_token"},
        }

    # -- a user's third-party IDs ------------------------------------------------------------

    async def threepids(self, user_id: str) -> list[dict[str, Any]]:
        """GET /account/3pid."""
        rows = await self._stores.threepids.of_user(user_id)
        return [
            {
                "medium": r.medium,
                "address": r.address,
                "validated_at": r.validated_at,
                "added_at": r.added_at,
            }
            for r in rows
        ]

    async def add_validated(self, user_id: str, sid: str, client_secret: str) -> None:
        """POST /account/3pid/add (and the legacy /account/3pid): the address of a
        validated session becomes the user's; 400 M_THREEPID_AUTH_FAILED if none."""
        self.check_changes_enabled()
        try:
            medium = "email"
            if self._config.account_threepid_delegates.msisdn is not None:
                session = await self._stores.threepid_validation.session(sid)
                if session is None:
                    medium = "msisdn"
            found = await self.take_validated(medium, sid, client_secret)
        except MatrixError as exc:
            if exc.status == 401 or exc.errcode == "M_UNKNOWN":
                raise MatrixError(
                    400, "M_THREEPID_AUTH_FAILED", "No validated 3pid session found"
                ) from None
            raise
        await self.add(user_id, found)

    async def add(self, user_id: str, threepid: ValidatedThreepid) -> None:
        address = canonical_address(threepid.medium, threepid.address)
        now = self._clock.time_ms()

        async def txn_func(txn: Transaction) -> bool:
            return await self._stores.threepids.add_txn(
                txn, user_id, threepid.medium, address, threepid.validated_at, now
            )

        if not await self._stores.db.run_transaction("user_add_threepid", txn_func):
            holder = await self._stores.threepids.user_of(threepid.medium, address)
            if holder != user_id:
                raise MatrixError(400, "M_THREEPID_IN_USE", "Third-party ID is already in use")

    async def add_registration_threepids(
        self, user_id: str, completed: dict[str, Any], *, bind: bool = False
    ) -> None:
        """After a registration whose UIA completed ``m.login.email.identity`` (or
        ``m.login.msisdn``): the validated address becomes the new user's. With
        ``bind`` and an identity server and its access token in the stage's
        ``threepid_creds``, the session is also bound there (msisdn: the delegate's
        session; an email session of this server is unknown to identity servers)."""
        for stage in (EMAIL_STAGE, MSISDN_STAGE):
            result = completed.get(stage)
            if not isinstance(result, dict):
                continue
            medium, address = result.get("medium"), result.get("address")
            if not isinstance(medium, str) or not isinstance(address, str):
                continue
            threepid = ValidatedThreepid(medium, address, _int(result.get("validated_at")))
            await self.add(user_id, threepid)
            creds = result.get("threepid_creds")
            if bind and medium == "msisdn" and isinstance(creds, dict):
                id_server, token = creds.get("id_server"), creds.get("id_access_token")
                if isinstance(id_server, str) and isinstance(token, str):
                    await self.bind(
                        user_id,
                        str(creds.get("sid")),
                        str(creds.get("client_secret")),
                        id_server,
                        token,
                    )

    async def delete(self, user_id: str, medium: str, address: str, id_server: str | None) -> str:
        """POST /account/3pid/delete: unbind it where it is bound, then remove it;
        ``id_server_unbind_result``."""
        self.check_changes_enabled()
        address = canonical_address(medium, address)
        try:
            unbound = await self.unbind(user_id, medium, address, id_server)
        except MatrixError as exc:
            if exc.status == 400:
                raise
            logger.warning("Failed to remove threepid of %s: %s", user_id, exc.message)
            raise MatrixError(500, "M_UNKNOWN", "Failed to remove threepid") from None
        await self._stores.threepids.delete(user_id, medium, address)
        return "success" if unbound else "no-support"

    async def user_for_login(self, medium: str, address: str) -> str | None:
        """The user holding ``(medium, address)`` (an email canonicalised first)."""
        if medium == "email":
            try:
                address = canonical_email(address)
            except MatrixError:
                return None
        return await self._stores.threepids.user_of(medium, address)

    async def user_for_password_reset(self, completed: dict[str, Any]) -> str:
        """The account of the address the email stage of a password reset proved;
        404 M_NOT_FOUND if no account has it."""
        result = completed.get(EMAIL_STAGE)
        if not isinstance(result, dict) or not isinstance(result.get("address"), str):
            raise MatrixError(500, "M_UNKNOWN", "Malformed threepid")
        user_id = await self.user_for_login(str(result.get("medium")), result["address"])
        if user_id is None:
            raise MatrixError(404, "M_NOT_FOUND", "Email address not found")
        return user_id

    # -- identity servers ----------------------------------------------------------------

    async def bind(
        self, user_id: str, sid: str, client_secret: str, id_server: str, id_access_token: str
    ) -> dict[str, Any]:
        """POST /account/3pid/bind: the identity server publishes the binding of the
        third-party ID it validated; recorded, for unbinding later."""
        check_client_secret(client_secret)
        try:
            answer = await self._identity.bind(
                id_server, id_access_token, sid, client_secret, user_id
            )
        except IdentityServerError as exc:
            if exc.remote_status is not None and exc.remote_status < 500:
                raise MatrixError(
                    exc.remote_status,
                    exc.remote_errcode or "M_UNKNOWN",
                    "The identity server refused the binding",
                ) from None
            raise
        medium, address = answer.get("medium"), answer.get("address")
        if isinstance(medium, str) and isinstance(address, str):
            await self._stores.threepids.add_binding(user_id, medium, address, id_server)
        return answer

    async def unbind(self, user_id: str, medium: str, address: str, id_server: str | None) -> bool:
        """Unbind ``(medium, address)`` of ``user_id`` on ``id_server``, or on every
        identity server it was bound on through us; False when there is none or one
        does not support unbinding (400, 404, 501), 500 when one cannot be asked."""
        servers = (
            [id_server]
            if id_server
            else await self._stores.threepids.id_servers_of(user_id, medium, address)
        )
        if not servers:
            return False
        unbound = True
        for server in servers:
            unbound &= await self._unbind_on(user_id, medium, address, server)
        return unbound

    async def _unbind_on(self, user_id: str, medium: str, address: str, id_server: str) -> bool:
        body = {"mxid": user_id, "threepid": {"medium": medium, "address": address}}
        authorization = self._sign(id_server, "POST", UNBIND_PATH, body)
        try:
            await self._identity.unbind(id_server, body, authorization)
            unbound = True
        except IdentityServerError as exc:
            if exc.remote_status not in (400, 404, 501):
                logger.warning("Failed to unbind threepid on %s: %s", id_server, exc.message)
                raise MatrixError(500, "M_UNKNOWN", "Failed to contact identity server") from None
            logger.info("identity server %s answered %s to unbind", id_server, exc.remote_status)
            unbound = False
        await self._stores.threepids.remove_binding(user_id, medium, address, id_server)
        return unbound

    async def unbind_all(self, user_id: str, id_server: str | None = None) -> bool:
        """Before deactivation: unbind every binding the user made through us (on
        ``id_server`` if given); whether every identity server unbound them."""
        bindings = await self._stores.threepids.bindings_of(user_id)
        unbound = True
        for medium, address in sorted({(m, a) for m, a, _ in bindings}):
            try:
                unbound &= await self.unbind(user_id, medium, address, id_server)
            except MatrixError:
                raise MatrixError(
                    400, "M_UNKNOWN", "Failed to remove threepid from ID server"
                ) from None
        return unbound


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
