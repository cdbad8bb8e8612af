"""The nested sections of the config file, each a frozen dataclass that reads itself.

Every ``parse`` function takes the `Reader` of its mapping, records errors under the
section's key path and returns the section (with defaults where a value was bad, so
that parsing goes on and reports every error at once).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, cast

from homeserver.config._reader import (
    Invalid,
    Reader,
    describe,
    int_between,
    list_of,
    one_of,
    to_bool,
    to_duration_ms,
    to_int,
    to_ip_address,
    to_non_negative_int,
    to_nonempty_str,
    to_port,
    to_positive_duration_ms,
    to_positive_float,
    to_server_name,
    to_str,
)
from storage.cache_sizes import (
    BASE_SIZES,
    DEFAULT_GLOBAL_FACTOR,
    CacheSizes,
    canonical_cache_name,
)

# --- listeners ----------------------------------------------------------------------

# "openid": only /_matrix/federation/v1/openid/userinfo (which "federation" serves
# too), for a listener that third parties reach but other homeservers do not.
# "metrics": /_synapse/metrics (Prometheus), served only with enable_metrics.
# "consent": only the user_consent page /_matrix/consent (which "client" serves too).
# "replication": /_synapse/replication, what the processes of one homeserver ask each
# other (workers); on an internal address only.
ResourceName = Literal[
    "client",
    "federation",
    "keys",
    "media",
    "health",
    "openid",
    "metrics",
    "consent",
    "replication",
]
RESOURCE_NAMES: tuple[ResourceName, ...] = (
    "client",
    "federation",
    "keys",
    "media",
    "health",
    "openid",
    "metrics",
    "consent",
    "replication",
)
# A listener of type "metrics" serves only /_synapse/metrics, without resources.
ListenerType = Literal["http", "metrics"]


def to_resource_name(value: object) -> str:
    return one_of(*RESOURCE_NAMES)(value)


@dataclass(frozen=True, slots=True)
class ListenerResource:
    """One entry of a listener's ``resources``: which APIs it serves."""

    names: tuple[ResourceName, ...]
    compress: bool = False

    @staticmethod
    def parse(reader: Reader) -> ListenerResource:
        names = reader.require("names", list_of(to_resource_name)) or ()
        if reader.raw("names") == []:
            reader.error("names", "at least one resource name is required")
        compress = reader.get("compress", to_bool, False)
        reader.finish()
        return ListenerResource(names=cast("tuple[ResourceName, ...]", names), compress=compress)


DEFAULT_RESOURCES: tuple[ListenerResource, ...] = (
    ListenerResource(names=("client", "federation", "keys", "media")),
)


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """One HTTP listener (``listeners[i]``)."""

    port: int
    bind_addresses: tuple[str, ...] = ("127.0.0.1",)
    type: ListenerType = "http"
    tls: bool = False
    x_forwarded: bool = False
    resources: tuple[ListenerResource, ...] = DEFAULT_RESOURCES

    def serves(self, name: ResourceName) -> bool:
        """Whether any resource of this listener has `name`."""
        return any(name in resource.names for resource in self.resources)

    def compresses(self, name: ResourceName) -> bool:
        return any(name in r.names and r.compress for r in self.resources)

    @staticmethod
    def parse(reader: Reader) -> ListenerConfig:
        port = reader.require("port", to_port) or 8008
        default_addresses: tuple[str, ...] = ("127.0.0.1",)
        bind_addresses = reader.get("bind_addresses", list_of(to_ip_address), default_addresses)
        if not bind_addresses:
            reader.error("bind_addresses", "at least one address is required")
            bind_addresses = default_addresses
        listener_type = cast("ListenerType", reader.get("type", one_of("http", "metrics"), "http"))
        tls = reader.get("tls", to_bool, False)
        x_forwarded = reader.get("x_forwarded", to_bool, False)
        children = reader.children("resources")
        if listener_type == "metrics":
            resources: tuple[ListenerResource, ...] = tuple(
                ListenerResource.parse(child) for child in children or ()
            )
        elif children is None:
            reader.error("resources", "this option is required")
            resources = ()
        else:
            resources = tuple(ListenerResource.parse(child) for child in children)
            if not resources:
                reader.error("resources", "at least one resource is required")
        reader.finish()
        return ListenerConfig(
            port=port,
            bind_addresses=bind_addresses,
            type=listener_type,
            tls=tls,
            x_forwarded=x_forwarded,
            resources=resources,
        )


