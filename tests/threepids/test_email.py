"""Email validation through the HTTP API, with a real SMTP server: requestToken mails
a link, following it validates the session, a validated session is spent once (adding
the address, a password reset); every bad input leaves the data as it was."""

from __future__ import annotations

import html
from typing import Any

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.threepids.support import (
    V3,
    SmtpSink,
    bearer,
    email_homeserver,
    local_path,
    register,
    request_token,
    validate_email,
)

ADD = "/account/3pid/email/requestToken"
RESET = "/account/password/email/requestToken"
REGISTER = "/register/email/requestToken"


async def add_threepid(
    hs: HomeserverHarness, token: str, sid: str, client_secret: str = "s3cret"
) -> tuple[int, dict[str, Any]]:
    """POST /account/3pid/add through UIA with the password "pw" of @alice."""
    body: dict[str, Any] = {"sid": sid, "client_secret": client_secret}
    first = await hs.client.post(f"{V3}/account/3pid/add", json=body, headers=bearer(token))
    if first.status != 401:
        return first.status, await first.json()
    body["auth"] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw",
        "session": (await first.json())["session"],
    }
    response = await hs.client.post(f"{V3}/account/3pid/add", json=body, headers=bearer(token))
    return response.status, await response.json()


async def threepids(hs: HomeserverHarness, token: str) -> list[dict[str, Any]]:
    response = await hs.client.get(f"{V3}/account/3pid", headers=bearer(token))
    assert response.status == 200
    return list((await response.json())["threepids"])


async def password_login(hs: HomeserverHarness, body: dict[str, Any]) -> int:
    response = await hs.client.post(f"{V3}/login", json={"type": "m.login.password", **body})
    return response.status


async def test_add_email_then_log_in_with_it(
    make_homeserver: HarnessFactory, smtp: SmtpSink
) -> None:
    hs = await email_homeserver(make_homeserver, smtp)
    token = await register(hs, "alice")
    status, body = await request_token(hs, ADD, "Alice@Example.ORG")
    assert status == 200, body
    assert body["submit_url"].endswith("/add_threepid/email/submit_token")
    [mail] = smtp.mails
    assert mail.recipients == ["alice@example.org"]
    assert mail.message["From"] == "Test HS <hs@test.local>"
    assert mail.message["Subject"] == "[test.local] Validate your email"
    assert html.escape(mail.link) in mail.part("text/html")
    assert mail.link_query["sid"] == body["sid"]
    assert "/_matrix/client/unstable/add_threepid/email/submit_token" in mail.link

    page = await hs.client.get(local_path(mail.link))
    assert page.status == 200
    assert "text/html" in page.headers["Content-Type"]
    assert await threepids(hs, token) == []  # validated, not added yet

    assert await add_threepid(hs, token, body["sid"]) == (200, {})
    [added] = await threepids(hs, token)
    assert (added["medium"], added["address"]) == ("email", "alice@example.org")

    identifier = {"type": "m.id.thirdparty", "medium": "email", "address": "ALICE@example.org"}
    assert await password_login(hs, {"identifier": identifier, "password": "pw"}) == 200
    legacy = {"medium": "email", "address": "alice@example.org", "password": "pw"}
    assert await password_login(hs, legacy) == 200
    assert await password_login(hs, {**legacy, "password": "wrong"}) == 403
    unknown = {**legacy, "address": "nobody@example.org"}
    assert await password_login(hs, unknown) == 403

    # a spent session adds nothing again, and the address is now in use
    assert (await add_threepid(hs, token, body["sid"]))[1]["errcode"] == "M_THREEPID_AUTH_FAILED"
    status, body = await request_token(hs, ADD, "alice@example.org", "other")
    assert (status, body["errcode"]) == (400, "M_THREEPID_IN_USE")
    status, body = await request_token(hs, REGISTER, "alice@example.org", "other")
    assert (status, body["errcode"]) == (400, "M_THREEPID_IN_USE")

    # deleting it: no identity server knew it
    response = await hs.client.post(
        f"{V3}/account/3pid/delete",
        json={"medium": "email", "address": "alice@example.org"},
        headers=bearer(token),
    )
    assert (await response.json()) == {"id_server_unbind_result": "no-support"}
    assert await threepids(hs, token) == []
    assert await password_login(hs, legacy) == 403


async def test_send_attempt_is_idempotent(make_homeserver: HarnessFactory, smtp: SmtpSink) -> None:
    hs = await email_homeserver(make_homeserver, smtp)
    _, first = await request_token(hs, REGISTER, "new@example.org", send_attempt=1)
    _, again = await request_token(hs, REGISTER, "new@example.org", send_attempt=1)
    assert again["sid"] == first["sid"]
    assert len(smtp.mails) == 1
    _, retry = await request_token(hs, REGISTER, "new@example.org", send_attempt=2)
    assert retry["sid"] == first["sid"]
    assert len(smtp.mails) == 2
    # both mailed tokens work until one is used
    assert smtp.mails[0].link_query["token"] != smtp.mails[1].link_query["token"]
    page = await hs.client.get(local_path(smtp.mails[0].link))
    assert page.status == 200
    used = await hs.client.get(local_path(smtp.mails[1].link))
    assert used.status == 400


