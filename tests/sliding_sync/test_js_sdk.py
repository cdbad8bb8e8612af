"""matrix-js-sdk's SlidingSync against this server, driven by tests/js/sliding_sync_check.mjs.

The Node script runs the SDK as Element Web does (SlidingSync + SlidingSyncSdk, Rust
crypto, the to_device and e2ee extensions) and checks that the room list is sorted by
recency, that a new message moves its room to the top and arrives in the timeline, that
a room name change arrives, and that a to-device message arrives. `.ci/run` installs the
SDK (`npm ci --prefix tests/js`); without it this test fails rather than skips.

The same setup runs against any homeserver, e.g. a Synapse from ../shared/tools/synapse:
    python -m tests.sliding_sync.test_js_sdk http://127.0.0.1:18110
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.conftest import HarnessFactory

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "sliding_sync_check.mjs"
V3 = "/_matrix/client/v3"
# Each wait inside the script; the script bounds its whole run to six of them.
WAIT_MS = 10_000
# The bound on the subprocess, above the script's own.
RUN_TIMEOUT_S = 6 * WAIT_MS / 1000 + 30
CHECKS = ("advertised", "initial_list", "e2ee", "timeline", "moved_to_top", "state", "to_device")


@dataclass
class Accounts:
    token_a: str
    token_b: str
    rooms_most_recent_first: list[str]


async def _call(
    session: aiohttp.ClientSession,
    base: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    expect: int = 200,
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.request(method, base + V3 + path, json=body, headers=headers) as resp:
        data = await resp.json()
        assert resp.status == expect, f"{method} {path} -> {resp.status} {data}"
        return data


async def _register(session: aiohttp.ClientSession, base: str, localpart: str) -> str:
    body: dict[str, Any] = {"username": localpart, "password": "correct horse"}
    first = await _call(session, base, "POST", "/register", body, expect=401)
    body["auth"] = {"type": "m.login.dummy", "session": first["session"]}
    return str((await _call(session, base, "POST", "/register", body))["access_token"])


async def prepare_accounts(base: str, rooms: int = 4) -> Accounts:
    """Register A and B through the client API; A creates `rooms` rooms, B joins them
    all, then A writes into each in turn, so the most recent is the last created."""
    base = base.rstrip("/")
    suffix = secrets.token_hex(3)
    async with aiohttp.ClientSession() as session:
        token_a = await _register(session, base, f"jsa{suffix}")
        token_b = await _register(session, base, f"jsb{suffix}")
        user_b = (await _call(session, base, "GET", "/account/whoami", token=token_b))["user_id"]
        room_ids = []
        for i in range(rooms):
            body = {"name": f"js room {i}", "preset": "private_chat", "invite": [user_b]}
            created = await _call(session, base, "POST", "/createRoom", body, token_a)
            room_id = created["room_id"]
            await _call(session, base, "POST", f"/join/{quote(room_id)}", {}, token_b)
            room_ids.append(room_id)
        for i, room_id in enumerate(room_ids):
            path = f"/rooms/{quote(room_id)}/send/m.room.message/setup{i}"
            await _call(
                session, base, "PUT", path, {"msgtype": "m.text", "body": f"hi {i}"}, token_a
            )
    return Accounts(token_a, token_b, room_ids[::-1])


def node_or_fail() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the matrix-js-sdk test needs Node 20 or later")
    if not (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        pytest.fail(
            "tests/js/node_modules is missing: run `npm ci --prefix tests/js` "
            "(.ci/run does it) to install matrix-js-sdk for this test"
        )
    return node


async def run_script(node: str, *args: str) -> tuple[dict[str, Any], str]:
    """Run the Node script with `args`; return its JSON result (with its exit code) and
    its stderr."""
    proc = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        *args,
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{SCRIPT.name} did not finish within {RUN_TIMEOUT_S} s") from None
    stderr = err.decode(errors="replace")
    lines = out.decode(errors="replace").strip().splitlines()
    assert lines, (
        f"{SCRIPT.name} printed nothing (exit {proc.returncode}); stderr:\n{stderr[-4000:]}"
    )
    result: dict[str, Any] = json.loads(lines[-1])
    result["exit_code"] = proc.returncode
    return result, stderr


async def run_check(node: str, base: str, accounts: Accounts) -> tuple[dict[str, Any], str]:
    return await run_script(
        node,
        "--base-url",
        base,
        "--token-a",
        accounts.token_a,
        "--token-b",
        accounts.token_b,
        "--expect-order",
        ",".join(accounts.rooms_most_recent_first),
        "--timeout-ms",
        str(WAIT_MS),
    )


async def test_js_sdk_sliding_sync_keeps_list_and_receives_events(
    make_homeserver: HarnessFactory,
) -> None:
    node = node_or_fail()
    hs = await make_homeserver()
    base = str(hs.client.make_url("")).rstrip("/")
    accounts = await prepare_accounts(base)

    result, stderr = await run_check(node, base, accounts)

    failed = {
        name: result["checks"].get(name)
        for name in CHECKS
        if not result["checks"].get(name, {}).get("ok")
    }
    assert not failed and not result.get("error"), (
        f"js-sdk checks failed: {json.dumps(failed, indent=1)}\n"
        f"error: {result.get('error')}\nstderr tail:\n{stderr[-3000:]}"
    )
    assert result["ok"] is True and result["exit_code"] == 0
    assert result["checks"]["initial_list"]["rooms"] == accounts.rooms_most_recent_first
    third = accounts.rooms_most_recent_first[2]
    assert result["checks"]["moved_to_top"]["rooms"][0] == third


def test_missing_sdk_fails_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "JS_DIR", tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"npm ci --prefix tests/js"):
        node_or_fail()


async def test_script_reports_bad_input_and_exits_non_zero(
    make_homeserver: HarnessFactory,
) -> None:
    node = node_or_fail()
    hs = await make_homeserver()
    base = str(hs.client.make_url("")).rstrip("/")

    missing, _ = await run_script(node, "--base-url", base, "--token-a", "x")
    assert missing["ok"] is False and missing["exit_code"] == 2
    assert missing["error"] == "missing --token-b"

    bad, _ = await run_script(
        node, "--base-url", base, "--token-a", "nope", "--token-b", "nope", "--timeout-ms", "5000"
    )
    assert bad["ok"] is False and bad["exit_code"] == 1
    assert "401" in bad["error"] and "M_UNKNOWN_TOKEN" in bad["error"]


async def _main(base: str) -> int:
    """Run the same setup and script against any homeserver (e.g. Synapse)."""
    node = shutil.which("node") or "node"
    accounts = await prepare_accounts(base)
    result, _ = await run_check(node, base.rstrip("/"), accounts)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1])))
