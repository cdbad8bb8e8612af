"""X-Matrix Authorization header: signing and the spec's parsing rules
(server-server API "Request Authentication")."""

from __future__ import annotations

import pytest
from signedjson.key import generate_signing_key

from federation.xmatrix import parse_x_matrix, request_object, sign_request
from homeserver.events.errors import SignatureError
from homeserver.events.signing import ServerKey, verify_json


def test_signed_header_verifies_over_the_request_object() -> None:
    key = generate_signing_key("k1")
    content = {"pdus": [], "edus": [{"x": "é"}]}
    header = sign_request("origin.test", key, "dest.test", "PUT", "/_matrix/x?a=1", content)
    assert header.startswith('X-Matrix origin="origin.test",destination="dest.test",')
    creds = parse_x_matrix(header)
    assert (creds.origin, creds.destination, creds.key) == (
        "origin.test",
        "dest.test",
        "ed25519:k1",
    )
    obj = request_object("PUT", "/_matrix/x?a=1", "origin.test", "dest.test", content)
    obj["signatures"] = {"origin.test": {creds.key: creds.sig}}
    lookup = {creds.key: ServerKey(key.verify_key)}
    verify_json(obj, "origin.test", lambda _s, k: lookup.get(k))
    obj["uri"] = "/_matrix/x?a=2"
    with pytest.raises(SignatureError):
        verify_json(obj, "origin.test", lambda _s, k: lookup.get(k))


def test_request_object_without_content_has_no_content_key() -> None:
    assert "content" not in request_object("GET", "/p", "o", "d")
    assert request_object("get", "/p", "o", "d", {})["content"] == {}
    assert request_object("get", "/p", "o", "d")["method"] == "GET"


@pytest.mark.parametrize(
    "header",
    [
        'X-Matrix origin="a.test",destination="b.test",key="ed25519:k",sig="c2ln"',
        "X-Matrix origin=a.test,destination=b.test,key=ed25519:k,sig=c2ln",
        'X-Matrix   Origin="a.test" , DESTINATION="b.test",\tkey="ed25519:k",sig=c2ln',
        'x-matrix sig="c2ln",key="ed25519:k",destination="b.test",origin="a.test",extra="x"',
        'X-Matrix origin="a\\.test",destination="b.test",key="ed25519:k",sig="c2ln"',
    ],
)
def test_parse_variants(header: str) -> None:
    creds = parse_x_matrix(header)
    assert creds.origin == "a.test"
    assert creds.destination == "b.test"
    assert creds.key == "ed25519:k"
    assert creds.sig == "c2ln"


def test_parse_without_destination_and_with_port_in_origin() -> None:
    creds = parse_x_matrix("X-Matrix origin=a.test:8448,key=ed25519:k,sig=abc+/=")
    assert creds.origin == "a.test:8448"
    assert creds.destination is None
    assert creds.sig == "abc+/="


def test_quoted_values_unescape_and_keep_commas() -> None:
    creds = parse_x_matrix('X-Matrix origin="a\\"b,c",key="k",sig="s"')
    assert creds.origin == 'a"b,c'


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer abc",
        "X-Matrix",
        "X-Matrixorigin=a,key=k,sig=s",
        "X-Matrix origin=a,key=k",  # no sig
        'X-Matrix origin="a,key=k,sig=s',  # unterminated quote
        "X-Matrix origin=a key=k,sig=s",  # missing comma
        "X-Matrix origin,key=k,sig=s",  # no value
        'X-Matrix origin=a"b,key=k,sig=s',
    ],
)
def test_parse_rejects_malformed(header: str) -> None:
    with pytest.raises(ValueError):
        parse_x_matrix(header)
