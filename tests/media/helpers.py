"""Helpers for media tests: images made with Pillow, uploads through the API."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from tests.conftest import HomeserverHarness


def png_bytes(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height))
    for x in range(0, width, 8):
        for y in range(0, height, 8):
            image.putpixel((x, y), (x % 256, y % 256, 128))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def animated_gif_bytes(width: int, height: int, frames: int = 3) -> bytes:
    images = [Image.new("RGB", (width, height), (i * 80, 0, 0)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def user_token(hs: HomeserverHarness, localpart: str = "alice") -> str:
    return str((await hs.register(localpart))["access_token"])


async def upload(
    hs: HomeserverHarness,
    token: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    filename: str | None = None,
) -> str:
    """Upload through POST /_matrix/media/v3/upload; return the media ID."""
    params = {"filename": filename} if filename is not None else {}
    response = await hs.client.post(
        "/_matrix/media/v3/upload",
        data=data,
        params=params,
        headers={**auth(token), "Content-Type": content_type},
    )
    assert response.status == 200, await response.text()
    uri = (await response.json())["content_uri"]
    prefix = f"mxc://{hs.server.config.server_name}/"
    assert uri.startswith(prefix)
    return str(uri[len(prefix) :])


def download_path(media_id: str, server_name: str = "test.local") -> str:
    return f"/_matrix/client/v1/media/download/{server_name}/{media_id}"


def stored_blobs(hs: HomeserverHarness) -> list[Path]:
    root = Path(hs.server.config.media_store_path) / "content"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def error_of(response: Any) -> tuple[int, str]:
    body = await response.json()
    return response.status, str(body["errcode"])
