"""The pure parts of single sign-on: user names as localparts, the client's
redirectUrl, CAS answers and attribute requirements."""

from __future__ import annotations

import pytest

from homeserver.errors import MatrixError
from homeserver.sso.cas import CasError, meets_requirements, parse_cas_response
from homeserver.sso.localparts import map_username_to_localpart
from homeserver.sso.redirect_urls import (
    check_client_redirect_url,
    display_url,
    is_trusted_client,
    with_login_token,
)
from tests.sso.support import CAS_FAILURE, cas_success


@pytest.mark.parametrize(
    ("username", "localpart"),
    [
        ("alice", "alice"),
        ("Alice", "alice"),
        ("cas_user!", "cas_user=21"),
        ("José", "jos=c3=a9"),
        ("a=b", "a=3db"),
        ("_hidden", "=5fhidden"),
        ("first.last+tag/x-y", "first.last+tag/x-y"),
        ("with space", "with=20space"),
    ],
)
def test_user_names_map_to_localparts_as_synapse_maps_them(username: str, localpart: str) -> None:
    assert map_username_to_localpart(username) == localpart


@pytest.mark.parametrize(
    "url",
    [
        "https://client?p=http%3A%2F%2Fserver",
        "http://localhost:8080/#/login",
        "element://vector/webapp/",
        "com.example.app:/callback",
    ],
)
def test_redirect_urls_a_browser_opens_are_accepted(url: str) -> None:
    assert check_client_redirect_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox",
        "file:///etc/passwd",
        "/relative/path",
        "//evil.example/x",
        "https:///no-host",
        "https://client/a b",
        "https://client/\nSet-Cookie:x",
        "https://client/" + "a" * 3000,
    ],
)
def test_redirect_urls_that_are_no_site_are_refused(url: str) -> None:
    with pytest.raises(MatrixError) as raised:
        check_client_redirect_url(url)
    assert raised.value.errcode == "M_INVALID_PARAM"


def test_the_login_token_is_added_to_the_query_replacing_any_other() -> None:
    assert (
        with_login_token("https://client?p=http%3A%2F%2Fserver", "T1")
        == "https://client?p=http%3A%2F%2Fserver&loginToken=T1"
    )
    assert with_login_token("https://c/x?loginToken=old&a=1#frag", "T2") == (
        "https://c/x?a=1&loginToken=T2#frag"
    )
    assert with_login_token("https://c/x?loginToken=a&loginToken=b", "T3") == (
        "https://c/x?loginToken=T3"
    )
    assert with_login_token("element://vector/webapp/", "T4") == (
        "element://vector/webapp/?loginToken=T4"
    )


def test_display_url_hides_the_query() -> None:
    assert display_url("https://client.example/app?x=1") == "client.example"
    assert display_url("element://vector/webapp/?loginToken=x#y") == "element://vector/webapp/"


def test_whitelisted_clients_match_whole_segments_only() -> None:
    whitelist = ["https://app.example.com", "https://other.example/path/"]
    assert is_trusted_client("https://app.example.com", whitelist)
    assert is_trusted_client("https://app.example.com/", whitelist)
    assert is_trusted_client("https://app.example.com?x=1", whitelist)
    assert is_trusted_client("https://other.example/path/login", whitelist)
    assert not is_trusted_client("https://app.example.com.evil.net/", whitelist)
    assert not is_trusted_client("https://app.example.community", whitelist)
    assert not is_trusted_client("https://other.example/pathology", whitelist)
    assert not is_trusted_client("https://app.example.com", [])


def test_a_cas_success_gives_the_user_and_attributes() -> None:
    body = cas_success("alice", {"name": "Alice A.", "group": ["staff", "admins"]})
    response = parse_cas_response(body.encode())
    assert response.username == "alice"
    assert response.attributes == {"name": ["Alice A."], "group": ["staff", "admins"]}


def test_a_cas_success_without_a_namespace_prefix_is_read_too() -> None:
    body = (
        b'<serviceResponse xmlns="http://www.yale.edu/tp/cas"><authenticationSuccess>'
        b"<user> bob </user></authenticationSuccess></serviceResponse>"
    )
    assert parse_cas_response(body).username == "bob"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (CAS_FAILURE.encode(), "unsuccessful_response"),
        (b"", "invalid_response"),
        (b"not xml at all", "invalid_response"),
        (b"<html><body>login</body></html>", "missing_service_response"),
        (b"<cas:serviceResponse xmlns:cas='x'/>", "unsuccessful_response"),
        (
            b"<cas:serviceResponse xmlns:cas='x'><cas:authenticationSuccess>"
            b"<cas:attributes/></cas:authenticationSuccess></cas:serviceResponse>",
            "no_user",
        ),
        (
            b"<cas:serviceResponse xmlns:cas='x'><cas:authenticationSuccess>"
            b"<cas:user>  </cas:user></cas:authenticationSuccess></cas:serviceResponse>",
            "no_user",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]>'
            b"<cas:serviceResponse xmlns:cas='x'><cas:authenticationSuccess>"
            b"<cas:user>&a;</cas:user></cas:authenticationSuccess></cas:serviceResponse>",
            "invalid_response",
        ),
    ],
)
def test_anything_but_a_cas_success_is_a_cas_error(body: bytes, error: str) -> None:
    with pytest.raises(CasError) as raised:
        parse_cas_response(body)
    assert raised.value.error == error


def test_required_attributes_need_presence_and_the_value_when_given() -> None:
    attributes: dict[str, list[str | None]] = {"group": ["staff", "admins"], "dept": [None]}
    assert meets_requirements(attributes, {})
    assert meets_requirements(attributes, {"group": "admins", "dept": None})
    assert not meets_requirements(attributes, {"group": "board"})
    assert not meets_requirements(attributes, {"missing": None})
