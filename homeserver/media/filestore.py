"""Media bytes on disk, addressed by their SHA-256 so identical content is stored once.

Layout under the media store root::

    content/ab/cd/ef0123...   a blob: the digest's first two byte pairs are directories
    tmp/                      uploads in progress (same filesystem, so renames are atomic)

A blob is streamed to a temporary file while it is hashed and fsynced (`stage`), then
renamed to its digest's path (`commit`). Paths are only ever built from a validated hex digest, never from
a media ID or a file name, so no request can name a file outside the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from homeserver.errors import MatrixError, TooLarge

WRITE_BUFFER_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 256 * 1024
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StagedBlob:
    """Bytes written and hashed, waiting in ``tmp/`` to be committed under their digest."""

    temp_path: Path
    sha256: str
    size: int


class MediaFileStore:
    """Content-addressed blobs under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._content = root / "content"
        self._tmp = root / "tmp"

    def path_for(self, sha256: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists)."""
        if not _DIGEST.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self._content / sha256[:2] / sha256[2:4] / sha256[4:]

    async def stage(
        self, chunks: AsyncIterable[bytes], max_size: int, too_large: MatrixError
    ) -> StagedBlob:
        """Stream bytes to a temporary file, hashing them; raise ``too_large`` once more
        than ``max_size`` bytes have come. Memory stays bounded by one write buffer."""
        temp = await asyncio.to_thread(self._open_temp)
        path = Path(temp.name)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_size:
                    raise too_large
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER_BYTES:
                    await asyncio.to_thread(_write, temp, digest, bytes(buffer))
                    buffer.clear()
            if buffer:
                await asyncio.to_thread(_write, temp, digest, bytes(buffer))
            await asyncio.to_thread(_sync_and_close, temp)
        except BaseException:
            await asyncio.to_thread(_discard, temp, path)
            raise
        return StagedBlob(path, digest.hexdigest(), size)

    async def stage_bytes(self, data: bytes) -> StagedBlob:
        """Stage a small blob held in memory (a thumbnail)."""

        async def one_chunk() -> AsyncIterator[bytes]:
            yield data

        return await self.stage(one_chunk(), len(data), TooLarge())

    async def commit(self, staged: StagedBlob) -> None:
        """Move a staged blob to its digest's path (atomically; a no-op if already there)."""
        await asyncio.to_thread(self._move_into_place, staged.temp_path, staged.sha256)

    async def discard(self, staged: StagedBlob) -> None:
        """Drop a staged blob that was not committed (harmless after a commit)."""
        await asyncio.to_thread(_unlink_quietly, staged.temp_path)

    async def delete(self, sha256: str) -> None:
        path = self.path_for(sha256)
        await asyncio.to_thread(_unlink_quietly, path)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path_for(sha256).is_file)

    def _open_temp(self) -> BinaryIO:
        self._tmp.mkdir(parents=True, exist_ok=True)
        return open(self._tmp / f"upload-{secrets.token_hex(12)}", "xb")

    def _move_into_place(self, temp_path: Path, sha256: str) -> None:
        final = self.path_for(sha256)
        if final.is_file():
            # Identical content is already stored: keep the old file (and its ETag).
            temp_path.unlink()
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp_path, final)
        with contextlib.suppress(OSError):
            dir_fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def _write(temp: BinaryIO, digest: hashlib._Hash, data: bytes) -> None:
    digest.update(data)
    temp.write(data)


def _sync_and_close(temp: BinaryIO) -> None:
    temp.flush()
    os.fsync(temp.fileno())
    temp.close()


def _discard(temp: BinaryIO, path: Path) -> None:
    with contextlib.suppress(OSError):
        temp.close()
    _unlink_quietly(path)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
