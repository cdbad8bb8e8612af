"""Memory of a large media upload and download: the body must stream, never sit in memory.

Run: ``python bench/bench_media_upload.py [--size-mb 100]``. Prints figures; asserts
nothing. Builds a homeserver in this process (SQLite, media in a temporary directory)
behind a real TCP listener, registers a user, then:

* uploads ``--size-mb`` MB through ``POST /_matrix/media/v3/upload``, the client
  streaming its body from a generator in 64 KiB chunks (so the client holds nothing);
* downloads it back through the authenticated endpoint, hashing as it reads.

For each it prints the time, the throughput, the peak of Python allocations during
the transfer (tracemalloc), and the growth of the process's peak resident set size
(``ru_maxrss``), next to the size of the content.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiohttp
from aiohttp import web

from homeserver.config import parse_config
from homeserver.server import Homeserver
from storage.connect import open_sqlite

CHUNK = 64 * 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def body(size: int, digest: hashlib._Hash) -> AsyncIterator[bytes]:
    block = os.urandom(CHUNK)
    sent = 0
    while sent < size:
        chunk = block[: min(CHUNK, size - sent)]
        digest.update(chunk)
        sent += len(chunk)
        yield chunk


async def run(size_mb: int, port: int) -> None:
    size = size_mb * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(
            {
                "server_name": "bench.local",
                "listeners": [{"port": port, "resources": [{"names": ["client", "media"]}]}],
                "signing_key_path": str(Path(tmp) / "signing.key"),
                "media_store_path": str(Path(tmp) / "media"),
                "max_upload_size": size + 1,
                "enable_registration": True,
                "enable_registration_without_verification": True,
                "bcrypt_rounds": 4,
            },
            environ={},
        )
        db = await open_sqlite(Path(tmp) / "homeserver.db")
        server = await Homeserver.build(config, db=db)
        runner = web.AppRunner(server.make_app({"client", "media"}), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                token = await register(session, base)
                headers = {"Authorization": f"Bearer {token}"}
                sent_digest = hashlib.sha256()
                rss_before = peak_rss_mb()
                tracemalloc.start()
                start = time.perf_counter()
                async with session.post(
                    f"{base}/_matrix/media/v3/upload?filename=big.bin",
                    data=body(size, sent_digest),
                    headers={**headers, "Content-Type": "application/octet-stream"},
                ) as response:
                    assert response.status == 200, await response.text()
                    uri = (await response.json())["content_uri"]
                elapsed = time.perf_counter() - start
                _, traced_peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                report("upload", size, elapsed, traced_peak, peak_rss_mb() - rss_before)

                media_id = uri.rsplit("/", 1)[1]
                got_digest = hashlib.sha256()
                rss_before = peak_rss_mb()
                tracemalloc.start()
                start = time.perf_counter()
                async with session.get(
                    f"{base}/_matrix/client/v1/media/download/bench.local/{media_id}",
                    headers=headers,
                ) as response:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        got_digest.update(chunk)
                elapsed = time.perf_counter() - start
                _, traced_peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                report("download", size, elapsed, traced_peak, peak_rss_mb() - rss_before)
                print(f"round trip byte-exact: {got_digest.digest() == sent_digest.digest()}")
                print(f"process peak RSS overall: {peak_rss_mb():.1f} MB")
        finally:
            await runner.cleanup()
            await server.close()


async def register(session: aiohttp.ClientSession, base: str) -> str:
    body = {"username": "bench", "password": "bench password"}
    async with session.post(f"{base}/_matrix/client/v3/register", json=body) as response:
        session_id = (await response.json())["session"]
    body["auth"] = {"type": "m.login.dummy", "session": session_id}  # type: ignore[assignment]
    async with session.post(f"{base}/_matrix/client/v3/register", json=body) as response:
        return str((await response.json())["access_token"])


def report(what: str, size: int, elapsed: float, traced_peak: int, rss_growth_mb: float) -> None:
    print(
        f"{what:>8}: {size / 2**20:.0f} MB in {elapsed:.2f} s ({size / 2**20 / elapsed:.0f} MB/s);"
        f" peak Python allocations {traced_peak / 2**20:.1f} MB;"
        f" peak RSS growth {rss_growth_mb:.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--port", type=int, default=18431)
    args = parser.parse_args()
    asyncio.run(run(args.size_mb, args.port))


if __name__ == "__main__":
    main()