DEFAULT_LISTENERS: tuple[ListenerConfig, ...] = (ListenerConfig(port=8008),)


def parse_listeners(
    reader: Reader, key: str = "listeners", default: tuple[ListenerConfig, ...] = DEFAULT_LISTENERS
) -> tuple[ListenerConfig, ...]:
    """``listeners`` (or a worker's ``worker_listeners``); `default` when absent."""
    errors_before = len(reader.errors)
    children = reader.children(key)
    if children is None:
        return default
    listeners = tuple(ListenerConfig.parse(child) for child in children)
    if not listeners:
        reader.error(key, "at least one listener is required")
        return default
    if len(reader.errors) > errors_before:
        return listeners  # ports may be placeholders: do not report clashes between them
    seen: dict[tuple[str, int], int] = {}
    for index, listener in enumerate(listeners):
        for address in listener.bind_addresses:
            first = seen.setdefault((address, listener.port), index)
            if first != index:
                reader.error(
                    f"{key}[{index}].port",
                    f"{address}:{listener.port} is already used by listeners[{first}]",
                )
    return listeners


# --- rate limits --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """A token bucket: `burst_count` actions at once, refilled at `per_second`."""

    per_second: float
    burst_count: float

    @staticmethod
    def parse(reader: Reader, default: RateLimitConfig) -> RateLimitConfig:
        per_second = reader.get("per_second", to_positive_float, default.per_second)
        burst_count = reader.get("burst_count", to_positive_float, default.burst_count)
        reader.finish()
        return RateLimitConfig(per_second=per_second, burst_count=burst_count)


@dataclass(frozen=True, slots=True)
class LoginRateLimits:
    """``rc_login``: logins per client address, per account, and failed attempts per account."""

    address: RateLimitConfig = RateLimitConfig(per_second=0.003, burst_count=5)
    account: RateLimitConfig = RateLimitConfig(per_second=0.003, burst_count=5)
    failed_attempts: RateLimitConfig = RateLimitConfig(per_second=0.17, burst_count=3)

    @staticmethod
    def parse(reader: Reader) -> LoginRateLimits:
        defaults = LoginRateLimits()
        limits = LoginRateLimits(
            address=RateLimitConfig.parse(reader.child("address"), defaults.address),
            account=RateLimitConfig.parse(reader.child("account"), defaults.account),
            failed_attempts=RateLimitConfig.parse(
                reader.child("failed_attempts"), defaults.failed_attempts
            ),
        )
        reader.finish()
        return limits


# --- media --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThumbnailSize:
    """One pre-generated thumbnail size (``thumbnail_sizes[i]``)."""

    width: int
    height: int
    method: Literal["crop", "scale"]

    @staticmethod
    def parse(reader: Reader) -> ThumbnailSize:
        width = reader.require("width", _positive_int) or 1
        height = reader.require("height", _positive_int) or 1
        method = reader.require("method", one_of("crop", "scale")) or "scale"
        reader.finish()
        return ThumbnailSize(
            width=width, height=height, method=cast("Literal['crop', 'scale']", method)
        )


def _positive_int(value: object) -> int:
    return int_between(1, 1_000_000)(value)


DEFAULT_THUMBNAIL_SIZES: tuple[ThumbnailSize, ...] = (
    ThumbnailSize(32, 32, "crop"),
    ThumbnailSize(96, 96, "crop"),
    ThumbnailSize(320, 240, "scale"),
    ThumbnailSize(640, 480, "scale"),
    ThumbnailSize(800, 600, "scale"),
)


def parse_thumbnail_sizes(reader: Reader) -> tuple[ThumbnailSize, ...]:
    children = reader.children("thumbnail_sizes")
    if children is None:
        return DEFAULT_THUMBNAIL_SIZES
    return tuple(ThumbnailSize.parse(child) for child in children)


# --- federation keys ----------------------------------------------------------------

_KEY_ID = re.compile(r"ed25519:[a-zA-Z0-9_]+")


def to_verify_key(value: object) -> str:
    """An ed25519 public key in (unpadded) base64, as in the spec's key responses."""
    text = to_str(value)
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise Invalid(f"expected an ed25519 public key in base64, got {describe(value)}")
    return text


