"""User-interactive authentication (the spec's UIA session/flows/completed protocol).

An endpoint protected by UIA calls ``UserInteractiveAuth.authenticate`` with the
flows it accepts. The first request (without ``auth``) gets 401 with a new
session; each later request completes one stage; once every stage of one flow is
done the caller gets the stored request parameters and goes ahead, then deletes the
session. Sessions are bound to the request (method and path) that started them.

Endpoints that re-authenticate a logged-in user call ``authenticate_user``: its flows
are the user's ways of proving who they are (``user_flows``): their password, and
each *out-of-band* stage (``m.login.sso``) the user can do. Such a stage is not
submitted in ``auth``: the fallback page runs it in a browser and records, with
``complete_out_of_band``, the user it proved; a session where it proved anyone else
than the session's user is refused (403).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from homeserver.clock import Clock
from homeserver.errors import MatrixError
from storage.database import Transaction
from storage.stores import Stores
from storage.uia import UiaSession

SESSION_LIFETIME_MS = 30 * 60 * 1000
SECRET_KEYS = frozenset({"password", "new_password", "guest_access_token"})

# A stage checker gets the ``auth`` dict and the session's user (if any); it returns
# a JSON-able result to record, or raises MatrixError to refuse the stage.
StageChecker = Callable[[dict[str, Any], str | None], Awaitable[Any]]
# A checker that also needs the client's IP address (the captcha's ``remoteip``).
IpStageChecker = Callable[[dict[str, Any], str | None, str], Awaitable[Any]]
# Whether a user can do an out-of-band stage (e.g. has a single sign-on identity).
StageOffer = Callable[[str], Awaitable[bool]]
PASSWORD_STAGE = "m.login.password"


class UiaRefused(MatrixError):
    """A stage that proved someone else than the session's user (a stolen access
    token with the thief's own password): the request is refused outright, 403, not
    answered with another 401 to try again (as Synapse)."""

    def __init__(self, message: str = "Invalid auth") -> None:
        super().__init__(403, "M_FORBIDDEN", message)


class UiaRequired(MatrixError):
    """401 carrying the UIA state: flows, params, session, completed (and an error)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(401, body.get("errcode", ""), body.get("error", ""), extra=body)
        self.body = body

    def to_json(self) -> dict[str, Any]:
        return self.body


@dataclass
class UiaResult:
    session_id: str
    clientdict: dict[str, Any]
    completed: dict[str, Any] = field(default_factory=dict)
    # the account an earlier request of this (registration) session created
    registered_user_id: str | None = None


