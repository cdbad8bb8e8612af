"""Resolving a server name to where and how to connect (server-server API "Server
discovery", "Resolving server names").

:meth:`ServerResolver.resolve` follows the spec's steps in order:

1. IP literal: that address, the given port or 8448; ``Host`` = the server name;
   the certificate must be for the IP (no SNI).
2. Hostname with explicit port: the hostname (A/AAAA at connect time) and port;
   ``Host`` = the server name; certificate and SNI for the hostname.
3. ``https://<hostname>/.well-known/matrix/server`` (redirects followed; the answer,
   valid or not, cached per its Cache-Control / Expires: 24 hours by default, 48 at
   most; failures cached with exponential back-off up to an hour). A valid
   ``m.server`` is then resolved by 3.1 IP literal, 3.2 explicit port, 3.3 SRV
   ``_matrix-fed._tcp``, 3.4 deprecated SRV ``_matrix._tcp``, 3.5 port 8448, with
   ``Host``, SNI and certificate name the delegated hostname (with the port in
   ``Host`` where one was given).
4. Without a valid well-known: SRV ``_matrix-fed._tcp.<hostname>``, then 5. the
   deprecated ``_matrix._tcp.<hostname>``, then 6. the hostname on port 8448; always
   with ``Host``, SNI and certificate name the original hostname.

DNS (SRV) and the well-known fetch are injected (:class:`DnsResolver`,
:class:`WellKnownFetcher`) so each branch is testable without a network. Address
(A/AAAA) resolution happens when connecting, in the HTTP client's resolver, which
also enforces the IP blacklist.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from homeserver.clock import Clock
from homeserver.events.errors import InvalidIdentifier
from homeserver.events.identifiers import split_server_name

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8448
WELL_KNOWN_DEFAULT_CACHE_S = 24 * 3600
WELL_KNOWN_MAX_CACHE_S = 48 * 3600
WELL_KNOWN_MIN_CACHE_S = 5 * 60
WELL_KNOWN_FIRST_FAILURE_CACHE_S = 5 * 60
WELL_KNOWN_MAX_FAILURE_CACHE_S = 3600
WELL_KNOWN_MAX_BYTES = 50 * 1024
WELL_KNOWN_CACHE_ENTRIES = 10_000

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    target: str
    port: int


class DnsResolver(Protocol):
    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        """The SRV records of ``name``; empty when there are none (or DNS failed)."""
        ...


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A well-known answer as it came (after redirects): status, headers, body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class WellKnownFetcher(Protocol):
    async def fetch_well_known(self, hostname: str) -> HttpAnswer:
        """GET ``https://<hostname>/.well-known/matrix/server``, following redirects.
        Raises on a connection failure (any exception counts as an error answer)."""
        ...


@dataclass(frozen=True, slots=True)
class ResolvedServer:
    """Where to connect for a server name, and how to present the request.

    ``targets`` are (host, port) pairs to try in order; a host is a DNS name or an IP
    literal (IPv6 without brackets). ``tls_name`` is the name the certificate must be
    valid for and the SNI to send (an IP address means: verify the IP, send no SNI).
    """

    server_name: str
    host_header: str
    tls_name: str
    targets: tuple[tuple[str, int], ...]
    step: str  # which step of the algorithm decided, for logs and tests


def ip_literal(host: str) -> str | None:
    """The bare IP address if ``host`` (from :func:`split_server_name`) is an IP literal."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


