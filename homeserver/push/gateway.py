"""Talking to push gateways (Push Gateway API: POST /_matrix/push/v1/notify).

``NotificationBuilder`` shapes the ``notification`` object of one event for one
pusher; ``PushGatewayClient`` POSTs it through a session that only reaches allowed
addresses (``ip_range_blacklist`` / ``ip_range_whitelist``), with the same address
filter and resolver as URL previews and federation (homeserver/media/preview.py).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from homeserver.media.preview import AddressFilter, BlockedAddress, FilteringResolver
from homeserver.push.rules import tweaks_of
from storage.push_actions import PushAction
from storage.pushers import PusherRecord
from storage.stores import Stores

logger = logging.getLogger(__name__)

GATEWAY_TIMEOUT_S = 15.0
NOTIFY_PATH = "/_matrix/push/v1/notify"


class GatewayError(Exception):
    """The gateway could not be reached or answered with an error: retry later.
    ``blocked``: its address is one ``ip_range_blacklist`` refuses (a configuration
    matter, not an outage)."""

    def __init__(self, message: str, *, blocked: bool = False) -> None:
        super().__init__(message)
        self.blocked = blocked


class PushGatewayClient:
    def __init__(
        self,
        addresses: AddressFilter,
        timeout_s: float = GATEWAY_TIMEOUT_S,
        *,
        tls: ssl.SSLContext | bool = True,
    ) -> None:
        self._addresses = addresses
        self._tls = tls
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def notify(self, url: str, body: Mapping[str, Any]) -> list[str]:
        """POST ``body``; return the pushkeys the gateway rejected."""
        try:
            self._check_literal_host(url)
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        resolver=FilteringResolver(self._addresses), ssl=self._tls
                    ),
                    timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                )
            # A redirect is a failed delivery: following it would reach an address the
            # blacklist was never asked about (an IP literal skips the resolver).
            async with self._session.post(url, json=body, allow_redirects=False) as resp:
                if resp.status // 100 != 2:
                    raise GatewayError(f"{url} answered {resp.status}")
                answer = await resp.json(content_type=None)
        except GatewayError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise GatewayError(f"{url}: {exc!r}", blocked=_is_blocked(exc)) from exc
        rejected = answer.get("rejected") if isinstance(answer, dict) else None
        if not isinstance(rejected, list):
            return []
        return [key for key in rejected if isinstance(key, str)]

    def blocked_literal(self, url: str) -> bool:
        """Whether ``url``'s host is an IP address the filter refuses (a name is only
        known when it is resolved, at each delivery)."""
        host = (URL(url).host or "").strip("[]")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False  # a name: the filtering resolver checks every address
        return not self._addresses.allows(host)

    def _check_literal_host(self, url: str) -> None:
        """aiohttp skips the resolver for IP literals: check those here."""
        if self.blocked_literal(url):
            raise BlockedAddress(f"{URL(url).host} is a blocked address")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _is_blocked(exc: BaseException) -> bool:
    """Whether the filter refused the address (aiohttp wraps the resolver's error)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, BlockedAddress):
            return True
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return False


class NotificationBuilder:
    """The ``notification`` of a push for one event (Push Gateway API: notify).

    Besides the spec's fields it carries ``id`` (the event ID again, which older
    gateways read, as Synapse sends it) and, for a membership event, ``membership``.
    ``room_name`` is the room's name, else its canonical alias (as Synapse names
    rooms in pushes); ``room_alias`` is the canonical alias. An invite received over
    federation has no room state here: its names come from the invite's stripped
    state.
    """

    def __init__(self, stores: Stores, include_content: bool) -> None:
        self._stores = stores
        self._include_content = include_content

    async def build(
        self, pusher: PusherRecord, action: PushAction, unread: int
    ) -> dict[str, Any] | None:
        stored = await self._stores.events.get_event(action.event_id)
        if stored is None:
            return None
        event = stored.event
        tweaks = tweaks_of(action.actions)
        device = device_of(pusher)
        device["tweaks"] = tweaks
        high = (
            event.type == "m.room.encrypted"
            or bool(tweaks.get("highlight"))
            or bool(tweaks.get("sound"))
        )
        notification: dict[str, Any] = {
            "event_id": event.event_id,
            "room_id": event.room_id,
            "prio": "high" if high else "low",
            "counts": {"unread": unread} if unread else {},
            "devices": [device],
        }
        if pusher.data.get("format") == "event_id_only":
            return notification
        notification["id"] = event.event_id
        notification["type"] = event.type
        notification["sender"] = event.sender
        if event.type == "m.room.member" and event.state_key is not None:
            if isinstance(event.content.get("membership"), str):
                notification["membership"] = event.content["membership"]
            notification["user_is_target"] = event.state_key == pusher.user_id
        if self._include_content and event.content:
            notification["content"] = dict(event.content)
        if stored.state_group is not None:
            state = await self._room_state(stored.state_group, event.sender)
        else:
            state = await self._stripped_state(event.event_id, event.sender)
        notification.update(room_details(state, event.sender))
        return notification

    async def _room_state(
        self, state_group: int, sender: str
    ) -> dict[tuple[str, str], Mapping[str, Any]]:
        """The contents of the state events that name the room and the sender."""
        state = await self._stores.state.get_state(state_group)
        ids = {key: state[key] for key in _naming_keys(sender) if key in state}
        events = await self._stores.events.get_events(list(ids.values()))
        return {
            key: events[event_id].event.content
            for key, event_id in ids.items()
            if event_id in events
        }

    async def _stripped_state(
        self, event_id: str, sender: str
    ) -> dict[tuple[str, str], Mapping[str, Any]]:
        wanted = set(_naming_keys(sender))
        found: dict[tuple[str, str], Mapping[str, Any]] = {}
        for entry in await self._stores.rooms.get_stripped_state(event_id):
            key = (entry.get("type"), entry.get("state_key"))
            content = entry.get("content")
            if key in wanted and isinstance(content, Mapping):
                found[key] = content
        return found


def device_of(pusher: PusherRecord) -> dict[str, Any]:
    """The ``devices`` entry of a push to ``pusher`` (its data without the URL)."""
    return {
        "app_id": pusher.app_id,
        "pushkey": pusher.pushkey,
        "pushkey_ts": pusher.pushkey_ts,
        "data": {k: v for k, v in pusher.data.items() if k != "url"},
    }


def badge_notification(pusher: PusherRecord, unread: int) -> dict[str, Any]:
    """A push that only updates the badge (the user read something): no event, the
    unread count (zero included: that is the news) and the device."""
    return {"counts": {"unread": unread}, "devices": [device_of(pusher)]}


def _naming_keys(sender: str) -> tuple[tuple[str, str], ...]:
    return (
        ("m.room.member", sender),
        ("m.room.name", ""),
        ("m.room.canonical_alias", ""),
    )


def room_details(state: Mapping[tuple[str, str], Mapping[str, Any]], sender: str) -> dict[str, str]:
    """``sender_display_name``, ``room_name`` and ``room_alias`` from the contents of
    the room's naming state events (absent when empty or not strings)."""

    def text(key: tuple[str, str], field: str) -> str | None:
        value = state.get(key, {}).get(field)
        return value if isinstance(value, str) and value else None

    details: dict[str, str] = {}
    display_name = text(("m.room.member", sender), "displayname")
    if display_name is not None:
        details["sender_display_name"] = display_name
    alias = text(("m.room.canonical_alias", ""), "alias")
    name = text(("m.room.name", ""), "name") or alias
    if name is not None:
        details["room_name"] = name
    if alias is not None:
        details["room_alias"] = alias
    return details