async def test_bad_links_validate_nothing(make_homeserver: HarnessFactory, smtp: SmtpSink) -> None:
    hs = await email_homeserver(
        make_homeserver, smtp, email={**_email(smtp), "validation_token_lifetime": "10m"}
    )
    token = await register(hs, "alice")
    _, body = await request_token(hs, ADD, "alice@example.org")
    query = smtp.mails[0].link_query
    path = "/_matrix/client/unstable/add_threepid/email/submit_token"

    async def submit(**changes: str) -> tuple[int, str]:
        response = await hs.client.get(path, params={**query, **changes})
        return response.status, await response.text()

    assert await submit(client_secret="wrong") == (
        400,
        _page_with("This client_secret does not match the provided session_id"),
    )
    status, text = await submit(sid="unknown")
    assert status == 400 and "Unknown session_id" in text
    status, text = await submit(token="forged")
    assert status == 400 and "Validation token not found or has expired" in text
    status, text = await submit(client_secret="bad secret!")
    assert status == 400 and "client_secret" in text
    # none of these validated the session
    status, answer = await add_threepid(hs, token, body["sid"])
    assert (status, answer["errcode"]) == (400, "M_THREEPID_AUTH_FAILED")

    hs.clock.advance(11 * 60)
    status, text = await submit()
    assert status == 400 and "expired" in text
    assert (await add_threepid(hs, token, body["sid"]))[1]["errcode"] == "M_THREEPID_AUTH_FAILED"
    assert await threepids(hs, token) == []


def _email(smtp: SmtpSink) -> dict[str, Any]:
    return {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "notif_from": "hs@test.local"}


def _page_with(reason: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Validation failed</title></head>\n<body>\n"
        f"<p>The link could not be used: {reason}. Ask your client for a new mail.</p>\n"
        "</body></html>"
    )


async def test_submit_url_takes_json(make_homeserver: HarnessFactory, smtp: SmtpSink) -> None:
    hs = await email_homeserver(make_homeserver, smtp)
    _, body = await request_token(hs, REGISTER, "new@example.org")
    submit_path = local_path(body["submit_url"])
    query = smtp.mails[0].link_query
    wrong = await hs.client.post(submit_path, json={**query, "token": "nope"})
    assert (wrong.status, (await wrong.json())["errcode"]) == (400, "M_UNKNOWN")
    ok = await hs.client.post(submit_path, json=query)
    assert (ok.status, await ok.json()) == (200, {"success": True})


async def test_next_link_redirects_with_the_sid(
    make_homeserver: HarnessFactory, smtp: SmtpSink
) -> None:
    hs = await email_homeserver(make_homeserver, smtp)
    _, body = await request_token(hs, REGISTER, "new@example.org", next_link="https://app/done")
    page = await hs.client.get(local_path(smtp.mails[0].link), allow_redirects=False)
    assert page.status == 302
    assert page.headers["Location"] == f"https://app/done?sid={body['sid']}"
    status, answer = await request_token(hs, REGISTER, "x@example.org", next_link="file:///etc")
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")


async def test_request_token_refusals(make_homeserver: HarnessFactory, smtp: SmtpSink) -> None:
    hs = await email_homeserver(
        make_homeserver,
        smtp,
        allowed_local_3pids=[{"medium": "email", "pattern": r".*@example\.org$"}],
        rc_3pid_validation={"per_second": 0.001, "burst_count": 3},
    )
    status, body = await request_token(hs, RESET, "nobody@example.org")
    assert (status, body["errcode"]) == (400, "M_THREEPID_NOT_FOUND")
    status, body = await request_token(hs, REGISTER, "a@elsewhere.com")
    assert (status, body["errcode"]) == (403, "M_THREEPID_DENIED")
    status, body = await request_token(hs, REGISTER, "a@example.org", "not a secret")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await request_token(hs, REGISTER, "no-at-sign")
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    response = await hs.client.post(f"{V3}{REGISTER}", json={"email": "a@example.org"})
    assert (await response.json())["errcode"] == "M_MISSING_PARAM"
    # rc_3pid_validation, per client address: the RESET above spent one
    assert (await request_token(hs, REGISTER, "a@example.org"))[0] == 200
    assert (await request_token(hs, REGISTER, "a@example.org", send_attempt=2))[0] == 200
    status, body = await request_token(hs, REGISTER, "a@example.org", send_attempt=3)
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")
    assert len(smtp.mails) == 2


