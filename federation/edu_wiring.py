"""EDUs between the ephemeral services and federation (s2s "Typing Notifications",
"Send-to-device messaging").

* ``m.typing`` in: the user (already checked to be of the origin) must be joined to
  the room here, then the typing service records it (``TYPING_TIMEOUT_MS``);
* ``m.direct_to_device`` in: delivered to local devices by the to-device service;
  out: the to-device service's ``remote_to_device_sender`` hook queues one EDU per
  destination server.

* ``m.typing`` out, ``m.receipt`` and ``m.presence`` both ways (below).

Device lists are wired by the e2ee federation module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from federation.sender import FederationSender
from federation.transactions import TransactionHandler
from homeserver.clock import Clock
from storage.events import StoredEvent
from storage.stores import Stores

TYPING_TIMEOUT_MS = 30_000
PRESENCE_BATCH_LIMIT = 100


class TypingSink(Protocol):
    def started_typing(self, user_id: str, room_id: str, timeout_ms: int) -> None: ...

    def stopped_typing(self, user_id: str, room_id: str) -> object: ...  # result unused


class ToDeviceSink(Protocol):
    remote_to_device_sender: Any

    async def deliver_remote(
        self, sender: str, event_type: str, messages: dict[str, dict[str, Any]]
    ) -> None: ...


def wire_typing(transactions: TransactionHandler, stores: Stores, typing: TypingSink) -> None:
    async def on_typing(origin: str, content: dict[str, Any]) -> None:
        room_id, user_id = content["room_id"], content["user_id"]
        members = await stores.state.current_members(room_id)
        if members.get(user_id) != "join":
            return
        if content.get("typing") is True:
            typing.started_typing(user_id, room_id, TYPING_TIMEOUT_MS)
        else:
            typing.stopped_typing(user_id, room_id)

    transactions.register_edu_handler("m.typing", on_typing)


class SeenMessages(Protocol):
    """Inbound to-device message IDs (``federation.e2ee.InboundToDeviceIds``)."""

    async def claim(self, origin: str, message_id: str) -> bool: ...

    async def release(self, origin: str, message_id: str) -> None: ...


def wire_to_device(
    transactions: TransactionHandler,
    sender: FederationSender,
    to_device: ToDeviceSink,
    seen: SeenMessages | None = None,
) -> None:
    async def on_to_device(origin: str, content: dict[str, Any]) -> None:
        event_type, messages = content.get("type"), content.get("messages")
        message_id = content.get("message_id")
        if not isinstance(event_type, str) or not isinstance(messages, dict):
            return
        if seen is not None and isinstance(message_id, str):
            if not await seen.claim(origin, message_id):
                return  # delivered once already (s2s "Send-to-device messaging")
        try:
            await to_device.deliver_remote(content["sender"], event_type, messages)
        except BaseException:
            if seen is not None and isinstance(message_id, str):
                await seen.release(origin, message_id)
            raise

    async def send_remote(
        from_user: str,
        event_type: str,
        message_id: str,
        by_server: dict[str, dict[str, dict[str, Any]]],
    ) -> None:
        for server, messages in by_server.items():
            content = {
                "sender": from_user,
                "type": event_type,
                "message_id": message_id,
                "messages": messages,
            }
            await sender.send_edu(server, "m.direct_to_device", content)

    transactions.register_edu_handler("m.direct_to_device", on_to_device)
    to_device.remote_to_device_sender = send_remote


class TypingSource(Protocol):
    local_typing_listeners: list[Any]


def wire_typing_out(sender: FederationSender, typing: TypingSource) -> None:
    """Local typing changes go to the other servers in the room (``m.typing``)."""

    async def on_local_typing(user_id: str, room_id: str, is_typing: bool) -> None:
        content = {"room_id": room_id, "user_id": user_id, "typing": is_typing}
        await sender.send_edu_to_room(room_id, "m.typing", content, key=f"{room_id} {user_id}")

    typing.local_typing_listeners.append(on_local_typing)


class ReceiptSink(Protocol):
    public_receipt_listeners: list[Any]

    async def receive_remote(
        self, user_id: str, room_id: str, event_id: str, thread_id: str | None
    ) -> None: ...


def wire_receipts(
    transactions: TransactionHandler,
    sender: FederationSender,
    stores: Stores,
    receipts: ReceiptSink,
) -> None:
    """``m.receipt`` both ways (s2s "Receipts"): public read receipts only."""

    async def on_local_receipt(
        user_id: str, room_id: str, event_id: str, thread_id: str | None, ts: int
    ) -> None:
        data: dict[str, Any] = {"ts": ts}
        if thread_id is not None:
            data["thread_id"] = thread_id
        content = {room_id: {"m.read": {user_id: {"event_ids": [event_id], "data": data}}}}
        await sender.send_edu_to_room(room_id, "m.receipt", content, key=f"{room_id} {user_id}")

    async def on_receipt(origin: str, content: dict[str, Any]) -> None:
        for room_id, by_type in content.items():
            if not isinstance(room_id, str) or not isinstance(by_type, dict):
                continue
            reads = by_type.get("m.read")
            if not isinstance(reads, dict):
                continue
            members = await stores.state.current_members(room_id)
            for user_id, receipt in reads.items():
                if members.get(user_id) != "join" or not isinstance(receipt, dict):
                    continue
                event_ids = receipt.get("event_ids")
                if not isinstance(event_ids, list) or not event_ids:
                    continue
                event_id = event_ids[-1]
                data = receipt.get("data")
                thread_id = data.get("thread_id") if isinstance(data, dict) else None
                if not isinstance(event_id, str) or not (
                    thread_id is None or isinstance(thread_id, str)
                ):
                    continue
                await receipts.receive_remote(user_id, room_id, event_id, thread_id)

    receipts.public_receipt_listeners.append(on_local_receipt)
    transactions.register_edu_handler("m.receipt", on_receipt)


class PresenceSink(Protocol):
    local_change_listeners: list[Any]

    async def states_of(self, user_ids: Iterable[str]) -> Sequence[Any]: ...

    async def receive_remote(
        self,
        user_id: str,
        state: str,
        status_msg: str | None,
        last_active_ago: int | None,
        currently_active: bool,
    ) -> None: ...


def wire_presence(
    transactions: TransactionHandler,
    sender: FederationSender,
    stores: Stores,
    presence: PresenceSink,
    clock: Clock,
    persisted_hooks: list[Callable[[StoredEvent], Awaitable[None]]] | None = None,
) -> None:
    """``m.presence`` both ways (s2s "Presence"): to the servers sharing a room. A
    join also makes presence known across the new link, as Synapse does: a local user
    who joins tells the room's other servers, and a server that gains a member hears
    of the local members (those not offline)."""

    async def send_change(user_id: str, content: dict[str, Any]) -> None:
        rooms = await stores.state.rooms_for_user(user_id)
        destinations: set[str] = set()
        for room_id, membership in rooms.items():
            if membership == "join":
                destinations |= await sender.joined_servers(room_id)
        push = {"push": [{"user_id": user_id, **content}]}
        for destination in sorted(destinations):
            await sender.send_edu(destination, "m.presence", push, key=user_id)

    def on_local_change(change: Any) -> None:
        content = change.content(clock.time_ms())
        sender.run_soon(send_change(change.user_id, content))

    async def on_presence(origin: str, content: dict[str, Any]) -> None:
        updates = content.get("push")
        if not isinstance(updates, list):
            return
        for update in updates[:PRESENCE_BATCH_LIMIT]:
            if not isinstance(update, dict):
                continue
            user_id, state = update.get("user_id"), update.get("presence")
            status_msg, ago = update.get("status_msg"), update.get("last_active_ago")
            if not isinstance(user_id, str) or not isinstance(state, str):
                continue
            await presence.receive_remote(
                user_id,
                state,
                status_msg if isinstance(status_msg, str) else None,
                ago if isinstance(ago, int) and not isinstance(ago, bool) else None,
                update.get("currently_active") is True,
            )

    async def send_states(destinations: Iterable[str], user_ids: Iterable[str]) -> None:
        now = clock.time_ms()
        states = [p for p in await presence.states_of(user_ids) if p.state != "offline"]
        for state in states:
            push = {"push": [{"user_id": state.user_id, **state.content(now)}]}
            for destination in sorted(destinations):
                await sender.send_edu(destination, "m.presence", push, key=state.user_id)

    async def on_event_persisted(stored: StoredEvent) -> None:
        event = stored.event
        if (
            event.type != "m.room.member"
            or event.membership != "join"
            or event.state_key is None
            or stored.outlier
            or stored.rejected_reason is not None
            or stored.soft_failed
            or stored.stream_ordering is None
            or stored.stream_ordering < 0
        ):
            return
        if stored.replaces_state is not None:
            previous = await stores.events.get_event(stored.replaces_state)
            if previous is not None and previous.event.membership == "join":
                return  # a profile change, not a join
        joiner_server = _server(event.state_key)
        if joiner_server is None:
            return
        if joiner_server == sender.server_name:
            await send_states(await sender.joined_servers(event.room_id), [event.state_key])
            return
        members = await stores.state.current_members(event.room_id)
        local = [
            user_id
            for user_id, membership in members.items()
            if membership == "join" and _server(user_id) == sender.server_name
        ]
        await send_states([joiner_server], local)

    presence.local_change_listeners.append(on_local_change)
    transactions.register_edu_handler("m.presence", on_presence)
    if persisted_hooks is not None:
        persisted_hooks.append(on_event_persisted)


def _server(user_id: str) -> str | None:
    """The server part of a user ID, or None if it has none."""
    _local, sep, server = user_id.partition(":")
    return server if sep else None
