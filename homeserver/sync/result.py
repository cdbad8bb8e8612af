"""The /sync response being built (client-server API: GET /sync response body).

Room sections are filled by the room computation, then every ``SyncExtension``
(receipts, typing, account data, presence, to-device ...) adds its part through the
same object; ``to_json`` drops joined rooms with nothing to say in an incremental sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ClientEvent = dict[str, Any]


@dataclass
class JoinedRoom:
    timeline: list[ClientEvent] = field(default_factory=list)
    limited: bool = False
    prev_batch: str | None = None
    state: list[ClientEvent] = field(default_factory=list)
    # True when ``state`` holds the state at the end of the timeline (use_state_after)
    state_is_after: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    ephemeral: list[ClientEvent] = field(default_factory=list)
    account_data: list[ClientEvent] = field(default_factory=list)
    unread_notifications: dict[str, int] = field(
        default_factory=lambda: {"highlight_count": 0, "notification_count": 0}
    )
    unread_thread_notifications: dict[str, dict[str, int]] | None = None
    # an initial, full-state or newly joined entry is always sent
    always_send: bool = False

    def has_news(self) -> bool:
        return bool(
            self.always_send or self.timeline or self.state or self.ephemeral or self.account_data
        )

    def to_json(self) -> dict[str, Any]:
        timeline: dict[str, Any] = {"events": self.timeline, "limited": self.limited}
        if self.prev_batch is not None:
            timeline["prev_batch"] = self.prev_batch
        body: dict[str, Any] = {
            "timeline": timeline,
            "state_after" if self.state_is_after else "state": {"events": self.state},
            "ephemeral": {"events": self.ephemeral},
            "account_data": {"events": self.account_data},
            "unread_notifications": self.unread_notifications,
            "summary": self.summary,
        }
        if self.unread_thread_notifications is not None:
            body["unread_thread_notifications"] = self.unread_thread_notifications
        return body


@dataclass
class LeftRoom:
    timeline: list[ClientEvent] = field(default_factory=list)
    limited: bool = False
    prev_batch: str | None = None
    state: list[ClientEvent] = field(default_factory=list)
    state_is_after: bool = False
    account_data: list[ClientEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        timeline: dict[str, Any] = {"events": self.timeline, "limited": self.limited}
        if self.prev_batch is not None:
            timeline["prev_batch"] = self.prev_batch
        return {
            "timeline": timeline,
            "state_after" if self.state_is_after else "state": {"events": self.state},
            "account_data": {"events": self.account_data},
        }


@dataclass
class SyncResult:
    next_batch: str = ""
    join: dict[str, JoinedRoom] = field(default_factory=dict)
    invite: dict[str, list[ClientEvent]] = field(default_factory=dict)
    knock: dict[str, list[ClientEvent]] = field(default_factory=dict)
    leave: dict[str, LeftRoom] = field(default_factory=dict)
    presence: list[ClientEvent] = field(default_factory=list)
    account_data: list[ClientEvent] = field(default_factory=list)
    to_device: list[ClientEvent] = field(default_factory=list)
    # other top-level fields (device_lists, device_one_time_keys_count ...)
    extra: dict[str, Any] = field(default_factory=dict)
    # set by an extension whose part is not visible in the lists above
    has_other_news: bool = False

    def joined_room(self, room_id: str) -> JoinedRoom:
        """The entry of a joined room, created (empty) if the rooms pass made none."""
        room = self.join.get(room_id)
        if room is None:
            room = self.join[room_id] = JoinedRoom()
        return room

    def is_empty(self) -> bool:
        return not (
            any(room.has_news() for room in self.join.values())
            or self.invite
            or self.knock
            or self.leave
            or self.presence
            or self.account_data
            or self.to_device
            or self.has_other_news
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "next_batch": self.next_batch,
            "rooms": {
                "join": {r: room.to_json() for r, room in self.join.items() if room.has_news()},
                "invite": {r: {"invite_state": {"events": e}} for r, e in self.invite.items()},
                "knock": {r: {"knock_state": {"events": e}} for r, e in self.knock.items()},
                "leave": {r: room.to_json() for r, room in self.leave.items()},
            },
            "presence": {"events": self.presence},
            "account_data": {"events": self.account_data},
            "to_device": {"events": self.to_device},
        }
        body.update(self.extra)
        return body
