"""Lazy-loading room members in /sync (client-server API: "Lazy-loading room
members", ``include_redundant_members``): which memberships a room's ``state`` needs,
and which of them a device already holds.

With lazy-loading, ``state`` has the membership of each timeline sender (and, on a
full-state entry, of the user and the heroes); a delta from ``since`` keeps every
member who changed in the gap. Unless the filter asks for
``include_redundant_members``, a membership the device already holds is left out
(as Synapse does). Each entry remembers the events position of the
response that carried it, and counts as held only once the device syncs from a
token at or after that position: a device that retries from an older token (it
never got the response) is sent the member again.

Held in memory, bounded per device and in devices (least recently used go first);
forgetting an entry only costs a redundant member event, which the spec allows. An
initial sync (no ``since``) starts the device afresh, as a client without a token
has nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from storage.events import StoredEvent
from storage.state import StateKey, StateMap

MAX_MEMBERS_PER_DEVICE = 100
MAX_DEVICES = 10_000

MEMBER = "m.room.member"

DeviceKey = tuple[str, str | None]  # (user_id, device_id)
MemberKey = tuple[str, str]  # (room_id, member user_id)


def members_wanted(timeline: Sequence[StoredEvent], *, use_state_after: bool) -> set[str]:
    """The timeline senders whose membership ``state`` must give: not one whose
    membership event comes before their first event in the timeline (unless
    ``state`` is the state after the timeline)."""
    wanted: set[str] = set()
    in_timeline: set[str] = set()
    for stored in timeline:
        event = stored.event
        if use_state_after or event.sender not in in_timeline:
            wanted.add(event.sender)
        if event.type == MEMBER and event.state_key is not None:
            in_timeline.add(event.state_key)
    return wanted


def lazy_section(
    section: dict[StateKey, str], target: StateMap, wanted: Collection[str], *, full_state: bool
) -> dict[StateKey, str]:
    """``section`` with only the wanted members (from ``target``, the state the
    section describes); a delta keeps the members that changed in the gap."""
    result = {k: e for k, e in section.items() if k[0] != MEMBER or not full_state}
    for user_id in wanted:
        event_id = target.get((MEMBER, user_id))
        if event_id is not None:
            result[(MEMBER, user_id)] = event_id
    return result


class SentMembers:
    def __init__(
        self, per_device: int = MAX_MEMBERS_PER_DEVICE, max_devices: int = MAX_DEVICES
    ) -> None:
        self._per_device = per_device
        self._max_devices = max_devices
        # device -> member -> (membership event ID, events position of the response)
        self._devices: OrderedDict[DeviceKey, OrderedDict[MemberKey, tuple[str, int]]] = (
            OrderedDict()
        )

    def for_device(
        self, user_id: str, device_id: str | None, since: int | None, now: int, *, dedupe: bool
    ) -> DeviceSync:
        """One sync's view: ``since`` and ``now`` are its events positions. An initial
        sync (``since`` None) starts the device afresh."""
        device = (user_id, device_id)
        if dedupe and since is None:
            self.forget_device(device)
        return DeviceSync(self, device, since, now, dedupe)

    def forget_device(self, device: DeviceKey) -> None:
        """An initial sync: the device holds nothing."""
        self._devices.pop(device, None)

    def held(self, device: DeviceKey, member: MemberKey, event_id: str, since: int) -> bool:
        """Whether the device holds ``event_id`` as this member's membership: it was
        sent in a response the device has synced on from (position <= ``since``)."""
        members = self._devices.get(device)
        if members is None:
            return False
        entry = members.get(member)
        return entry is not None and entry[0] == event_id and entry[1] <= since

    def remember(
        self, device: DeviceKey, sent: Iterable[tuple[MemberKey, str]], position: int
    ) -> None:
        """Membership events sent in a response whose events position is ``position``."""
        members = self._devices.get(device)
        if members is None:
            members = self._devices[device] = OrderedDict()
            while len(self._devices) > self._max_devices:
                self._devices.popitem(last=False)
        else:
            self._devices.move_to_end(device)
        for member, event_id in sent:
            members[member] = (event_id, position)
            members.move_to_end(member)
        while len(members) > self._per_device:
            members.popitem(last=False)


@dataclass
class DeviceSync:
    """The memberships one sync leaves out, and those it sends (remembered once the
    whole response is chosen)."""

    members: SentMembers
    device: DeviceKey
    since: int | None
    now: int
    dedupe: bool
    sent: list[tuple[MemberKey, str]] = field(default_factory=list)

    def drop_held(self, room_id: str, section: dict[StateKey, str]) -> dict[StateKey, str]:
        if not self.dedupe or self.since is None:
            return section
        since = self.since
        return {
            k: e
            for k, e in section.items()
            if k[0] != MEMBER or not self.members.held(self.device, (room_id, k[1]), e, since)
        }

    def note_sent(
        self,
        room_id: str,
        section: dict[StateKey, str],
        kept: Collection[str],
        timeline: Sequence[StoredEvent],
    ) -> None:
        """The members of ``section`` whose events were ``kept`` in ``state``, and
        the membership events of the timeline, reach the device."""
        if not self.dedupe:
            return
        self.sent += [
            ((room_id, k[1]), e) for k, e in section.items() if k[0] == MEMBER and e in kept
        ]
        self.sent += [
            ((room_id, key), e.event_id)
            for e in timeline
            if e.event.type == MEMBER and (key := e.event.state_key) is not None
        ]

    def commit(self) -> None:
        if self.sent:
            self.members.remember(self.device, self.sent, self.now)