def _key_map(reader: Reader, key: str) -> Mapping[str, str] | None:
    """A mapping of key IDs ("ed25519:abc") to base64 public keys."""
    if not reader.has(key):
        reader.raw(key)
        return None
    keys = reader.child(key)
    result: dict[str, str] = {}
    for key_id in keys.keys():
        if not _KEY_ID.fullmatch(key_id):
            keys.error(key_id, 'expected a key ID like "ed25519:abc123"')
            keys.raw(key_id)
            continue
        verify_key = keys.require(key_id, to_verify_key)
        if verify_key is not None:
            result[key_id] = verify_key
    return MappingProxyType(result)


@dataclass(frozen=True, slots=True)
class TrustedKeyServer:
    """A notary server trusted to vouch for other servers' keys (``trusted_key_servers[i]``).
    `verify_keys` pins its own keys (key ID -> base64); None means fetch them directly."""

    server_name: str
    verify_keys: Mapping[str, str] | None = None

    @staticmethod
    def parse(reader: Reader) -> TrustedKeyServer:
        server_name = reader.require("server_name", to_server_name) or ""
        verify_keys = _key_map(reader, "verify_keys")
        reader.finish()
        return TrustedKeyServer(server_name=server_name, verify_keys=verify_keys)


@dataclass(frozen=True, slots=True)
class OldSigningKey:
    """A signing key this server used in the past (``old_signing_keys.<key_id>``), still
    published so that events it signed can be verified."""

    key_id: str
    key: str
    expired_ts: int

    @staticmethod
    def parse(reader: Reader, key_id: str) -> OldSigningKey:
        key = reader.require("key", to_verify_key) or ""
        expired_ts = reader.require("expired_ts", to_int) or 0
        reader.finish()
        return OldSigningKey(key_id=key_id, key=key, expired_ts=expired_ts)


def parse_old_signing_keys(reader: Reader) -> Mapping[str, OldSigningKey]:
    keys = reader.child("old_signing_keys")
    result: dict[str, OldSigningKey] = {}
    for key_id in keys.keys():
        if not _KEY_ID.fullmatch(key_id):
            keys.error(key_id, 'expected a key ID like "ed25519:abc123"')
            keys.raw(key_id)
            continue
        result[key_id] = OldSigningKey.parse(keys.child(key_id), key_id)
    return MappingProxyType(result)


# --- small sections -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    """``presence``: whether presence is tracked and sent, and its timeouts (ms)."""

    enabled: bool = True
    # online -> unavailable after this long without activity
    idle_timeout: int = 300_000
    # -> offline this long after the end of the user's last /sync
    offline_timeout: int = 30_000

    @staticmethod
    def parse(reader: Reader) -> PresenceConfig:
        enabled = reader.get("enabled", to_bool, True)
        idle_timeout = reader.get("idle_timeout", to_duration_ms, 300_000)
        offline_timeout = reader.get("offline_timeout", to_duration_ms, 30_000)
        reader.finish()
        return PresenceConfig(
            enabled=enabled, idle_timeout=idle_timeout, offline_timeout=offline_timeout
        )


@dataclass(frozen=True, slots=True)
class PushConfig:
    """``push``: whether push notifications carry the message content, and whether
    the legacy body-mention default rules (removed by spec v1.17) are kept."""

    include_content: bool = True
    legacy_mention_rules: bool = True

    @staticmethod
    def parse(reader: Reader) -> PushConfig:
        include_content = reader.get("include_content", to_bool, True)
        legacy_mention_rules = reader.get("legacy_mention_rules", to_bool, True)
        reader.finish()
        return PushConfig(
            include_content=include_content, legacy_mention_rules=legacy_mention_rules
        )


