"""Which membership events a device was already sent by lazy-loading syncs
(client-server API: "Lazy-loading room members", ``include_redundant_members``).

With lazy-loading, a /sync sends the membership of each timeline sender in ``state``;
unless the filter asks for ``include_redundant_members``, one the device already
holds is left out (as Synapse does). Each entry remembers the events position of the
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
from collections.abc import Iterable

MAX_MEMBERS_PER_DEVICE = 100
MAX_DEVICES = 10_000

DeviceKey = tuple[str, str | None]  # (user_id, device_id)
MemberKey = tuple[str, str]  # (room_id, member user_id)


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
