"""m.login.recaptcha: the stage, its siteverify check and its fallback page."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import HarnessFactory
from tests.registration.support import (
    GOOD,
    PRIVATE_KEY,
    PUBLIC_KEY,
    V3,
    FakeSiteverify,
    captcha_homeserver,
    count_users,
    stage,
    start,
)

CAPTCHA = "m.login.recaptcha"
FALLBACK = f"{V3}/auth/{CAPTCHA}/fallback/web"


async def test_captcha_then_dummy_registers(
    make_homeserver: HarnessFactory, siteverify: FakeSiteverify
) -> None:
    hs = await captcha_homeserver(make_homeserver, siteverify)
    state = await start(hs)
    assert state["flows"] == [{"stages": [CAPTCHA, "m.login.dummy"]}]
    assert state["params"] == {CAPTCHA: {"public_key": PUBLIC_KEY}}
    # the dummy stage alone does not register
    status, body = await stage(hs, state["session"], {"type": "m.login.dummy"})
    assert status == 401 and body["completed"] == ["m.login.dummy"]
    status, body = await stage(hs, state["session"], {"type": CAPTCHA, "response": GOOD})
    assert status == 200, body
    assert body["user_id"] == "@alice:test.local" and body["access_token"]
    [form] = siteverify.forms
    assert form == {"secret": PRIVATE_KEY, "response": GOOD, "remoteip": "127.0.0.1"}


# (what siteverify answers, expected errcode of the 401)
BAD_ANSWERS: list[tuple[dict[str, Any], str]] = [
    ({"answer": {"success": False}}, "M_UNAUTHORIZED"),
    ({"answer": {"success": "true"}}, "M_UNAUTHORIZED"),
    ({"answer": {"hostname": "x"}}, "M_UNAUTHORIZED"),
    ({"answer": [True]}, "M_UNAUTHORIZED"),
    ({"raw": "not json"}, "M_UNAUTHORIZED"),
    ({"raw": "x" * 70_000}, "M_UNAUTHORIZED"),
    ({"answer": {"success": True}, "status": 500}, "M_UNAUTHORIZED"),
]


@pytest.mark.parametrize(("override", "errcode"), BAD_ANSWERS)
async def test_siteverify_answers(
    make_homeserver: HarnessFactory,
    siteverify: FakeSiteverify,
    override: dict[str, Any],
    errcode: str,
) -> None:
    hs = await captcha_homeserver(make_homeserver, siteverify)
    for key, value in override.items():
        setattr(siteverify, key, value)
    state = await start(hs)
    status, body = await stage(hs, state["session"], {"type": CAPTCHA, "response": GOOD})
    assert status == 401, body
    assert body["errcode"] == errcode and body["error"] == "Captcha authentication failed"
    assert body["session"] == state["session"] and body["completed"] == []
    assert body["flows"] == state["flows"]
    assert await count_users(hs) == 0


@pytest.mark.parametrize(
    ("auth", "errcode"),
    [
        ({}, "M_CAPTCHA_NEEDED"),
        ({"response": ""}, "M_CAPTCHA_NEEDED"),
        ({"response": 5}, "M_CAPTCHA_NEEDED"),
        ({"response": ["x"]}, "M_CAPTCHA_NEEDED"),
        ({"response": "wrong"}, "M_UNAUTHORIZED"),
    ],
)
async def test_bad_captcha_responses(
    make_homeserver: HarnessFactory,
    siteverify: FakeSiteverify,
    auth: dict[str, Any],
    errcode: str,
) -> None:
    hs = await captcha_homeserver(make_homeserver, siteverify)
    state = await start(hs)
    status, body = await stage(hs, state["session"], {"type": CAPTCHA, **auth})
    assert status == 401 and body["errcode"] == errcode, body
    assert body["completed"] == []
    assert await count_users(hs) == 0
    # the session still works
    status, body = await stage(hs, state["session"], {"type": CAPTCHA, "response": GOOD})
    assert status == 401 and body["completed"] == [CAPTCHA]


async def test_siteverify_on_a_blocked_address_is_not_asked(
    make_homeserver: HarnessFactory, siteverify: FakeSiteverify
) -> None:
    """The default ip_range_blacklist covers loopback: the captcha cannot be checked."""
    hs = await captcha_homeserver(make_homeserver, siteverify, ip_range_whitelist=[])
    state = await start(hs)
    status, body = await stage(hs, state["session"], {"type": CAPTCHA, "response": GOOD})
    assert status == 401 and body["errcode"] == "M_UNAUTHORIZED"
    assert siteverify.forms == []


async def test_siteverify_unreachable(
    make_homeserver: HarnessFactory, siteverify: FakeSiteverify
) -> None:
    hs = await captcha_homeserver(
        make_homeserver, siteverify, recaptcha_siteverify_api="http://127.0.0.1:1/siteverify"
    )
    state = await start(hs)
    status, body = await stage(hs, state["session"], {"type": CAPTCHA, "response": GOOD})
    assert status == 401 and body["errcode"] == "M_UNAUTHORIZED"


async def test_captcha_checked_even_when_not_required(
    make_homeserver: HarnessFactory, siteverify: FakeSiteverify
) -> None:
    """With keys but without enable_registration_captcha, the stage is still checked
    and recorded (as Synapse, and SyTest's "Register with a recaptcha")."""
    hs = await captcha_homeserver(
        make_homeserver,
        siteverify,
        enable_registration_captcha=False,
        enable_registration_without_verification=True,
    )
    state = await start(hs)
    assert state["flows"] == [{"stages": ["m.login.dummy"]}] and state["params"] == {}
    status, body = await stage(hs, state["session"], {"type": CAPTCHA, "response": GOOD})
    assert status == 401 and body["completed"] == [CAPTCHA]
    # a stage sent without a session starts one
    resp = await hs.client.post(
        f"{V3}/register",
        json={"username": "bob", "password": "pw", "auth": {"type": CAPTCHA, "response": GOOD}},
    )
    assert resp.status == 401 and (await resp.json())["completed"] == [CAPTCHA]
    assert len(siteverify.forms) == 2


async def test_without_captcha_keys_the_stage_is_unknown(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    state = await start(hs)
    status, body = await stage(hs, state["session"], {"type": CAPTCHA, "response": GOOD})
    assert status == 401 and body["errcode"] == "M_UNRECOGNIZED"
    resp = await hs.client.get(FALLBACK, params={"session": state["session"]})
    assert resp.status == 404 and (await resp.json())["errcode"] == "M_UNRECOGNIZED"


# -- the fallback page ----------------------------------------------------------------


async def test_fallback_page_completes_the_stage(
    make_homeserver: HarnessFactory, siteverify: FakeSiteverify
) -> None:
    hs = await captcha_homeserver(make_homeserver, siteverify)
    state = await start(hs)
    session = state["session"]
    page = await hs.client.get(FALLBACK, params={"session": session})
    assert page.status == 200 and page.content_type == "text/html"
    text = await page.text()
    assert f'data-sitekey="{PUBLIC_KEY}"' in text and f'value="{session}"' in text
    assert f'action="{FALLBACK}"' in text
    bad = await hs.client.post(FALLBACK, data={"session": session, "g-recaptcha-response": "wrong"})
    assert bad.status == 200 and "Captcha authentication failed" in await bad.text()
    done = await hs.client.post(FALLBACK, data={"session": session, "g-recaptcha-response": GOOD})
    assert done.status == 200 and "authDone" in await done.text()
    status, body = await stage(hs, session, {"type": "m.login.dummy"})
    assert status == 200, body


@pytest.mark.parametrize(
    ("data", "status", "errcode"),
    [
        ({}, 400, "M_MISSING_PARAM"),
        ({"g-recaptcha-response": GOOD}, 400, "M_MISSING_PARAM"),
        ({"session": "S"}, 400, "M_MISSING_PARAM"),
        ({"session": "S", "g-recaptcha-response": ""}, 400, "M_MISSING_PARAM"),
        ({"session": "no-such-session", "g-recaptcha-response": GOOD}, 400, "M_UNKNOWN"),
    ],
)
async def test_fallback_bad_posts(
    make_homeserver: HarnessFactory,
    siteverify: FakeSiteverify,
    data: dict[str, str],
    status: int,
    errcode: str,
) -> None:
    hs = await captcha_homeserver(make_homeserver, siteverify)
    state = await start(hs)
    form = {k: state["session"] if v == "S" else v for k, v in data.items()}
    resp = await hs.client.post(FALLBACK, data=form)
    assert resp.status == status and (await resp.json())["errcode"] == errcode
    status_, body = await stage(hs, state["session"], {"type": "m.login.dummy"})
    assert status_ == 401 and body["completed"] == ["m.login.dummy"]


async def test_fallback_get_needs_a_session(
    make_homeserver: HarnessFactory, siteverify: FakeSiteverify
) -> None:
    hs = await captcha_homeserver(make_homeserver, siteverify)
    resp = await hs.client.get(FALLBACK)
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_MISSING_PARAM"
    resp = await hs.client.get(f"{V3}/auth/m.login.unknown/fallback/web", params={"session": "x"})
    assert resp.status == 404 and (await resp.json())["errcode"] == "M_UNRECOGNIZED"
