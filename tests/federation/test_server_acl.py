"""The pure server ACL matcher (m.room.server_acl; s2s "Server ACLs")."""

from __future__ import annotations

import pytest

from federation.server_acl import glob_matches, host_without_port, server_allowed_by_acl


def test_no_acl_allows_everyone() -> None:
    assert server_allowed_by_acl("evil.com", None)


@pytest.mark.parametrize(
    ("server", "allowed"),
    [
        ("good.org", True),
        ("evil.com", False),
        ("evil.com:8448", False),
        ("EVIL.COM", False),
        ("sub.evil.com", False),
        ("notevil.com", True),
        ("1.2.3.4", False),
        ("1.2.3.4:80", False),
        ("[::1]", False),
        ("[::1]:8448", False),
        ("x1.example", False),
        ("xy1.example", True),
    ],
)
def test_order_of_rules(server: str, allowed: bool) -> None:
    acl = {
        "allow": ["*"],
        "deny": ["evil.com", "*.evil.com", "x?.example"],
        "allow_ip_literals": False,
    }
    assert server_allowed_by_acl(server, acl) is allowed


def test_missing_allow_denies_everyone_and_ip_literals_default_to_allowed() -> None:
    assert not server_allowed_by_acl("good.org", {"deny": []})
    assert server_allowed_by_acl("1.2.3.4", {"allow": ["*"]})
    assert server_allowed_by_acl("1.2.3.4", {"allow": ["*"], "allow_ip_literals": "no"})


def test_allow_list_and_malformed_content() -> None:
    acl = {"allow": ["*.matrix.org", 7, None], "deny": "not a list"}
    assert server_allowed_by_acl("a.matrix.org:443", acl)
    assert not server_allowed_by_acl("matrix.org", acl)
    assert not server_allowed_by_acl("other.org", acl)


def test_glob_and_port_helpers() -> None:
    assert glob_matches("a*c", "abbbc") and glob_matches("a*c", "ac")
    assert not glob_matches("a?c", "ac") and glob_matches("a?c", "abc")
    assert glob_matches("a.c", "a.c") and not glob_matches("a.c", "abc")
    assert host_without_port("[::1]:80") == "[::1]"
    assert host_without_port("host:80") == "host"
    assert host_without_port("host") == "host"