class UserInteractiveAuth:
    def __init__(self, stores: Stores, clock: Clock) -> None:
        self._stores = stores
        self._clock = clock
        self._checkers: dict[str, StageChecker] = {}
        self._out_of_band: dict[str, StageOffer] = {}
        self._ip_checkers: dict[str, IpStageChecker] = {}
        self._outside_flows: set[str] = set()

    def register_stage(self, stage: str, checker: StageChecker) -> None:
        self._checkers[stage] = checker

    def register_ip_stage(
        self, stage: str, checker: IpStageChecker, *, outside_flows: bool = False
    ) -> None:
        """A stage whose checker is also given the client's IP address. With
        ``outside_flows`` the stage is checked and recorded even on a request whose
        flows do not list it (as Synapse does with every enabled stage; it counts
        only towards flows that list it)."""
        self._ip_checkers[stage] = checker
        if outside_flows:
            self._outside_flows.add(stage)

    def register_out_of_band_stage(self, stage: str, offered_to: StageOffer) -> None:
        """A stage done outside the API (on its fallback page), whose result is the
        user it proved; offered to the users ``offered_to`` accepts."""
        self._out_of_band[stage] = offered_to

    async def user_flows(self, user_id: str) -> list[list[str]]:
        """How ``user_id`` can prove who they are: their password (unless the account
        has none, as an account made by single sign-on), then each out-of-band stage
        offered to them; the password when nothing else is."""
        flows: list[list[str]] = []
        account = await self._stores.accounts.get_user(user_id)
        if account is None or account.password_hash is not None:
            flows.append([PASSWORD_STAGE])
        for stage, offered_to in self._out_of_band.items():
            if await offered_to(user_id):
                flows.append([stage])
        return flows or [[PASSWORD_STAGE]]

    async def authenticate_user(
        self, request_key: str, body: dict[str, Any], user_id: str
    ) -> UiaResult:
        """``authenticate`` a logged-in user by the flows ``user_flows`` offers them."""
        flows = await self.user_flows(user_id)
        return await self.authenticate(request_key, body, flows, user_id=user_id)

    async def live_session(self, session_id: str) -> UiaSession:
        """The session ``session_id``; 400 M_UNKNOWN if it is unknown or expired."""
        session = await self._stores.uia.get_session(session_id)
        if session is None or self._clock.time_ms() - session.created_ts > SESSION_LIFETIME_MS:
            raise MatrixError(400, "M_UNKNOWN", "Unknown or expired session ID")
        return session

    async def complete_out_of_band(self, session_id: str, stage: str, proved_user: str) -> None:
        """Record that the out-of-band ``stage`` of ``session_id`` proved
        ``proved_user`` ("" for nobody: the session then fails with 403)."""
        await self.live_session(session_id)

        async def complete_stage(txn: Transaction) -> None:
            await self._stores.uia.mark_stage_complete_txn(txn, session_id, stage, proved_user)

        await self._stores.db.run_transaction("uia_complete_out_of_band", complete_stage)

    async def authenticate(
        self,
        request_key: str,
        body: dict[str, Any],
        flows: list[list[str]],
        *,
        user_id: str | None = None,
        params: dict[str, Any] | None = None,
        client_ip: str = "",
    ) -> UiaResult:
        """Return once a flow is complete; otherwise raise UiaRequired (401)."""
        params = params or {}
        auth = body.get("auth")
        # Secrets are never stored with the session: the client sends them again.
        clientdict = {k: v for k, v in body.items() if k != "auth"}
        stored = {k: v for k, v in clientdict.items() if k not in SECRET_KEYS}
        if auth is None:
            new_id = await self._new_session(request_key, stored, user_id)
            raise UiaRequired(self._state(new_id, flows, params, {}))
        if not isinstance(auth, dict):
            raise MatrixError(400, "M_BAD_JSON", "'auth' must be an object")
        stage = auth.get("type")
        if stage is not None and not isinstance(stage, str):
            raise MatrixError(400, "M_BAD_JSON", "'auth.type' must be a string")
        session_id = auth.get("session")
        if session_id is not None and not isinstance(session_id, str):
            raise MatrixError(400, "M_BAD_JSON", "'auth.session' must be a string")
        if session_id is None:
            # Some clients send a stage straight away; start a session for it.
            session_id = await self._new_session(request_key, stored, user_id)
        session = await self._stores.uia.get_session(session_id)
        now = self._clock.time_ms()
        if session is None or now - session.created_ts > SESSION_LIFETIME_MS:
            raise MatrixError(400, "M_UNKNOWN", "Unknown or expired session ID")
        if session.request != request_key or session.user_id != user_id:
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                "Requested operation has changed during the UI authentication session.",
            )
        completed = dict(session.completed)
        if stage in self._out_of_band:
            stage = None  # done on the fallback page: only its recorded result counts
        if stage is not None:
            allowed = {s for flow in flows for s in flow} | self._outside_flows
            checker = self._stage_checker(stage, client_ip)
            if stage not in allowed or checker is None:
                state = self._state(session_id, flows, params, completed)
                state.update(errcode="M_UNRECOGNIZED", error=f"Unrecognised login type {stage}")
                raise UiaRequired(state)
            try:
                result = await checker(auth, user_id)
            except UiaRefused:
                raise
            except MatrixError as exc:
                if exc.status == 429 or exc.errcode == "M_BAD_JSON":
                    raise  # rate limited, or a malformed ``auth``: not a failed stage
                state = self._state(session_id, flows, params, completed)
                state.update(errcode=exc.errcode, error=exc.message)
                raise UiaRequired(state) from exc

            async def complete_stage(txn: Transaction) -> None:
                await self._stores.uia.mark_stage_complete_txn(txn, session_id, stage, result)

            await self._stores.db.run_transaction("uia_complete_stage", complete_stage)
            completed[stage] = result
        for flow in flows:
            if all(s in completed for s in flow):
                self._check_proved_user(completed, user_id)
                merged = {**session.clientdict, **clientdict}
                return UiaResult(session_id, merged, completed, session.registered_user_id)
        raise UiaRequired(self._state(session_id, flows, params, completed))

    def _stage_checker(self, stage: str, client_ip: str) -> StageChecker | None:
        ip_checker = self._ip_checkers.get(stage)
        if ip_checker is None:
            return self._checkers.get(stage)

        async def check(auth: dict[str, Any], user_id: str | None) -> Any:
            return await ip_checker(auth, user_id, client_ip)

        return check

    async def complete_stage(self, session_id: str, stage: str, result: Any) -> None:
        """Record ``stage`` as done for ``session_id`` (by its fallback page); 400
        M_UNKNOWN if the session is unknown or expired."""
        await self.live_session(session_id)

        async def complete(txn: Transaction) -> None:
            await self._stores.uia.mark_stage_complete_txn(txn, session_id, stage, result)

        await self._stores.db.run_transaction("uia_complete_fallback_stage", complete)

    async def registered_user(self, session_id: str) -> str | None:
        """The account an earlier request of a live session created, if any."""
        session = await self._stores.uia.get_session(session_id)
        if session is None or self._clock.time_ms() - session.created_ts > SESSION_LIFETIME_MS:
            return None
        return session.registered_user_id

    async def remember_registered_user(self, session_id: str, user_id: str) -> None:
        """Keep the session (until it expires) with the account it created, so a
        repeated request returns that account (registration is idempotent)."""
        await self._stores.uia.set_registered_user(session_id, user_id)

    def _check_proved_user(self, completed: dict[str, Any], user_id: str | None) -> None:
        """403 if an out-of-band stage of the session proved someone else than its
        user (or nobody): the SSO account is not the account being acted on."""
        for stage in self._out_of_band:
            if stage in completed and (user_id is None or completed[stage] != user_id):
                raise UiaRefused("Invalid auth")

    async def finish(self, session_id: str) -> None:
        async def delete_session(txn: Transaction) -> None:
            await self._stores.uia.delete_session_txn(txn, session_id)

        await self._stores.db.run_transaction("uia_finish", delete_session)

    async def _new_session(
        self, request_key: str, clientdict: dict[str, Any], user_id: str | None
    ) -> str:
        session_id = secrets.token_urlsafe(24)
        now = self._clock.time_ms()
        await self._stores.uia.delete_older_than(now - SESSION_LIFETIME_MS)
        await self._stores.uia.create_session(session_id, now, request_key, clientdict, user_id)
        return session_id

    @staticmethod
    def _state(
        session_id: str, flows: list[list[str]], params: dict[str, Any], completed: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "flows": [{"stages": flow} for flow in flows],
            "params": params,
            "session": session_id,
            "completed": sorted(completed),
        }
