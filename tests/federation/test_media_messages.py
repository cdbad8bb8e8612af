"""The issue's done-when across federation: an m.image with a thumbnail and an m.file
sent by a user of one server display for a user of another, who fetches everything
through their own server (which gets it from the origin over federation)."""

from __future__ import annotations

from tests.federation.rooms import settle, share_room
from tests.federation.servers import ServerFactory
from tests.media.messages import check_displayed, send_image_and_file


async def test_image_and_file_messages_display_across_federation(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)

    sent = await send_image_and_file(alice, room_id)
    await settle(a, b)
    assert all(mxc.startswith(f"mxc://{a.server_name}/") for mxc in sent.content)
    await check_displayed(bob, room_id, sent)
    for mxc in sent.content:  # b fetched them from a and keeps them
        media_id = mxc.rsplit("/", 1)[1]
        assert await b.server.stores.media.get_media(a.server_name, media_id) is not None

    # And the other way: bob's media, on b, displayed by alice on a.
    sent = await send_image_and_file(bob, room_id)
    await settle(a, b)
    assert all(mxc.startswith(f"mxc://{b.server_name}/") for mxc in sent.content)
    await check_displayed(alice, room_id, sent)
