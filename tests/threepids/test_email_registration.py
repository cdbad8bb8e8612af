"""Registering with an email address (the flows of tests/registration with the email
stage of tests/threepids): the 401 offers m.login.email.identity, a validated session
completes it once, the account gets the address and logs in with it;
registrations_require_3pid makes the email flow the only one."""

from __future__ import annotations

from typing import Any

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.threepids.support import V3, SmtpSink, email_homeserver, validate_email

EMAIL_STAGE = "m.login.email.identity"
REGISTER = "/register/email/requestToken"


async def post_register(hs: HomeserverHarness, body: dict[str, Any]) -> tuple[int, Any]:
    response = await hs.client.post(f"{V3}/register", json=body)
    return response.status, await response.json()


def flows_of(body: dict[str, Any]) -> list[list[str]]:
    return [flow["stages"] for flow in body["flows"]]


async def test_register_with_a_validated_email(
    make_homeserver: HarnessFactory, smtp: SmtpSink
) -> None:
    hs = await email_homeserver(make_homeserver, smtp)
    status, first = await post_register(hs, {"username": "carol", "password": "pw"})
    assert status == 401
    assert [EMAIL_STAGE] in flows_of(first) and ["m.login.dummy"] in flows_of(first)
    sid = await validate_email(hs, smtp, REGISTER, "Carol@Example.org")
    creds = {"sid": sid, "client_secret": "s3cret"}
    # a wrong client secret does not complete the stage, and registers nobody
    status, refused = await post_register(
        hs,
        {
            "auth": {
                "type": EMAIL_STAGE,
                "threepid_creds": {"sid": sid, "client_secret": "wrong"},
                "session": first["session"],
            }
        },
    )
    assert status == 401 and refused["completed"] == []
    assert await hs.server.stores.accounts.get_user("@carol:test.local") is None
    # (clients send the request again with each stage: the password is not kept)
    status, done = await post_register(
        hs,
        {
            "username": "carol",
            "password": "pw",
            "auth": {"type": EMAIL_STAGE, "threepid_creds": creds, "session": first["session"]},
        },
    )
    assert status == 200, done
    assert done["user_id"] == "@carol:test.local"
    listed = await hs.client.get(
        f"{V3}/account/3pid", headers={"Authorization": f"Bearer {done['access_token']}"}
    )
    [threepid] = (await listed.json())["threepids"]
    assert (threepid["medium"], threepid["address"]) == ("email", "carol@example.org")
    login = await hs.client.post(
        f"{V3}/login",
        json={
            "type": "m.login.password",
            "identifier": {
                "type": "m.id.thirdparty",
                "medium": "email",
                "address": "carol@example.org",
            },
            "password": "pw",
        },
    )
    assert login.status == 200
    assert (await login.json())["user_id"] == "@carol:test.local"
    # the spent session cannot register another account
    status, again = await post_register(hs, {"username": "dave", "password": "pw"})
    status, spent = await post_register(
        hs,
        {"auth": {"type": EMAIL_STAGE, "threepid_creds": creds, "session": again["session"]}},
    )
    assert status == 401 and spent["completed"] == []
    assert await hs.server.stores.accounts.get_user("@dave:test.local") is None


async def test_registrations_require_3pid_offers_only_email(
    make_homeserver: HarnessFactory, smtp: SmtpSink
) -> None:
    hs = await email_homeserver(make_homeserver, smtp, registrations_require_3pid=["email"])
    status, first = await post_register(hs, {"username": "erin", "password": "pw"})
    assert status == 401
    assert flows_of(first) == [[EMAIL_STAGE]]
    status, refused = await post_register(
        hs, {"auth": {"type": "m.login.dummy", "session": first["session"]}}
    )
    assert status == 401 and refused["completed"] == []
    assert await hs.server.stores.accounts.get_user("@erin:test.local") is None
