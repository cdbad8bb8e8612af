"""An ``m.image`` and an ``m.file`` with client-made thumbnails, sent by one user and
displayed by another as a client would: /sync, take the mxc:// URIs from the events,
fetch them through the authenticated media endpoints.

Shared by the single-server test (tests/media) and the federated one
(tests/federation), so both check exactly the same thing.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from tests.media.helpers import jpeg_bytes
from tests.rooms.helpers import User

# A real (minimal) PDF: one empty page.
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
IMAGE_SIZE = (1200, 900)
IMAGE_THUMBNAIL_SIZE = (400, 300)
FILE_THUMBNAIL_SIZE = (120, 160)


def photo_png(width: int, height: int) -> bytes:
    """A PNG with some structure (a gradient), so it does not compress to nothing."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@dataclass
class SentMedia:
    """What the sender uploaded, by mxc:// URI, and the events carrying it."""

    content: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    image_event_id: str = ""
    file_event_id: str = ""


async def upload_as(user: User, data: bytes, content_type: str, filename: str) -> str:
    response = await user.hs.client.post(
        "/_matrix/media/v3/upload",
        params={"filename": filename},
        data=data,
        headers={**user.auth, "Content-Type": content_type},
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["content_uri"])


async def send_image_and_file(sender: User, room_id: str) -> SentMedia:
    """Upload a PNG photo with its JPEG thumbnail, and a PDF with a JPEG preview; send
    them as ``m.image`` and ``m.file`` (info with thumbnail_url and thumbnail_info)."""
    sent = SentMedia()

    async def put(data: bytes, content_type: str, filename: str) -> str:
        mxc = await upload_as(sender, data, content_type, filename)
        sent.content[mxc] = (data, content_type)
        return mxc

    photo = photo_png(*IMAGE_SIZE)
    photo_thumb = jpeg_bytes(*IMAGE_THUMBNAIL_SIZE)
    document = PDF + os.urandom(3000)  # and some binary after the trailer
    document_thumb = jpeg_bytes(*FILE_THUMBNAIL_SIZE)
    photo_url = await put(photo, "image/png", "photo.png")
    photo_thumb_url = await put(photo_thumb, "image/jpeg", "thumbnail.jpg")
    document_url = await put(document, "application/pdf", "report.pdf")
    document_thumb_url = await put(document_thumb, "image/jpeg", "report-preview.jpg")

    sent.image_event_id = await sender.send(
        room_id,
        "photo.png",
        msgtype="m.image",
        url=photo_url,
        info={
            "mimetype": "image/png",
            "size": len(photo),
            "w": IMAGE_SIZE[0],
            "h": IMAGE_SIZE[1],
            "thumbnail_url": photo_thumb_url,
            "thumbnail_info": {
                "mimetype": "image/jpeg",
                "size": len(photo_thumb),
                "w": IMAGE_THUMBNAIL_SIZE[0],
                "h": IMAGE_THUMBNAIL_SIZE[1],
            },
        },
    )
    sent.file_event_id = await sender.send(
        room_id,
        "report.pdf",
        msgtype="m.file",
        url=document_url,
        filename="report.pdf",
        info={
            "mimetype": "application/pdf",
            "size": len(document),
            "thumbnail_url": document_thumb_url,
            "thumbnail_info": {
                "mimetype": "image/jpeg",
                "size": len(document_thumb),
                "w": FILE_THUMBNAIL_SIZE[0],
                "h": FILE_THUMBNAIL_SIZE[1],
            },
        },
    )
    return sent


def _media_path(kind: str, mxc: str) -> str:
    assert mxc.startswith("mxc://"), mxc
    server_name, media_id = mxc.removeprefix("mxc://").split("/")
    return f"/_matrix/client/v1/media/{kind}/{server_name}/{media_id}"


async def download(receiver: User, mxc: str) -> tuple[bytes, str, str]:
    """The bytes, Content-Type and Content-Disposition of a download."""
    response = await receiver.hs.client.get(_media_path("download", mxc), headers=receiver.auth)
    assert response.status == 200, await response.text()
    headers = response.headers
    return await response.read(), headers["Content-Type"], headers["Content-Disposition"]


async def thumbnail(
    receiver: User, mxc: str, width: int, height: int, method: str
) -> tuple[Image.Image, str]:
    response = await receiver.hs.client.get(
        _media_path("thumbnail", mxc),
        params={"width": str(width), "height": str(height), "method": method},
        headers=receiver.auth,
    )
    assert response.status == 200, await response.text()
    assert response.headers["Content-Disposition"].startswith("inline")
    image = Image.open(io.BytesIO(await response.read()))
    image.load()
    return image, response.headers["Content-Type"]


async def synced_messages(receiver: User, room_id: str) -> dict[str, dict[str, Any]]:
    """The room's m.room.message events in the receiver's /sync timeline, by event ID."""
    body = await receiver.sync(timeout=0)
    timeline = body["rooms"]["join"][room_id]["timeline"]["events"]
    return {e["event_id"]: e for e in timeline if e["type"] == "m.room.message"}


async def check_displayed(receiver: User, room_id: str, sent: SentMedia) -> None:
    """The receiver sees both events and can fetch everything they point at: the
    files byte-exact with their types, the client-made thumbnails byte-exact, and
    server-made thumbnails of the image of the right size and type."""
    messages = await synced_messages(receiver, room_id)
    image = messages[sent.image_event_id]["content"]
    document = messages[sent.file_event_id]["content"]
    assert image["msgtype"] == "m.image"
    assert document["msgtype"] == "m.file"

    for content in (image, document):
        for mxc in (content["url"], content["info"]["thumbnail_url"]):
            data, content_type, _ = await download(receiver, mxc)
            assert (data, content_type) == sent.content[mxc]
        thumb_info = content["info"]["thumbnail_info"]
        thumb, thumb_type = await thumbnail(
            receiver, content["info"]["thumbnail_url"], thumb_info["w"], thumb_info["h"], "scale"
        )
        # The client-made thumbnail is exactly as large as asked: served as it is.
        assert thumb.size == (thumb_info["w"], thumb_info["h"])
        assert thumb_type == thumb_info["mimetype"]
    assert image["info"]["size"] == len(sent.content[image["url"]][0])
    assert document["info"]["size"] == len(sent.content[document["url"]][0])
    # The PDF is offered for saving under its name, never rendered inline.
    _, _, disposition = await download(receiver, document["url"])
    assert disposition == 'attachment; filename="report.pdf"'

    # Server-made thumbnails of the full image, as a timeline would ask for them.
    thumb, thumb_type = await thumbnail(receiver, image["url"], 320, 240, "scale")
    assert (thumb.size, thumb_type) == ((320, 240), "image/png")
    thumb, thumb_type = await thumbnail(receiver, image["url"], 96, 96, "crop")
    assert (thumb.size, thumb_type) == ((96, 96), "image/png")
    thumb, thumb_type = await thumbnail(receiver, image["url"], 800, 600, "scale")
    assert (thumb.size, thumb_type) == ((800, 600), "image/png")