async def test_without_email_config(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver()
    token = await register(hs, "alice")
    body = {"email": "a@example.org", "client_secret": "x", "send_attempt": 1}
    add = await hs.client.post(f"{V3}{ADD}", json=body, headers=bearer(token))
    assert (add.status, (await add.json())["errcode"]) == (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
    for path in (REGISTER, RESET):
        response = await hs.client.post(f"{V3}{path}", json=body)
        assert response.status == 400
    # phone numbers without a delegate
    msisdn = {"country": "GB", "phone_number": "07700 900123", "client_secret": "x"}
    response = await hs.client.post(
        f"{V3}/register/msisdn/requestToken", json={**msisdn, "send_attempt": 1}
    )
    assert (await response.json())["errcode"] == "M_THREEPID_MEDIUM_NOT_SUPPORTED"
    response = await hs.client.post(
        f"{V3}/register/msisdn/requestToken",
        json={**msisdn, "phone_number": "not a number", "send_attempt": 1},
    )
    assert (await response.json())["errcode"] == "M_INVALID_PARAM"


async def test_3pid_changes_can_be_disabled(
    make_homeserver: HarnessFactory, smtp: SmtpSink
) -> None:
    hs = await email_homeserver(make_homeserver, smtp, enable_3pid_changes=False)
    token = await register(hs, "alice")
    response = await hs.client.post(
        f"{V3}{ADD}",
        json={"email": "a@example.org", "client_secret": "x", "send_attempt": 1},
        headers=bearer(token),
    )
    assert (response.status, (await response.json())["errcode"]) == (400, "M_FORBIDDEN")
    assert smtp.mails == []


async def test_password_reset_by_email(make_homeserver: HarnessFactory, smtp: SmtpSink) -> None:
    hs = await email_homeserver(make_homeserver, smtp)
    token = await register(hs, "alice")
    sid = await validate_email(hs, smtp, ADD, "alice@example.org")
    assert (await add_threepid(hs, token, sid))[0] == 200

    seen = len(smtp.mails)
    status, body = await request_token(hs, RESET, "Alice@example.org", "reset")
    assert status == 200, body
    mail = await smtp.next_mail(seen)
    assert mail.message["Subject"] == "[test.local] Password reset"
    assert "/_synapse/client/password_reset/email/submit_token" in mail.link

    reset: dict[str, Any] = {"new_password": "new pw", "logout_devices": True}
    first = await hs.client.post(f"{V3}/account/password", json=reset)
    assert first.status == 401
    state = await first.json()
    assert state["flows"] == [{"stages": ["m.login.email.identity"]}]
    creds = {"sid": body["sid"], "client_secret": "reset"}
    reset["auth"] = {
        "type": "m.login.email.identity",
        "threepid_creds": creds,
        "session": state["session"],
    }
    # the link was not followed yet: the stage fails, the password stays
    early = await hs.client.post(f"{V3}/account/password", json=reset)
    assert (early.status, (await early.json())["errcode"]) == (401, "M_UNAUTHORIZED")
    assert await password_login(hs, {"user": "alice", "password": "pw"}) == 200

    assert (await hs.client.get(local_path(mail.link))).status == 200
    wrong = {**reset, "auth": {**reset["auth"], "threepid_creds": {**creds, "client_secret": "x"}}}
    assert (await hs.client.post(f"{V3}/account/password", json=wrong)).status == 401
    done = await hs.client.post(f"{V3}/account/password", json=reset)
    assert done.status == 200, await done.text()
    assert await password_login(hs, {"user": "alice", "password": "pw"}) == 403
    assert await password_login(hs, {"user": "alice", "password": "new pw"}) == 200
    whoami = await hs.client.get(f"{V3}/account/whoami", headers=bearer(token))
    assert whoami.status == 401  # logout_devices

    # the session was spent: it resets nothing again
    again = await hs.client.post(f"{V3}/account/password", json={"new_password": "x"})
    reset["auth"]["session"] = (await again.json())["session"]
    reset["new_password"] = "third"
    replay = await hs.client.post(f"{V3}/account/password", json=reset)
    assert replay.status == 401
    assert await password_login(hs, {"user": "alice", "password": "new pw"}) == 200


async def test_mail_failure_is_an_error_and_stores_nothing(
    make_homeserver: HarnessFactory, smtp: SmtpSink
) -> None:
    hs = await email_homeserver(
        make_homeserver, smtp, email={**_email(smtp), "require_transport_security": True}
    )
    status, body = await request_token(hs, REGISTER, "new@example.org")
    assert (status, body["errcode"]) == (500, "M_UNKNOWN")
    assert smtp.mails == []
    assert (
        await hs.server.stores.threepid_validation.unvalidated_session(
            "email", "s3cret", "new@example.org"
        )
        is None
    )
