"""Server discovery, every branch of the spec's algorithm (server-server API
"Resolving server names"), with a fake DNS resolver and well-known fetcher."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import pytest

from federation.discovery import (
    WELL_KNOWN_DEFAULT_CACHE_S,
    WELL_KNOWN_MAX_CACHE_S,
    WELL_KNOWN_MIN_CACHE_S,
    HttpAnswer,
    ServerResolver,
    SrvRecord,
    order_srv_records,
    parse_well_known,
    well_known_cache_seconds,
)
from homeserver.clock import FakeClock


@dataclass
class FakeDns:
    srv: dict[str, list[SrvRecord]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        self.asked.append(name)
        return list(self.srv.get(name, []))


@dataclass
class FakeWellKnown:
    answers: dict[str, HttpAnswer | Exception] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    async def fetch_well_known(self, hostname: str) -> HttpAnswer:
        self.fetched.append(hostname)
        answer = self.answers.get(hostname, HttpAnswer(404, {}, b""))
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(server: str, headers: dict[str, str] | None = None) -> HttpAnswer:
    return HttpAnswer(200, headers or {}, json.dumps({"m.server": server}).encode())


def make(
    srv: dict[str, list[SrvRecord]] | None = None,
    wk: dict[str, HttpAnswer | Exception] | None = None,
) -> tuple[ServerResolver, FakeDns, FakeWellKnown, FakeClock]:
    dns, well_known, clock = FakeDns(srv or {}), FakeWellKnown(wk or {}), FakeClock()
    return ServerResolver(dns, well_known, clock, rng=random.Random(1)), dns, well_known, clock


async def test_step1_ip_literals() -> None:
    resolver, dns, wk, _ = make()
    r = await resolver.resolve("1.2.3.4")
    assert (r.step, r.targets, r.host_header, r.tls_name) == (
        "1",
        (("1.2.3.4", 8448),),
        "1.2.3.4",
        "1.2.3.4",
    )
    r = await resolver.resolve("1.2.3.4:99")
    assert (r.targets, r.host_header) == ((("1.2.3.4", 99),), "1.2.3.4:99")
    r = await resolver.resolve("[2001:db8::1]:443")
    assert r.targets == (("2001:db8::1", 443),)
    assert r.host_header == "[2001:db8::1]:443"
    assert r.tls_name == "2001:db8::1"
    r = await resolver.resolve("[::1]")
    assert r.targets == (("::1", 8448),)
    assert dns.asked == [] and wk.fetched == []


async def test_step2_explicit_port_skips_well_known_and_srv() -> None:
    resolver, dns, wk, _ = make(wk={"example.org": ok("other.org")})
    r = await resolver.resolve("example.org:1234")
    assert r.step == "2"
    assert r.targets == (("example.org", 1234),)
    assert r.host_header == "example.org:1234"
    assert r.tls_name == "example.org"
    assert dns.asked == [] and wk.fetched == []


async def test_step3_1_delegated_ip_literal() -> None:
    resolver, dns, _, _ = make(wk={"example.org": ok("10.0.0.1")})
    r = await resolver.resolve("example.org")
    assert (r.step, r.targets, r.host_header, r.tls_name) == (
        "3.1",
        (("10.0.0.1", 8448),),
        "10.0.0.1",
        "10.0.0.1",
    )
    resolver, _, _, _ = make(wk={"example.org": ok("[2001:db8::2]:8449")})
    r = await resolver.resolve("example.org")
    assert (r.targets, r.host_header) == ((("2001:db8::2", 8449),), "[2001:db8::2]:8449")
    assert dns.asked == []


async def test_step3_2_delegated_with_port() -> None:
    resolver, dns, _, _ = make(wk={"example.org": ok("matrix.example.org:8443")})
    r = await resolver.resolve("example.org")
    assert r.step == "3.2"
    assert r.targets == (("matrix.example.org", 8443),)
    assert r.host_header == "matrix.example.org:8443"
    assert r.tls_name == "matrix.example.org"
    assert dns.asked == []


async def test_step3_3_delegated_srv_matrix_fed() -> None:
    resolver, dns, _, _ = make(
        srv={"_matrix-fed._tcp.matrix.example.org": [SrvRecord(10, 0, "host.example.net.", 443)]},
        wk={"example.org": ok("matrix.example.org")},
    )
    r = await resolver.resolve("example.org")
    assert r.step == "3.3"
    assert r.targets == (("host.example.net", 443),)
    assert r.host_header == "matrix.example.org"
    assert r.tls_name == "matrix.example.org"
    assert dns.asked == ["_matrix-fed._tcp.matrix.example.org"]


async def test_step3_4_delegated_deprecated_srv() -> None:
    resolver, dns, _, _ = make(
        srv={"_matrix._tcp.matrix.example.org": [SrvRecord(10, 0, "old.example.net", 8000)]},
        wk={"example.org": ok("matrix.example.org")},
    )
    r = await resolver.resolve("example.org")
    assert r.step == "3.4"
    assert r.targets == (("old.example.net", 8000),)
    assert r.host_header == r.tls_name == "matrix.example.org"
    assert dns.asked == ["_matrix-fed._tcp.matrix.example.org", "_matrix._tcp.matrix.example.org"]


async def test_step3_5_delegated_without_srv() -> None:
    resolver, _, _, _ = make(wk={"example.org": ok("matrix.example.org")})
    r = await resolver.resolve("example.org")
    assert r.step == "3.5"
    assert r.targets == (("matrix.example.org", 8448),)
    assert r.host_header == r.tls_name == "matrix.example.org"


async def test_step4_srv_of_the_hostname_without_well_known() -> None:
    resolver, dns, _, _ = make(
        srv={
            "_matrix-fed._tcp.example.org": [SrvRecord(10, 0, "fed.example.net", 8448)],
            "_matrix._tcp.example.org": [SrvRecord(10, 0, "old.example.net", 8448)],
        }
    )
    r = await resolver.resolve("example.org")
    assert r.step == "4"
    assert r.targets == (("fed.example.net", 8448),)
    assert r.host_header == r.tls_name == "example.org"
    assert dns.asked == ["_matrix-fed._tcp.example.org"]


async def test_step5_deprecated_srv_of_the_hostname() -> None:
    resolver, _, _, _ = make(
        srv={"_matrix._tcp.example.org": [SrvRecord(10, 0, "old.example.net", 1000)]}
    )
    r = await resolver.resolve("example.org")
    assert r.step == "5"
    assert r.targets == (("old.example.net", 1000),)
    assert r.host_header == r.tls_name == "example.org"


async def test_step6_hostname_on_8448() -> None:
    resolver, dns, wk, _ = make()
    r = await resolver.resolve("example.org")
    assert r.step == "6"
    assert r.targets == (("example.org", 8448),)
    assert r.host_header == r.tls_name == "example.org"
    assert wk.fetched == ["example.org"]
    assert dns.asked == ["_matrix-fed._tcp.example.org", "_matrix._tcp.example.org"]


@pytest.mark.parametrize(
    "answer",
    [
        HttpAnswer(404, {}, b'{"m.server": "x.org"}'),
        HttpAnswer(500, {}, b""),
        HttpAnswer(200, {}, b"not json"),
        HttpAnswer(200, {}, b'["m.server"]'),
        HttpAnswer(200, {}, b"{}"),
        HttpAnswer(200, {}, b'{"m.server": 5}'),
        HttpAnswer(200, {}, b'{"m.server": "bad host!"}'),
        HttpAnswer(200, {}, b'{"m.server": "x.org:99999999"}'),
        HttpAnswer(200, {}, b'{"m.server": "' + b"a" * 60_000 + b'"}'),
        OSError("connection refused"),
    ],
)
async def test_invalid_well_known_falls_through_to_srv(answer: HttpAnswer | Exception) -> None:
    resolver, _, _, _ = make(
        srv={"_matrix-fed._tcp.example.org": [SrvRecord(1, 0, "fed.example.net", 8448)]},
        wk={"example.org": answer},
    )
    r = await resolver.resolve("example.org")
    assert r.step == "4"
    assert r.host_header == "example.org"


def test_well_known_content_type_is_not_required() -> None:
    answer = HttpAnswer(200, {"Content-Type": "text/plain"}, b'{"m.server": "a.org:1"}')
    assert parse_well_known(answer) == "a.org:1"


async def test_well_known_is_cached_per_cache_control() -> None:
    resolver, _, wk, clock = make(
        wk={"example.org": ok("m.example.org:1", {"Cache-Control": "public, max-age=3600"})}
    )
    await resolver.resolve("example.org")
    clock.advance(3000)
    await resolver.resolve("example.org")
    assert wk.fetched == ["example.org"]
    clock.advance(601)
    await resolver.resolve("example.org")
    assert wk.fetched == ["example.org", "example.org"]


async def test_failed_well_known_is_cached_with_backoff() -> None:
    resolver, _, wk, clock = make()
    await resolver.resolve("example.org")
    await resolver.resolve("example.org")
    assert len(wk.fetched) == 1
    clock.advance(WELL_KNOWN_MIN_CACHE_S + 1)  # first failure: cached five minutes
    await resolver.resolve("example.org")
    assert len(wk.fetched) == 2
    clock.advance(WELL_KNOWN_MIN_CACHE_S + 1)  # second failure: ten minutes
    await resolver.resolve("example.org")
    assert len(wk.fetched) == 2
    clock.advance(3600)
    await resolver.resolve("example.org")
    assert len(wk.fetched) == 3
    # never more than an hour, however many failures
    for _ in range(10):
        clock.advance(3601)
        await resolver.resolve("example.org")
    assert len(wk.fetched) == 13


async def test_concurrent_lookups_share_one_fetch() -> None:
    import asyncio

    resolver, _, wk, _ = make(wk={"example.org": ok("m.example.org:1")})
    results = await asyncio.gather(*(resolver.resolve("example.org") for _ in range(5)))
    assert {r.host_header for r in results} == {"m.example.org:1"}
    assert wk.fetched == ["example.org"]


def test_cache_periods() -> None:
    now_ms = 1_700_000_000_000
    assert well_known_cache_seconds({}, now_ms) == WELL_KNOWN_DEFAULT_CACHE_S
    assert well_known_cache_seconds({"cache-control": "max-age=7200"}, now_ms) == 7200
    assert well_known_cache_seconds({"Cache-Control": "max-age=999999999"}, now_ms) == (
        WELL_KNOWN_MAX_CACHE_S
    )
    assert well_known_cache_seconds({"Cache-Control": "max-age=1"}, now_ms) == (
        WELL_KNOWN_MIN_CACHE_S
    )
    assert well_known_cache_seconds({"Cache-Control": "no-store"}, now_ms) == (
        WELL_KNOWN_MIN_CACHE_S
    )
    expires = "Wed, 15 Nov 2023 01:13:20 GMT"  # now + 3 hours
    assert well_known_cache_seconds({"Expires": expires}, now_ms) == 3 * 3600
    assert well_known_cache_seconds({"Expires": "garbage"}, now_ms) == WELL_KNOWN_MIN_CACHE_S


def test_srv_ordering_by_priority_then_weight() -> None:
    records = [
        SrvRecord(20, 0, "c.", 1),
        SrvRecord(10, 0, "b.", 1),
        SrvRecord(10, 100, "a.", 1),
    ]
    seen_first = set()
    for seed in range(30):
        ordered = order_srv_records(records, random.Random(seed))
        assert ordered[-1].target == "c"
        seen_first.add(ordered[0].target)
    assert seen_first == {"a"}  # weight 0 is only picked first when alone or all are 0
    assert order_srv_records([SrvRecord(0, 0, ".", 0)], random.Random(0)) == []
