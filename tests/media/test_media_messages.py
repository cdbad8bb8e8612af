"""The issue's done-when on one server: an m.image with a thumbnail and an m.file sent
by one user display for another (through /sync and the authenticated media API)."""

from __future__ import annotations

from tests.conftest import HomeserverHarness
from tests.media.messages import check_displayed, send_image_and_file
from tests.rooms.helpers import make_user


async def test_image_and_file_messages_display_with_thumbnails(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="private_chat", invite=[bob.user_id])
    await bob.join(room_id)
    sent = await send_image_and_file(alice, room_id)
    await check_displayed(bob, room_id, sent)