@dataclass(frozen=True, slots=True)
class UserDirectoryConfig:
    """``user_directory`` (Synapse's names): whether ``/user_directory/search`` answers,
    whether it finds every local user rather than only those sharing a room with the
    searcher or in a public room, whether local users rank above remote ones, whether
    remote users are left out, and whether locked accounts are found."""

    enabled: bool = True
    search_all_users: bool = False
    prefer_local_users: bool = False
    exclude_remote_users: bool = False
    show_locked_users: bool = False

    @staticmethod
    def parse(reader: Reader) -> UserDirectoryConfig:
        enabled = reader.get("enabled", to_bool, True)
        search_all_users = reader.get("search_all_users", to_bool, False)
        prefer_local_users = reader.get("prefer_local_users", to_bool, False)
        exclude_remote_users = reader.get("exclude_remote_users", to_bool, False)
        show_locked_users = reader.get("show_locked_users", to_bool, False)
        reader.finish()
        return UserDirectoryConfig(
            enabled=enabled,
            search_all_users=search_all_users,
            prefer_local_users=prefer_local_users,
            exclude_remote_users=exclude_remote_users,
            show_locked_users=show_locked_users,
        )


@dataclass(frozen=True, slots=True)
class LoginViaExistingSessionConfig:
    """``login_via_existing_session`` (Synapse's names): whether a logged-in client may
    get a login token for another device (``POST /login/get_token``), whether it must
    authenticate again first, and how long the token lives."""

    enabled: bool = False
    require_ui_auth: bool = True
    token_timeout: int = 300_000

    @staticmethod
    def parse(reader: Reader) -> LoginViaExistingSessionConfig:
        enabled = reader.get("enabled", to_bool, False)
        require_ui_auth = reader.get("require_ui_auth", to_bool, True)
        token_timeout = reader.get("token_timeout", to_duration_ms, 300_000)
        reader.finish()
        return LoginViaExistingSessionConfig(enabled, require_ui_auth, token_timeout)


@dataclass(frozen=True, slots=True)
class ServerNoticesConfig:
    """``server_notices`` (Synapse's names): the user server notices come from, the
    room they arrive in, and whether users are joined to it rather than invited."""

    system_mxid_localpart: str
    system_mxid_display_name: str | None = None
    system_mxid_avatar_url: str | None = None
    room_name: str = "Server Notices"
    room_avatar_url: str | None = None
    room_topic: str | None = None
    auto_join: bool = False

    @staticmethod
    def parse(reader: Reader) -> ServerNoticesConfig | None:
        """None when the section is absent (server notices are off)."""
        localpart = reader.require("system_mxid_localpart", to_nonempty_str)
        config = ServerNoticesConfig(
            system_mxid_localpart=localpart or "server",
            system_mxid_display_name=reader.optional("system_mxid_display_name", to_str),
            system_mxid_avatar_url=reader.optional("system_mxid_avatar_url", to_mxc_uri),
            room_name=reader.get("room_name", to_str, "Server Notices"),
            room_avatar_url=reader.optional("room_avatar_url", to_mxc_uri),
            room_topic=reader.optional("room_topic", to_str),
            auto_join=reader.get("auto_join", to_bool, False),
        )
        reader.finish()
        return config if localpart is not None else None


def to_mxc_uri(value: object) -> str:
    text = to_nonempty_str(value)
    if not text.startswith("mxc://"):
        raise Invalid("expected an mxc:// URI")
    return text


@dataclass(frozen=True, slots=True)
class MediaRetentionConfig:
    """``media_retention``: media not accessed for a lifetime is deleted (None: kept)."""

    local_media_lifetime: int | None = None
    remote_media_lifetime: int | None = None

    @staticmethod
    def parse(reader: Reader) -> MediaRetentionConfig:
        local = reader.optional("local_media_lifetime", to_positive_duration_ms)
        remote = reader.optional("remote_media_lifetime", to_positive_duration_ms)
        reader.finish()
        return MediaRetentionConfig(local_media_lifetime=local, remote_media_lifetime=remote)

    @property
    def enabled(self) -> bool:
        return self.local_media_lifetime is not None or self.remote_media_lifetime is not None


def to_cache_factors(value: object) -> Mapping[str, float]:
    """``per_cache_factors``: cache name -> factor, names made canonical as Synapse
    does; an unknown cache name is an error (a typo would silently do nothing)."""
    if not isinstance(value, dict):
        raise Invalid(f"expected a mapping of cache names to factors, got {describe(value)}")
    known = {canonical_cache_name(name): name for name in BASE_SIZES}
    factors: dict[str, float] = {}
    for name, factor in value.items():
        canonical = canonical_cache_name(str(name))
        if canonical not in known:
            raise Invalid(
                f"unknown cache; known caches: {', '.join(sorted(BASE_SIZES))}", f".{name}"
            )
        try:
            factors[canonical] = to_positive_float(factor)
        except Invalid as invalid:
            raise Invalid(invalid.message, f".{name}") from None
    return MappingProxyType(factors)