class ServerResolver:
    """Server name -> :class:`ResolvedServer`, with a cache of well-known answers."""

    def __init__(
        self,
        dns: DnsResolver,
        well_known: WellKnownFetcher,
        clock: Clock,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._dns = dns
        self._well_known = well_known
        self._clock = clock
        self._rng = rng or random.Random()
        # hostname -> (m.server or None, expires at (monotonic s), consecutive failures)
        self._wk_cache: dict[str, tuple[str | None, float, int]] = {}
        self._wk_inflight: dict[str, asyncio.Future[str | None]] = {}

    async def resolve(self, server_name: str) -> ResolvedServer:
        """Resolve ``server_name``. Raises ``ValueError`` if it is not a valid server
        name."""
        try:
            host, port = split_server_name(server_name)
        except InvalidIdentifier as exc:
            raise ValueError(str(exc)) from exc
        ip = ip_literal(host)
        if ip is not None:  # step 1
            return ResolvedServer(server_name, server_name, ip, ((ip, port or DEFAULT_PORT),), "1")
        if port is not None:  # step 2
            return ResolvedServer(server_name, server_name, host, ((host, port),), "2")
        delegated = await self.well_known_server(host)  # step 3
        if delegated is not None:
            return await self._resolve_delegated(server_name, delegated)
        return await self._resolve_by_dns(server_name, host, host, "4", "5", "6")

    async def _resolve_delegated(self, server_name: str, delegated: str) -> ResolvedServer:
        dhost, dport = split_server_name(delegated)  # validated when parsed
        ip = ip_literal(dhost)
        if ip is not None:  # 3.1
            return ResolvedServer(server_name, delegated, ip, ((ip, dport or DEFAULT_PORT),), "3.1")
        if dport is not None:  # 3.2
            return ResolvedServer(server_name, f"{dhost}:{dport}", dhost, ((dhost, dport),), "3.2")
        return await self._resolve_by_dns(server_name, dhost, dhost, "3.3", "3.4", "3.5")

    async def _resolve_by_dns(
        self, server_name: str, host: str, name: str, srv_step: str, old_step: str, a_step: str
    ) -> ResolvedServer:
        for prefix, step in (("_matrix-fed._tcp.", srv_step), ("_matrix._tcp.", old_step)):
            targets = await self._srv_targets(prefix + host)
            if targets:
                return ResolvedServer(server_name, name, name, targets, step)
        return ResolvedServer(server_name, name, name, ((host, DEFAULT_PORT),), a_step)

    async def _srv_targets(self, name: str) -> tuple[tuple[str, int], ...]:
        try:
            records = await self._dns.resolve_srv(name)
        except Exception:
            logger.info("SRV lookup of %s failed", name, exc_info=True)
            return ()
        return tuple((r.target, r.port) for r in order_srv_records(records, self._rng))

    # -- well-known ------------------------------------------------------------------

    async def well_known_server(self, hostname: str) -> str | None:
        """The ``m.server`` delegation of ``hostname``, or None (cached either way).
        Concurrent lookups of one hostname share one fetch."""
        cached = self._wk_cache.get(hostname)
        if cached is not None and cached[1] > self._clock.monotonic():
            return cached[0]
        task = self._wk_inflight.get(hostname)
        if task is None:
            failures = cached[2] if cached is not None else 0
            task = asyncio.ensure_future(self._refresh_well_known(hostname, failures))
            self._wk_inflight[hostname] = task
            task.add_done_callback(lambda _: self._wk_inflight.pop(hostname, None))
        return await asyncio.shield(task)

    async def _refresh_well_known(self, hostname: str, failures: int) -> str | None:
        result, cache_s = await self._fetch_well_known(hostname, failures)
        expires = self._clock.monotonic() + cache_s
        self._remember(hostname, result, expires, 0 if result else failures + 1)
        return result

    def _remember(self, hostname: str, result: str | None, expires: float, failures: int) -> None:
        if len(self._wk_cache) >= WELL_KNOWN_CACHE_ENTRIES and hostname not in self._wk_cache:
            self._wk_cache.pop(next(iter(self._wk_cache)))
        self._wk_cache[hostname] = (result, expires, failures)

    async def _fetch_well_known(self, hostname: str, failures: int) -> tuple[str | None, float]:
        failure_cache_s = min(
            WELL_KNOWN_FIRST_FAILURE_CACHE_S * 2**failures, WELL_KNOWN_MAX_FAILURE_CACHE_S
        )
        try:
            answer = await self._well_known.fetch_well_known(hostname)
        except Exception as exc:
            logger.info("fetching the well-known of %s failed: %s", hostname, exc)
            return None, failure_cache_s
        delegated = parse_well_known(answer)
        if delegated is None:
            logger.info("invalid well-known answer from %s (%d)", hostname, answer.status)
            return None, failure_cache_s
        return delegated, well_known_cache_seconds(answer.headers, self._clock.time_ms())


def parse_well_known(answer: HttpAnswer) -> str | None:
    """The ``m.server`` of a well-known answer, or None when the answer is invalid
    (non-200, too large, not a JSON object, ``m.server`` missing or not a valid server
    name). The Content-Type is not checked: the spec says to assume JSON."""
    if answer.status != 200 or len(answer.body) > WELL_KNOWN_MAX_BYTES:
        return None
    try:
        body = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    server = body.get("m.server")
    if not isinstance(server, str):
        return None
    try:
        split_server_name(server)
    except InvalidIdentifier:
        return None
    return server


def well_known_cache_seconds(headers: Mapping[str, str], now_ms: int) -> float:
    """How long to cache a valid well-known answer: Cache-Control max-age, else
    Expires, else 24 hours; never more than 48 hours nor less than 5 minutes
    (``no-store`` / ``no-cache`` give the minimum)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    seconds: float | None = None
    cache_control = lowered.get("cache-control", "")
    if re.search(r"no-store|no-cache", cache_control, re.IGNORECASE):
        seconds = 0
    else:
        match = _MAX_AGE.search(cache_control)
        if match:
            seconds = int(match.group(1))
        elif "expires" in lowered:
            try:
                expires = email.utils.parsedate_to_datetime(lowered["expires"])
                seconds = expires.timestamp() - now_ms / 1000
            except (TypeError, ValueError, IndexError, OverflowError):
                seconds = 0  # an invalid Expires means "already expired" (RFC 9111)
    if seconds is None:
        seconds = WELL_KNOWN_DEFAULT_CACHE_S
    return float(min(max(seconds, WELL_KNOWN_MIN_CACHE_S), WELL_KNOWN_MAX_CACHE_S))


def order_srv_records(records: Sequence[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """SRV records in the order to try them (RFC 2782): by priority, and within one
    priority a weighted random order. A lone record with target "." means "no
    service" and gives an empty list."""
    usable = [r for r in records if r.target not in (".", "")]
    out: list[SrvRecord] = []
    for priority in sorted({r.priority for r in usable}):
        group = [r for r in usable if r.priority == priority]
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                pick = group[0]
            else:
                point = rng.uniform(0, total)
                running = 0
                pick = group[-1]
                for record in group:
                    running += record.weight
                    if running >= point:
                        pick = record
                        break
            out.append(pick)
            group.remove(pick)
    return [SrvRecord(r.priority, r.weight, r.target.rstrip("."), r.port) for r in out]


class DnsPythonResolver:
    """:class:`DnsResolver` over dnspython's asyncio resolver (with its TTL cache)."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self._timeout_s = timeout_s
        self._resolver: object | None = None

    def _get(self) -> object:
        if self._resolver is None:
            import dns.asyncresolver
            import dns.resolver

            resolver = dns.asyncresolver.Resolver()
            resolver.cache = dns.resolver.Cache()
            resolver.lifetime = self._timeout_s
            self._resolver = resolver
        return self._resolver

    async def resolve_srv(self, name: str) -> list[SrvRecord]:
        import dns.exception
        import dns.resolver

        try:
            resolver = self._get()
            answer = await resolver.resolve(name, "SRV")  # type: ignore[attr-defined]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            logger.info("SRV lookup of %s failed: %s", name, exc)
            return []
        return [
            SrvRecord(int(r.priority), int(r.weight), r.target.to_text(), int(r.port))
            for r in answer
        ]
