"""Accounts: registration, password login, password change and deactivation."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from homeserver.appservice import ApplicationService, AppServices
from homeserver.clock import Clock
from homeserver.errors import BadJson, Forbidden, InvalidParam, MatrixError, NotFound
from homeserver.passwords import MAX_PASSWORD_BYTES, PasswordHasher
from homeserver.ratelimit import RateLimit, RateLimiter
from homeserver.sessions import Session, SessionService
from homeserver.uia import UiaRefused
from storage.database import IntegrityError, Transaction
from storage.registration_tokens import RegistrationToken
from storage.stores import Stores

# The grammar for user IDs that a server creates (appendices: user identifiers).
_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
# Historical user IDs (which application services may still create): printable ASCII.
_HISTORICAL_LOCALPART = re.compile(r"[!-9;-~]+")
MAX_USER_ID_BYTES = 255

# Registration tokens (as Synapse's admin API): 1 to 64 of these characters.
TOKEN_ALPHABET = string.ascii_letters + string.digits + "._~-"
MAX_TOKEN_LENGTH = 64
DEFAULT_TOKEN_LENGTH = 16

# Called (outside any transaction) after an account was deactivated, e.g. to leave rooms.
DeactivationHook = Callable[[str], Awaitable[None]]


class InvalidUsername(MatrixError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "M_INVALID_USERNAME", message)


class UserInUse(MatrixError):
    def __init__(self) -> None:
        super().__init__(400, "M_USER_IN_USE", "User ID already taken.")


class NotGuest(Forbidden):
    def __init__(self) -> None:
        super().__init__(
            "Cannot register taken user ID without valid guest credentials for that user."
        )


@dataclass(frozen=True)
class LoginLimits:
    address: RateLimit
    account: RateLimit
    failed_attempts: RateLimit


class AccountService:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        sessions: SessionService,
        hasher: PasswordHasher,
        limiter: RateLimiter,
        login_limits: LoginLimits,
        clock: Clock,
        appservices: AppServices | None = None,
    ) -> None:
        self.server_name = server_name
        self._appservices = appservices
        self._stores = stores
        self._sessions = sessions
        self._hasher = hasher
        self._limiter = limiter
        self._login_limits = login_limits
        self._clock = clock
        self.deactivation_hooks: list[DeactivationHook] = []

    # -- user IDs --------------------------------------------------------------

    def user_id_for(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def check_new_localpart(self, localpart: str) -> str:
        """Validate a requested localpart; return the user ID it gives."""
        if not localpart:
            raise InvalidUsername("User ID cannot be empty")
        if not _LOCALPART.fullmatch(localpart):
            raise InvalidUsername("User ID can only contain characters a-z, 0-9, or '=_-./+'")
        user_id = self.user_id_for(localpart)
        if len(user_id.encode("utf-8")) > MAX_USER_ID_BYTES:
            raise InvalidUsername(f"User ID may not be longer than {MAX_USER_ID_BYTES} bytes")
        return user_id

    def check_not_reserved(
        self, user_id: str, app_service: ApplicationService | None = None
    ) -> None:
        """400 M_EXCLUSIVE when ``user_id`` is in the exclusive namespace of an
        application service other than ``app_service``."""
        if self._appservices:
            self._appservices.check_user_allowed(user_id, app_service)

    def check_appservice_localpart(self, localpart: str) -> str:
        """An application service's localpart: any printable ASCII but ``:`` (the
        historical user ID grammar); return the user ID it gives."""
        if not localpart:
            raise InvalidUsername("User ID cannot be empty")
        if not _HISTORICAL_LOCALPART.fullmatch(localpart):
            raise InvalidUsername("User ID can only contain printable ASCII characters but ':'")
        user_id = self.user_id_for(localpart)
        if len(user_id.encode("utf-8")) > MAX_USER_ID_BYTES:
            raise InvalidUsername(f"User ID may not be longer than {MAX_USER_ID_BYTES} bytes")
        return user_id

    async def is_available(self, localpart: str) -> bool:
        """Whether a user may register ``localpart`` (M_INVALID_USERNAME for a bad
        one, M_EXCLUSIVE for one an application service reserves)."""
        user_id = self.check_new_localpart(localpart)
        self.check_not_reserved(user_id)
        return not await self._stores.accounts.get_user_case_insensitive(user_id)

    async def generate_localpart(self) -> str:
        while True:
            candidate = str(secrets.randbelow(10**9))
            user_id = self.user_id_for(candidate)
            if self._appservices and self._appservices.exclusive_owner_of_user(user_id):
                continue
            if not await self._stores.accounts.get_user(user_id):
                return candidate

    @staticmethod
    def check_password_shape(password: Any) -> str:
        if not isinstance(password, str):
            raise BadJson("'password' must be a string")
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            raise MatrixError(
                400, "M_WEAK_PASSWORD", f"Password longer than {MAX_PASSWORD_BYTES} bytes"
            )
        if not password:
            raise MatrixError(400, "M_WEAK_PASSWORD", "Password is empty")
        return password

    # -- registration ------------------------------------------------------------

    async def register(
        self,
        localpart: str,
        password: str | None,
        *,
        admin: bool = False,
        guest: bool = False,
        displayname: str | None = None,
        login: bool = True,
        device_id: str | None = None,
        device_display_name: str | None = None,
        refreshable: bool = False,
        registration_token: str | None = None,
        app_service: ApplicationService | None = None,
    ) -> tuple[str, Session | None]:
        """Create an account (and, unless told not to, a first session) atomically.

        M_EXCLUSIVE for a user ID in an application service's exclusive namespace,
        unless ``app_service`` (registering a user of its own) is that service; its
        localparts need only be valid (bridges use historical characters) and are
        taken only by the same user ID, as in Synapse."""
        if app_service is None:
            user_id = self.check_new_localpart(localpart)
            self.check_not_reserved(user_id)
            if await self._stores.accounts.get_user_case_insensitive(user_id):
                raise UserInUse()
        else:
            user_id = self.check_appservice_localpart(localpart)
            self.check_not_reserved(user_id, app_service)
            if await self._stores.accounts.get_user(user_id):
                raise UserInUse()
        password_hash = await self._hasher.hash(password) if password is not None else None
        now = self._clock.time_ms()

        async def txn_func(txn: Transaction) -> Session | None:
            if (
                registration_token is not None
                and not await self._stores.registration_tokens.consume_txn(
                    txn, registration_token, now
                )
            ):
                raise Forbidden("Registration token is no longer valid", errcode="M_UNAUTHORIZED")
            await self._stores.accounts.create_user_txn(
                txn,
                user_id,
                password_hash,
                created_ts=now,
                is_admin=admin,
                is_guest=guest,
                displayname=displayname if displayname is not None else localpart,
            )
            if not login:
                return None
            return await self._sessions.create_session_txn(
                txn, user_id, device_id, device_display_name, refreshable=refreshable
            )

        try:
            session = await self._stores.db.run_transaction("register_user", txn_func)
        except IntegrityError as exc:
            raise UserInUse() from exc
        return user_id, session

    async def upgrade_guest(
        self,
        user_id: str,
        password: str | None,
        *,
        login: bool = True,
        device_id: str | None = None,
        device_display_name: str | None = None,
        refreshable: bool = False,
        registration_token: str | None = None,
    ) -> tuple[str, Session | None]:
        """Make a guest account a full one, keeping its user ID and profile (client-server
        API, Guest access: "upgrade their account"): it gets its password and, unless
        told not to, a new session; the guest's access tokens stop working (a guest
        token never authenticates a full user). 403 unless ``user_id`` is a guest.
        """
        password_hash = await self._hasher.hash(password) if password is not None else None
        now = self._clock.time_ms()

        async def txn_func(txn: Transaction) -> tuple[Session | None, list[str]]:
            if (
                registration_token is not None
                and not await self._stores.registration_tokens.consume_txn(
                    txn, registration_token, now
                )
            ):
                raise Forbidden("Registration token is no longer valid", errcode="M_UNAUTHORIZED")
            if not await self._stores.accounts.upgrade_guest_txn(txn, user_id, password_hash):
                raise NotGuest()
            revoked = await self._stores.tokens.delete_user_tokens_txn(txn, user_id)
            if not login:
                return None, revoked
            session = await self._sessions.create_session_txn(
                txn, user_id, device_id, device_display_name, refreshable=refreshable
            )
            return session, revoked

        session, revoked = await self._stores.db.run_transaction("upgrade_guest", txn_func)
        self._sessions.forget_tokens(revoked)
        return user_id, session

    # -- registration tokens (the admin API and the registration-token command) -----

    async def create_registration_token(
        self,
        token: str | None,
        *,
        length: int = DEFAULT_TOKEN_LENGTH,
        uses_allowed: int | None = None,
        expiry_time: int | None = None,
    ) -> RegistrationToken:
        """Create ``token`` (a random one of ``length`` characters if None).

        M_INVALID_PARAM for a token outside the alphabet or longer than 64 characters,
        a negative ``uses_allowed``, an ``expiry_time`` in the past, or a token that
        already exists.
        """
        if token is None:
            if not 0 < length <= MAX_TOKEN_LENGTH:
                raise InvalidParam(f"length must be between 1 and {MAX_TOKEN_LENGTH}")
            token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(length))
        elif (
            not token
            or len(token) > MAX_TOKEN_LENGTH
            or any(c not in TOKEN_ALPHABET for c in token)
        ):
            raise InvalidParam(
                f"token must be 1-{MAX_TOKEN_LENGTH} characters from [A-Za-z0-9._~-]"
            )
        self._check_token_limits(uses_allowed, expiry_time)
        if expiry_time is not None and expiry_time < self._clock.time_ms():
            raise InvalidParam("expiry_time must not be in the past")
        store = self._stores.registration_tokens
        if not await store.create(token, uses_allowed, expiry_time):
            raise InvalidParam(f"Token already exists: {token}")
        created = await store.get(token)
        assert created is not None
        return created

    async def update_registration_token(
        self, token: str, uses_allowed: int | None, expiry_time: int | None
    ) -> RegistrationToken:
        """Change a token's limits; M_NOT_FOUND if there is no such token."""
        self._check_token_limits(uses_allowed, expiry_time)
        store = self._stores.registration_tokens
        if not await store.update(token, uses_allowed, expiry_time):
            raise NotFound("No such registration token")
        updated = await store.get(token)
        assert updated is not None
        return updated

    async def registration_tokens(self, *, valid: bool | None = None) -> list[RegistrationToken]:
        """Every registration token, or only the valid (or invalid) ones."""
        tokens = await self._stores.registration_tokens.list_all()
        if valid is None:
            return tokens
        now = self._clock.time_ms()
        return [t for t in tokens if t.is_valid(now) == valid]

    async def registration_token(self, token: str) -> RegistrationToken:
        """One token; M_NOT_FOUND if there is no such token."""
        found = await self._stores.registration_tokens.get(token)
        if found is None:
            raise NotFound("No such registration token")
        return found

    async def registration_token_valid(self, token: str) -> bool:
        """Whether ``token`` exists and may still be used to register now."""
        found = await self._stores.registration_tokens.get(token)
        return found is not None and found.is_valid(self._clock.time_ms())

    async def delete_registration_token(self, token: str) -> None:
        """Delete a token; M_NOT_FOUND if there is no such token."""
        if not await self._stores.registration_tokens.delete(token):
            raise NotFound("No such registration token")

    async def is_admin(self, user_id: str) -> bool:
        """Whether ``user_id`` is a server admin (a deactivated account is not)."""
        record = await self._stores.accounts.get_user(user_id)
        return record is not None and record.is_admin and not record.deactivated

    @staticmethod
    def _check_token_limits(uses_allowed: int | None, expiry_time: int | None) -> None:
        if uses_allowed is not None and uses_allowed < 0:
            raise InvalidParam("uses_allowed must be a non-negative integer or null")
        if expiry_time is not None and expiry_time < 0:
            raise InvalidParam("expiry_time must be a non-negative integer or null")

    # -- login -----------------------------------------------------------------

    async def resolve_login_user(self, identifier: str) -> str | None:
        """A login name (localpart or full user ID) to an existing user ID."""
        user_id = self._qualified(identifier)
        record = await self._stores.accounts.get_user(user_id)
        if record is not None:
            return user_id
        matches = await self._stores.accounts.get_user_case_insensitive(user_id)
        return matches[0] if len(matches) == 1 else None

    async def check_password(self, identifier: str, password: str) -> str:
        """The user ID if the password is right; M_FORBIDDEN otherwise.

        Failed attempts are limited per user (rc_login.failed_attempts): once the
        bucket is empty every attempt, right or wrong, gets 429 until it refills.
        """
        key = self._qualified(identifier).lower()
        return await self._verify_password(identifier, password, "login_failed", key)

    async def login_with_password(self, identifier: str, password: str) -> str:
        """POST /login: check the password, then spend one of the account's logins
        (rc_login.account; as Synapse, only successful logins count)."""
        user_id = await self.check_password(identifier, password)
        self._limiter.check("login_account", user_id, self._login_limits.account)
        return user_id

    async def reauthenticate(self, user_id: str, identifier: str, password: str) -> None:
        """UIA's m.login.password: the logged-in ``user_id`` proves its password again.

        As Synapse's validate_user_via_ui_auth, only failed attempts are limited (per
        user, with rc_login.failed_attempts): asking for the password before a password
        change or a device deletion spends none of the account's logins.
        """
        authenticated = await self._verify_password(identifier, password, "uia_failed", user_id)
        if authenticated != user_id:
            # the password of another account: 403, not a stage to retry
            self._limiter.check("uia_failed", user_id, self._login_limits.failed_attempts)
            raise UiaRefused("The authenticated user is not the user of the access token")

    def _qualified(self, identifier: str) -> str:
        return identifier if identifier.startswith("@") else self.user_id_for(identifier)

    async def _verify_password(
        self, identifier: str, password: str, action: str, failures_key: str
    ) -> str:
        limit = self._login_limits.failed_attempts
        if not self._limiter.would_allow(action, failures_key, limit):
            self._limiter.check(action, failures_key, limit)  # raises M_LIMIT_EXCEEDED
        user_id = await self.resolve_login_user(identifier)
        record = await self._stores.accounts.get_user(user_id) if user_id else None
        ok = record is not None and await self._hasher.verify(password, record.password_hash)
        if record is None or not ok:
            self._limiter.check(action, failures_key, limit)
            raise Forbidden("Invalid username or password")
        if record.deactivated:
            raise Forbidden("This account has been deactivated", errcode="M_USER_DEACTIVATED")
        return record.user_id

    async def login(
        self,
        user_id: str,
        *,
        device_id: str | None,
        device_display_name: str | None,
        refreshable: bool,
    ) -> Session:
        async def txn_func(txn: Transaction) -> tuple[Session, list[str]]:
            revoked: list[str] = []
            if device_id is not None:
                # Logging in with an existing device ID replaces that device's old tokens.
                revoked = await self._stores.tokens.delete_tokens_for_devices_txn(
                    txn, user_id, [device_id]
                )
            session = await self._sessions.create_session_txn(
                txn, user_id, device_id, device_display_name, refreshable=refreshable
            )
            return session, revoked

        session, revoked = await self._stores.db.run_transaction("login", txn_func)
        self._sessions.forget_tokens(revoked)
        return session

    # -- password and deactivation ------------------------------------------------

    async def change_password(
        self, user_id: str, new_password: str, *, keep_device: str | None, logout_devices: bool
    ) -> None:
        new_hash = await self._hasher.hash(new_password)

        async def txn_func(txn: Transaction) -> list[str]:
            await self._stores.accounts.set_password_hash_txn(txn, user_id, new_hash)
            if logout_devices:
                return await self._sessions.delete_other_devices_txn(txn, user_id, keep_device)
            return []

        revoked = await self._stores.db.run_transaction("change_password", txn_func)
        self._sessions.forget_tokens(revoked)

    async def deactivate(self, user_id: str, *, erase: bool = False) -> None:
        """Deactivate the account as Synapse does: every device and token, third-party
        ID, account data, push rule, pusher, end-to-end key and the user directory row
        go (the hooks then leave the rooms). ``erase``: also mark the user erased, so
        their events are served pruned to users who were not in the room to see them,
        and remove the rest of the rows that only serve them (receipts, key backup,
        to-device messages, filters, push counts, profile)."""

        async def txn_func(txn: Transaction) -> list[str]:
            await self._stores.accounts.set_deactivated_txn(txn, user_id)
            revoked = await self._sessions.delete_other_devices_txn(txn, user_id, None)
            # tokens of no device (an admin's login as the user) go too
            revoked += await self._stores.tokens.delete_user_tokens_txn(txn, user_id)
            await self._stores.user_admin.delete_deactivated_data_txn(txn, user_id)
            if erase:
                await self._stores.accounts.mark_erased_txn(txn, user_id)
                await self._stores.user_admin.erase_user_data_txn(txn, user_id)
            return revoked

        revoked = await self._stores.db.run_transaction("deactivate_account", txn_func)
        self._sessions.forget_tokens(revoked)
        self._sessions.forget_user(user_id)
        for hook in self.deactivation_hooks:
            await hook(user_id)
