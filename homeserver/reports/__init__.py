"""Reporting content (client-server API "Reporting content"): users report events,
rooms and users to this server's admins, who read and close the event and user
reports through Synapse's admin API (``storage/reports.py`` keeps them;
``client_api/reports.py`` and ``client_api/admin/reports.py`` serve them).

- An event is reported only by a user who may see it (history visibility) and while
  it is not redacted; otherwise M_NOT_FOUND, as the spec asks.
- A room is reported only if this server knows it (M_NOT_FOUND otherwise).
- A report against a user who is not a local user of this server is accepted and
  dropped, as Synapse does, so the answer does not tell whether an account exists.
"""

from __future__ import annotations

from typing import Any

from homeserver.clock import Clock
from homeserver.errors import BadJson, InvalidParam, NotFound
from homeserver.events import is_valid_user_id, server_name_of
from homeserver.rooms.history import RoomHistory
from storage.accounts import AccountStore
from storage.reports import EventReport, ReportStore, UserReport
from storage.rooms import RoomStore

MAX_REASON_LENGTH = 1000


class ReportService:
    def __init__(
        self,
        server_name: str,
        reports: ReportStore,
        rooms: RoomStore,
        accounts: AccountStore,
        history: RoomHistory,
        clock: Clock,
    ) -> None:
        self._server_name = server_name
        self._reports = reports
        self._rooms = rooms
        self._accounts = accounts
        self._history = history
        self._clock = clock

    # -- filing (client-server API) -----------------------------------------------------

    async def report_event(
        self, user_id: str, room_id: str, event_id: str, body: dict[str, Any]
    ) -> int:
        """POST /rooms/{roomId}/report/{eventId}: ``reason`` (string) and the optional
        ``score`` (integer, dropped from spec v1.18 but still sent) are kept with the
        whole body."""
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise BadJson("Param 'reason' must be a string")
        if "score" in body and type(body["score"]) is not int:
            raise BadJson("Param 'score' must be an integer")
        try:
            stored = await self._history.visible_event(user_id, room_id, event_id)
        except NotFound:
            stored = None
        if stored is None or stored.redacted_by is not None:
            raise NotFound(
                "Unable to report event: it does not exist or you aren't able to see it."
            )
        return await self._reports.add_event_report(
            room_id, event_id, user_id, reason, body, self._clock.time_ms()
        )

    async def report_room(self, user_id: str, room_id: str, reason: str) -> int:
        """POST /rooms/{roomId}/report."""
        if not await self._rooms.room_exists(room_id):
            raise NotFound("Room does not exist")
        return await self._reports.add_room_report(room_id, user_id, reason, self._clock.time_ms())

    async def report_user(self, user_id: str, target_user_id: str, reason: str) -> None:
        """POST /users/{userId}/report: stored for local users that exist only."""
        if not is_valid_user_id(target_user_id):
            raise InvalidParam(f"Invalid user ID: {target_user_id}")
        if len(reason) > MAX_REASON_LENGTH:
            raise BadJson(f"Reason must be less than {MAX_REASON_LENGTH} characters")
        if server_name_of(target_user_id) != self._server_name:
            return
        if await self._accounts.get_user(target_user_id) is None:
            return
        await self._reports.add_user_report(target_user_id, user_id, reason, self._clock.time_ms())

    # -- admin --------------------------------------------------------------------------

    async def event_reports(
        self,
        start: int,
        limit: int,
        *,
        newest_first: bool,
        user_id: str | None,
        room_id: str | None,
        event_sender: str | None,
    ) -> tuple[list[EventReport], int]:
        return await self._reports.event_reports(
            start,
            limit,
            newest_first=newest_first,
            user_id=user_id,
            room_id=room_id,
            event_sender=event_sender,
        )

    async def event_report(self, report_id: int) -> EventReport:
        report = await self._reports.event_report(report_id)
        if report is None:
            raise NotFound("Event report not found")
        return report

    async def delete_event_report(self, report_id: int) -> None:
        if not await self._reports.delete_event_report(report_id):
            raise NotFound("Event report not found")

    async def user_reports(
        self,
        start: int,
        limit: int,
        *,
        newest_first: bool,
        user_id: str | None,
        target_user_id: str | None,
    ) -> tuple[list[UserReport], int]:
        return await self._reports.user_reports(
            start, limit, newest_first=newest_first, user_id=user_id, target_user_id=target_user_id
        )

    async def user_report(self, report_id: int) -> UserReport:
        report = await self._reports.user_report(report_id)
        if report is None:
            raise NotFound("User report not found")
        return report

    async def delete_user_report(self, report_id: int) -> None:
        if not await self._reports.delete_user_report(report_id):
            raise NotFound("User report not found")