@dataclass(frozen=True, slots=True)
class CachesConfig:
    """``caches``: every in-memory cache's size is its base size multiplied by its
    factor in `per_cache_factors`, else by `global_factor`."""

    global_factor: float = DEFAULT_GLOBAL_FACTOR
    per_cache_factors: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @staticmethod
    def parse(reader: Reader) -> CachesConfig:
        global_factor = reader.get("global_factor", to_positive_float, DEFAULT_GLOBAL_FACTOR)
        no_factors: Mapping[str, float] = MappingProxyType({})
        per_cache = reader.get("per_cache_factors", to_cache_factors, no_factors)
        reader.finish()
        return CachesConfig(global_factor=global_factor, per_cache_factors=per_cache)

    @property
    def sizes(self) -> CacheSizes:
        return CacheSizes(self.global_factor, self.per_cache_factors)


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """``redis``: pub/sub between several processes sharing one database."""

    enabled: bool = False
    host: str = "localhost"
    port: int = 6379
    password: str | None = field(default=None, repr=False)
    dbid: int | None = None  # the Redis database number (None: the server's default, 0)

    @staticmethod
    def parse(reader: Reader) -> RedisConfig:
        config = RedisConfig(
            enabled=reader.get("enabled", to_bool, False),
            host=reader.get("host", to_nonempty_str, "localhost"),
            port=reader.get("port", to_port, 6379),
            password=reader.optional("password", to_str),
            dbid=reader.optional("dbid", to_non_negative_int),
        )
        reader.finish()
        return config


# --- room directory rules -----------------------------------------------------------


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """A glob (``*`` any run, ``?`` one character) as a whole-string, case-insensitive
    pattern, as Synapse reads the globs of its directory rules."""
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in glob)
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class DirectoryRule:
    """One rule of ``room_list_publication_rules`` or ``alias_creation_rules``: the
    first rule whose globs match decides, by its ``action``."""

    action: Literal["allow", "deny"]
    user_id: str = "*"
    room_id: str = "*"
    alias: str = "*"

    def matches(self, user_id: str, room_id: str, aliases: tuple[str, ...]) -> bool:
        if not glob_to_regex(self.user_id).match(user_id):
            return False
        if not glob_to_regex(self.room_id).match(room_id):
            return False
        if self.alias == "*":
            return True
        pattern = glob_to_regex(self.alias)
        return any(pattern.match(alias) for alias in aliases)

    @staticmethod
    def parse(reader: Reader) -> DirectoryRule:
        action = reader.require("action", one_of("allow", "deny")) or "deny"
        rule = DirectoryRule(
            action=cast("Literal['allow', 'deny']", action),
            user_id=reader.get("user_id", to_str, "*"),
            room_id=reader.get("room_id", to_str, "*"),
            alias=reader.get("alias", to_str, "*"),
        )
        reader.finish()
        return rule


def directory_allows(
    rules: tuple[DirectoryRule, ...], user_id: str, room_id: str, aliases: tuple[str, ...]
) -> bool:
    """Whether the first matching rule allows; no matching rule denies."""
    for rule in rules:
        if rule.matches(user_id, room_id, aliases):
            return rule.action == "allow"
    return False


def parse_directory_rules(
    reader: Reader, key: str, default: tuple[DirectoryRule, ...]
) -> tuple[DirectoryRule, ...]:
    children = reader.children(key)
    if children is None:
        return default
    return tuple(DirectoryRule.parse(child) for child in children)


# --- join and presence rate limits ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinRateLimits:
    """``rc_joins``: joins per user into rooms this server is in (``local``) and into
    rooms it must join over federation (``remote``)."""

    local: RateLimitConfig = RateLimitConfig(per_second=0.1, burst_count=10)
    remote: RateLimitConfig = RateLimitConfig(per_second=0.01, burst_count=10)

    @staticmethod
    def parse(reader: Reader) -> JoinRateLimits:
        defaults = JoinRateLimits()
        limits = JoinRateLimits(
            local=RateLimitConfig.parse(reader.child("local"), defaults.local),
            remote=RateLimitConfig.parse(reader.child("remote"), defaults.remote),
        )
        reader.finish()
        return limits
