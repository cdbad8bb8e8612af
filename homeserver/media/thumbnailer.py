"""Thumbnails with Pillow (client-server API: Content repository, Thumbnails).

Pure decisions first (`select_size`, `generated_size`, `scaled_size`, `crop_box`), then `Thumbnailer`,
which does the CPU-heavy decoding and encoding in a worker thread. An image's
dimensions are read from its header before anything is decoded, so a decompression
bomb is refused (413 M_TOO_LARGE) without its pixels ever being allocated.
"""

from __future__ import annotations

import asyncio
import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from homeserver.errors import MatrixError, TooLarge

# Pillow is imported on first use (a few MB that a server which never makes a
# thumbnail or previews an image does not pay for).
if TYPE_CHECKING:
    from PIL import Image

Method = Literal["crop", "scale"]

# Formats Pillow may decode here: the usual web images. Nothing exotic reaches a decoder.
DECODABLE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")
ANIMATABLE_FORMATS = frozenset({"GIF", "WEBP", "PNG"})
THUMBNAILABLE_TYPES = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/apng", "image/gif", "image/webp", "image/bmp"}
)
MAX_ANIMATION_FRAMES = 300
# Steps per doubling of the ladder that sizes made for large requests lie on.
LADDER_STEPS = 4


class CannotThumbnail(MatrixError):
    """400 M_UNKNOWN: the content is not an image this server can thumbnail."""

    def __init__(self) -> None:
        super().__init__(400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content")


@dataclass(frozen=True)
class TargetSize:
    width: int
    height: int
    method: Method


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    animated: bool


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    content_type: str
    width: int
    height: int


def select_size(
    configured: Sequence[TargetSize], width: int, height: int, method: Method
) -> TargetSize | None:
    """The configured size to serve for a request, or None if none is large enough.

    The smallest size of the requested method at least as large as requested in both
    dimensions. Sizes of the other method are used only when none of the requested
    method is configured. None means `generated_size` decides: the spec forbids
    answering with a thumbnail smaller than asked when the original is large enough.
    """
    candidates = [s for s in configured if s.method == method] or list(configured)
    big_enough = [s for s in candidates if s.width >= width and s.height >= height]
    if not big_enough:
        return None
    return min(big_enough, key=lambda s: (s.width * s.height, s.width))


def generated_size(source: tuple[int, int], width: int, height: int, method: Method) -> TargetSize:
    """The size to make for a request larger than every configured size.

    At least the requested size in both dimensions (for ``scale``: at least what
    fitting the source into the requested box gives) unless the source is too small
    for that, and never larger than the source. The scale factor is rounded up, and
    a crop's aspect ratio rounded, to a power of ``2 ** (1 / LADDER_STEPS)``: however
    many different sizes clients ask for, one image gets a few dozen such thumbnails
    at most, whose areas shrink geometrically (the ladder is the cap on what they
    cost in disk and CPU; the result is stored as configured sizes are).
    """
    src_w, src_h = source
    if method == "scale":
        factor = _ladder_up(min(width / src_w, height / src_h))
        return TargetSize(
            _dimension(src_w * factor, src_w), _dimension(src_h * factor, src_h), method
        )
    return _generated_crop(source, width, height)


def _generated_crop(source: tuple[int, int], width: int, height: int) -> TargetSize:
    src_w, src_h = source
    exact = width / height
    nearest = _ladder_nearest(exact)
    step = 2 ** (1 / LADDER_STEPS)
    other = nearest * step if nearest < exact else nearest / step
    for aspect in (nearest, other):
        # The smallest box of this aspect covering the request: does the source hold it?
        box_w = max(float(width), height * aspect)
        if box_w <= src_w + 1e-6 and box_w / aspect <= src_h + 1e-6:
            break
    else:
        if width <= src_w and height <= src_h:
            # Within a step of the source's size both ways: the whole source covers it.
            return TargetSize(src_w, src_h, "crop")
        # Larger than the source: the largest region of that aspect is the best there is.
        aspect = nearest
        box_w = max(float(width), height * aspect)
    region_w = min(float(src_w), src_h * aspect)  # the region crop_box takes
    out_w = region_w * _ladder_up(box_w / region_w)
    return TargetSize(_dimension(out_w, src_w), _dimension(out_w / aspect, src_h), "crop")


def _ladder_up(ratio: float) -> float:
    """The smallest power of 2 ** (1 / LADDER_STEPS) not below ``ratio``, at most 1."""
    if ratio >= 1:
        return 1.0
    return float(2 ** (math.ceil(math.log2(ratio) * LADDER_STEPS - 1e-9) / LADDER_STEPS))


def _ladder_nearest(ratio: float) -> float:
    return float(2 ** (round(math.log2(ratio) * LADDER_STEPS) / LADDER_STEPS))


def _dimension(value: float, limit: int) -> int:
    return max(1, min(limit, math.ceil(value - 1e-6)))


def scaled_size(source: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size of the source's aspect ratio that fits in ``box``, never upscaled."""
    src_w, src_h = source
    box_w, box_h = box
    if src_w <= box_w and src_h <= box_h:
        return src_w, src_h
    if src_w * box_h > src_h * box_w:
        return box_w, max(1, round(src_h * box_w / src_w))
    return max(1, round(src_w * box_h / src_h)), box_h


def crop_box(
    source: tuple[int, int], target: tuple[int, int]
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """The centred region of the source with the target's aspect ratio, and the size to
    scale it to (the target, or the region itself if that is smaller: no upscaling)."""
    src_w, src_h = source
    tgt_w, tgt_h = target
    if src_w * tgt_h > src_h * tgt_w:
        region_h = src_h
        region_w = max(1, round(src_h * tgt_w / tgt_h))
    else:
        region_w = src_w
        region_h = max(1, round(src_w * tgt_h / tgt_w))
    left = (src_w - region_w) // 2
    top = (src_h - region_h) // 2
    size = (min(tgt_w, region_w), min(tgt_h, region_h))
    return (left, top, left + region_w, top + region_h), size


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from an image's header (nothing is decoded); None if it is
    not an image this server decodes."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=DECODABLE_FORMATS) as image:
                width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return (width, height) if width > 0 and height > 0 else None


class Thumbnailer:
    """Reads image headers and makes thumbnails, off the event loop."""

    def __init__(self, max_image_pixels: int) -> None:
        self.max_image_pixels = max_image_pixels

    async def inspect(self, path: Path) -> ImageInfo:
        return await asyncio.to_thread(self._inspect, path)

    async def make(self, path: Path, target: TargetSize, *, animated: bool) -> Thumbnail:
        return await asyncio.to_thread(self._make, path, target, animated)

    # -- in the worker thread -----------------------------------------------------------

    def _open(self, path: Path) -> Image.Image:
        from PIL import Image, UnidentifiedImageError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(path, formats=DECODABLE_FORMATS)
        except Image.DecompressionBombError as exc:
            raise TooLarge("Content is too large to thumbnail") from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise CannotThumbnail() from exc
        width, height = image.size
        frames = getattr(image, "n_frames", 1) if image.format in ANIMATABLE_FORMATS else 1
        if width <= 0 or height <= 0 or width * height > self.max_image_pixels:
            image.close()
            raise TooLarge("Content is too large to thumbnail")
        if (
            frames > 1
            and width * height * min(frames, MAX_ANIMATION_FRAMES) > 4 * self.max_image_pixels
        ):
            image.close()
            raise TooLarge("Animation is too large to thumbnail")
        return image

    def _inspect(self, path: Path) -> ImageInfo:
        with self._open(path) as image:
            animated = bool(getattr(image, "is_animated", False))
            return ImageInfo(image.size[0], image.size[1], image.format or "", animated)

    def _make(self, path: Path, target: TargetSize, animated: bool) -> Thumbnail:
        with self._open(path) as image:
            try:
                if animated and getattr(image, "is_animated", False):
                    return _animated_thumbnail(image, target)
                return _static_thumbnail(image, target)
            except (OSError, ValueError, SyntaxError, EOFError) as exc:
                raise CannotThumbnail() from exc


def _resize(frame: Image.Image, target: TargetSize) -> Image.Image:
    from PIL import Image

    if target.method == "crop":
        region, size = crop_box(frame.size, (target.width, target.height))
        return frame.resize(size, Image.Resampling.LANCZOS, box=region)
    size = scaled_size(frame.size, (target.width, target.height))
    if size == frame.size:
        return frame.copy()
    return frame.resize(size, Image.Resampling.LANCZOS)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _static_thumbnail(image: Image.Image, target: TargetSize) -> Thumbnail:
    keep_alpha = _has_alpha(image)
    if image.format == "JPEG":
        # Decode at a reduced scale straight away where the JPEG decoder can.
        image.draft("RGB", (target.width, target.height))
    image.seek(0)
    frame = image.convert("RGBA" if keep_alpha else "RGB")
    thumb = _resize(frame, target)
    out = io.BytesIO()
    if keep_alpha or image.format in ("PNG", "GIF"):
        thumb.save(out, "PNG", optimize=True)
        content_type = "image/png"
    else:
        thumb.save(out, "JPEG", quality=80, progressive=True)
        content_type = "image/jpeg"
    return Thumbnail(out.getvalue(), content_type, thumb.width, thumb.height)


def _animated_thumbnail(image: Image.Image, target: TargetSize) -> Thumbnail:
    from PIL import ImageSequence

    frames: list[Image.Image] = []
    durations: list[int] = []
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        if index >= MAX_ANIMATION_FRAMES:
            break
        frames.append(_resize(frame.convert("RGBA"), target))
        durations.append(int(frame.info.get("duration", 100) or 100))
    out = io.BytesIO()
    frames[0].save(
        out,
        "WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=int(image.info.get("loop", 0) or 0),
        quality=80,
    )
    return Thumbnail(out.getvalue(), "image/webp", frames[0].width, frames[0].height)
