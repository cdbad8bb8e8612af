"""Thumbnails (client-server API: Content repository, Thumbnails)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from homeserver.media.thumbnailer import (
    TargetSize,
    crop_box,
    generated_size,
    scaled_size,
    select_size,
)
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.media.helpers import (
    animated_gif_bytes,
    auth,
    error_of,
    jpeg_bytes,
    png_bytes,
    stored_blobs,
    upload,
    user_token,
)

SIZES = [
    TargetSize(32, 32, "crop"),
    TargetSize(96, 96, "crop"),
    TargetSize(320, 240, "scale"),
    TargetSize(640, 480, "scale"),
    TargetSize(800, 600, "scale"),
]


def thumb_path(media_id: str, width: int, height: int, method: str, **extra: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"method": method, **extra}.items())
    return (
        f"/_matrix/client/v1/media/thumbnail/test.local/{media_id}"
        f"?width={width}&height={height}&{query}"
    )


def test_select_size_picks_smallest_large_enough_of_the_method() -> None:
    assert select_size(SIZES, 20, 20, "crop") == TargetSize(32, 32, "crop")
    assert select_size(SIZES, 33, 20, "crop") == TargetSize(96, 96, "crop")
    assert select_size(SIZES, 300, 300, "crop") is None  # no crop is large enough
    assert select_size(SIZES, 100, 100, "scale") == TargetSize(320, 240, "scale")
    assert select_size(SIZES, 321, 100, "scale") == TargetSize(640, 480, "scale")
    assert select_size(SIZES, 801, 100, "scale") is None
    assert select_size(SIZES, 5000, 5000, "scale") is None
    assert select_size(SIZES[:2], 90, 90, "scale") == TargetSize(96, 96, "crop")
    assert select_size(SIZES[:2], 100, 100, "scale") is None


def test_generated_size_is_never_smaller_than_asked_nor_than_possible() -> None:
    for source in ((4000, 3000), (3000, 4000), (1000, 1000), (5000, 700), (801, 601)):
        for width, height in ((1600, 1200), (900, 100), (2000, 2000), (801, 601), (1, 700)):
            scale = generated_size(source, width, height, "scale")
            fit = scaled_size(source, (width, height))
            assert scale.width >= fit[0] and scale.height >= fit[1], (source, width, height)
            assert scale.width <= source[0] and scale.height <= source[1]
            # The source's aspect, within a pixel of rounding.
            assert abs(scale.width * source[1] - scale.height * source[0]) <= max(source)
            crop = generated_size(source, width, height, "crop")
            _, size = crop_box(source, (crop.width, crop.height))
            assert size == (crop.width, crop.height)  # made as named, no upscaling
            assert crop.width <= source[0] and crop.height <= source[1]
            if width <= source[0] and height <= source[1]:
                assert crop.width >= width and crop.height >= height, (source, width, height)
    # A request larger than the source gets the whole source.
    assert generated_size((4000, 3000), 5000, 3000, "scale") == TargetSize(4000, 3000, "scale")


def test_generated_sizes_of_one_image_are_few() -> None:
    """Whatever sizes clients ask for, an image gets few generated thumbnails: one per
    step of 2 ** (1/4) of the scale factor (and, for crop, of the aspect ratio)."""
    scale = {
        generated_size((4000, 3000), w, h, "scale")
        for w in range(801, 4001, 7)
        for h in range(601, 3001, 7)
    }
    assert len(scale) <= 10  # factors from 0.2 (801/4000) to 1
    crop = {
        generated_size((4000, 3000), w, h, "crop")
        for w in range(97, 4001, 31)
        for h in range(97, 3001, 31)
    }
    assert len(crop) <= 500  # about 43 aspect steps times 10 factor steps
    assert sum(c.width * c.height for c in crop) <= 40 * 4000 * 3000


def test_scaled_size_keeps_aspect_and_never_upscales() -> None:
    assert scaled_size((1000, 800), (320, 240)) == (300, 240)
    assert scaled_size((1000, 100), (320, 240)) == (320, 32)
    assert scaled_size((100, 50), (320, 240)) == (100, 50)


def test_crop_box_takes_the_centre_with_the_target_aspect() -> None:
    assert crop_box((200, 100), (32, 32)) == ((50, 0, 150, 100), (32, 32))
    assert crop_box((20, 40), (32, 32)) == ((0, 10, 20, 30), (20, 20))


async def fetch_image(hs: HomeserverHarness, token: str, path: str) -> tuple[Image.Image, str]:
    response = await hs.client.get(path, headers=auth(token))
    assert response.status == 200, await response.text()
    assert response.headers["Content-Disposition"].startswith("inline")
    image = Image.open(io.BytesIO(await response.read()))
    return image, response.headers["Content-Type"]


async def test_crop_thumbnail_has_the_configured_size(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, jpeg_bytes(400, 200), "image/jpeg")
    image, content_type = await fetch_image(hs, token, thumb_path(media_id, 30, 30, "crop"))
    assert image.size == (32, 32)
    assert content_type == "image/jpeg"
    image, _ = await fetch_image(hs, token, thumb_path(media_id, 90, 60, "crop"))
    assert image.size == (96, 96)


async def test_scale_thumbnail_fits_the_configured_box(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, png_bytes(1000, 800), "image/png")
    image, content_type = await fetch_image(hs, token, thumb_path(media_id, 300, 200, "scale"))
    assert image.size == (300, 240)
    assert content_type == "image/png"
    image, _ = await fetch_image(hs, token, thumb_path(media_id, 500, 400, "scale"))
    assert image.size == (600, 480)


async def test_request_larger_than_configured_sizes_is_not_answered_smaller(
    hs: HomeserverHarness,
) -> None:
    """The spec: servers MUST NOT return a smaller thumbnail than requested unless the
    original makes that impossible (it was answered with the 800x600 thumbnail)."""
    token = await user_token(hs)
    media_id = await upload(hs, token, jpeg_bytes(4000, 3000), "image/jpeg")
    image, content_type = await fetch_image(hs, token, thumb_path(media_id, 1600, 1200, "scale"))
    assert content_type == "image/jpeg"
    assert 1600 <= image.width < 4000 and 1200 <= image.height < 3000
    assert abs(image.width * 3 - image.height * 4) <= 4
    blobs = len(stored_blobs(hs))
    # A slightly different size on the same step of the ladder: the same stored file.
    again = await hs.client.get(thumb_path(media_id, 1620, 1210, "scale"), headers=auth(token))
    assert Image.open(io.BytesIO(await again.read())).size == image.size
    assert len(stored_blobs(hs)) == blobs
    image, _ = await fetch_image(hs, token, thumb_path(media_id, 300, 200, "crop"))
    assert image.width >= 300 and image.height >= 200
    assert image.width < 4000 and image.height < 3000
    # Larger than the original: the original itself.
    response = await hs.client.get(thumb_path(media_id, 4000, 3500, "scale"), headers=auth(token))
    assert Image.open(io.BytesIO(await response.read())).size == (4000, 3000)


async def test_thumbnail_is_generated_once_and_stored(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, png_bytes(500, 500), "image/png")
    first = await hs.client.get(thumb_path(media_id, 32, 32, "crop"), headers=auth(token))
    body = await first.read()
    assert len(stored_blobs(hs)) == 2
    record = await hs.server.stores.media.get_thumbnail(
        "test.local", media_id, 32, 32, "crop", False
    )
    assert record is not None and record.size == len(body)
    second = await hs.client.get(thumb_path(media_id, 20, 20, "crop"), headers=auth(token))
    assert await second.read() == body
    assert second.headers["ETag"] == first.headers["ETag"]
    assert len(stored_blobs(hs)) == 2


async def test_small_image_is_served_as_its_own_thumbnail(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    data = png_bytes(20, 10)
    media_id = await upload(hs, token, data, "image/png")
    response = await hs.client.get(thumb_path(media_id, 64, 64, "scale"), headers=auth(token))
    assert await response.read() == data
    assert response.headers["Content-Type"] == "image/png"


async def test_dynamic_thumbnails_use_the_requested_size(make_homeserver: HarnessFactory) -> None:
    hs: HomeserverHarness = await make_homeserver(dynamic_thumbnails=True)
    token = await user_token(hs)
    media_id = await upload(hs, token, png_bytes(400, 400), "image/png")
    image, _ = await fetch_image(hs, token, thumb_path(media_id, 50, 70, "crop"))
    assert image.size == (50, 70)


async def test_animated_thumbnail_only_when_asked(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, animated_gif_bytes(200, 200, 3), "image/gif")
    image, content_type = await fetch_image(
        hs, token, thumb_path(media_id, 90, 90, "crop", animated="true")
    )
    assert content_type == "image/webp"
    assert getattr(image, "n_frames", 1) == 3
    assert image.size == (96, 96)
    for extra in ({}, {"animated": "false"}):
        image, content_type = await fetch_image(
            hs, token, thumb_path(media_id, 90, 90, "crop", **extra)
        )
        assert content_type == "image/png"
        assert getattr(image, "n_frames", 1) == 1


async def test_non_image_cannot_be_thumbnailed(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, b"%PDF-1.4", "application/pdf")
    response = await hs.client.get(thumb_path(media_id, 32, 32, "crop"), headers=auth(token))
    assert await error_of(response) == (400, "M_UNKNOWN")
    media_id = await upload(hs, token, b"not really a png", "image/png")
    response = await hs.client.get(thumb_path(media_id, 32, 32, "crop"), headers=auth(token))
    assert await error_of(response) == (400, "M_UNKNOWN")


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge dimensions: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


async def test_decompression_bomb_is_refused_with_413(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    for width, height in ((100_000, 100_000), (8000, 8000)):
        media_id = await upload(hs, token, _png_claiming(width, height), "image/png")
        response = await hs.client.get(thumb_path(media_id, 32, 32, "crop"), headers=auth(token))
        assert await error_of(response) == (413, "M_TOO_LARGE"), (width, height)


async def test_image_over_max_image_pixels_is_refused(make_homeserver: HarnessFactory) -> None:
    hs: HomeserverHarness = await make_homeserver(max_image_pixels=10_000)
    token = await user_token(hs)
    media_id = await upload(hs, token, png_bytes(200, 200), "image/png")
    response = await hs.client.get(thumb_path(media_id, 32, 32, "crop"), headers=auth(token))
    assert await error_of(response) == (413, "M_TOO_LARGE")


async def test_bad_thumbnail_parameters(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    media_id = await upload(hs, token, png_bytes(100, 100), "image/png")
    base = f"/_matrix/client/v1/media/thumbnail/test.local/{media_id}"
    for query, expected in (
        ("height=32", (400, "M_MISSING_PARAM")),
        ("width=32", (400, "M_MISSING_PARAM")),
        ("width=abc&height=32", (400, "M_INVALID_PARAM")),
        ("width=-5&height=32", (400, "M_INVALID_PARAM")),
        ("width=0&height=32", (400, "M_INVALID_PARAM")),
        ("width=32&height=32&method=stretch", (400, "M_INVALID_PARAM")),
        ("width=32&height=32&animated=maybe", (400, "M_INVALID_PARAM")),
    ):
        response = await hs.client.get(f"{base}?{query}", headers=auth(token))
        assert await error_of(response) == expected, query
