"""`HomeserverConfig`: the whole config file, and `load_config` that reads it.

Top-level options keep Synapse's names and meanings, and each maps one-to-one to a
field of `HomeserverConfig` (nested YAML sections to nested dataclasses).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, cast

import yaml

from homeserver.config._reader import (
    ConfigError,
    Converter,
    Invalid,
    IPNetwork,
    Reader,
    describe,
    int_between,
    list_of,
    one_of,
    to_bool,
    to_cidr,
    to_duration_ms,
    to_http_url,
    to_non_negative_int,
    to_nonempty_str,
    to_path,
    to_positive_duration_ms,
    to_server_name,
    to_size,
)
from homeserver.config.database import DatabaseConfig, database_override
from homeserver.config.email import (
    EmailConfig,
    ThreepidDelegates,
    ThreepidPattern,
    parse_allowed_local_3pids,
)
from homeserver.config.oidc import OidcProviderConfig, parse_oidc_providers
from homeserver.config.registration import (
    RegistrationGuardsConfig,
)
from homeserver.config.retention import RetentionConfig
from homeserver.config.sections import (
    DEFAULT_LISTENERS,
    DEFAULT_THUMBNAIL_SIZES,
    CachesConfig,
    DirectoryRule,
    JoinRateLimits,
    ListenerConfig,
    LoginRateLimits,
    LoginViaExistingSessionConfig,
    MediaRetentionConfig,
    OldSigningKey,
    PresenceConfig,
    PushConfig,
    RateLimitConfig,
    RedisConfig,
    ServerNoticesConfig,
    ThumbnailSize,
    TrustedKeyServer,
    UserDirectoryConfig,
    parse_directory_rules,
    parse_listeners,
    parse_old_signing_keys,
    parse_thumbnail_sizes,
)
from homeserver.config.sso import CasConfig, SsoConfig
from homeserver.config.workers import WorkerConfig, is_worker_app

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
ROOM_VERSIONS: Final = tuple(str(n) for n in range(1, 13))
# The spec: "Servers SHOULD use room version 12 as the default room version".
DEFAULT_ROOM_VERSION: Final = "12"

# Synapse's default ip_range_blacklist: addresses a homeserver must not be made to
# connect to (loopback, private networks, CGNAT, link-local, test nets, multicast ...).
DEFAULT_IP_RANGE_BLACKLIST: Final = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "169.254.0.0/16",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
)
# Always blocked whatever the config says (as in Synapse).
ALWAYS_BLACKLISTED: Final = ("0.0.0.0/32", "::/128")


DEFAULT_RC_MESSAGE: Final = RateLimitConfig(per_second=0.2, burst_count=10)
DEFAULT_RC_REGISTRATION: Final = RateLimitConfig(per_second=0.17, burst_count=3)
DEFAULT_RC_FEDERATION: Final = RateLimitConfig(per_second=50, burst_count=500)
DEFAULT_RC_ROOM_CREATION: Final = RateLimitConfig(per_second=0.016, burst_count=10)
DEFAULT_RC_DELAYED_EVENT_MGMT: Final = RateLimitConfig(per_second=1, burst_count=5)
DEFAULT_RC_REPORTS: Final = RateLimitConfig(per_second=1.0, burst_count=5)
DEFAULT_RC_PRESENCE: Final = RateLimitConfig(per_second=0.1, burst_count=1)
DEFAULT_RC_3PID_VALIDATION: Final = RateLimitConfig(per_second=0.003, burst_count=5)
# Synapse's defaults: anyone may create an alias; nobody may publish a room to the
# directory unless a rule allows it.
DEFAULT_ALIAS_CREATION_RULES: Final = (DirectoryRule(action="allow"),)
DEFAULT_ROOM_LIST_PUBLICATION_RULES: Final[tuple[DirectoryRule, ...]] = ()


def _to_room_version(value: object) -> str:
    """A room version identifier; a bare YAML number (12) is taken as the string "12"."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return one_of(*ROOM_VERSIONS)(value)


def _per_generation(convert: Converter[int]) -> Converter[tuple[int, int, int]]:
    """A list of three values, one per garbage-collector generation (0, 1, 2)."""
    as_list = list_of(convert)

    def convert_three(value: object) -> tuple[int, int, int]:
        items = as_list(value)
        if len(items) != 3:
            raise Invalid(f"expected a list of 3 values (one per generation), got {len(items)}")
        return (items[0], items[1], items[2])

    return convert_three


def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(to_cidr(cidr) for cidr in cidrs)


def _with_always_blacklisted(networks: tuple[IPNetwork, ...]) -> tuple[IPNetwork, ...]:
    return networks + tuple(net for net in _networks(ALWAYS_BLACKLISTED) if net not in networks)


@dataclass(frozen=True, slots=True)
class HomeserverConfig:
    """Every setting of the homeserver. Sizes are in bytes, durations in milliseconds,
    paths as written in the file (relative ones are relative to the working directory)."""

    server_name: str
    public_baseurl: str | None = None
    client_base_url: str | None = None
    serve_server_wellknown: bool = False
    admin_contact: str | None = None
    listeners: tuple[ListenerConfig, ...] = DEFAULT_LISTENERS
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    signing_key_path: Path = Path("data/signing.key")
    old_signing_keys: Mapping[str, OldSigningKey] = field(default_factory=dict)
    key_refresh_interval: int = 86_400_000
    log_level: LogLevel = "INFO"
    log_config: Path | None = None
    # Prometheus metrics on listeners of type "metrics" or with the "metrics" resource
    enable_metrics: bool = False
    pid_file: Path | None = None
    # the garbage collector's schedule (Synapse's names): thresholds per generation
    # (None: CPython's), and the least time between two collections of each, in ms
    gc_thresholds: tuple[int, int, int] | None = None
    gc_min_interval: tuple[int, int, int] = (1_000, 10_000, 30_000)
    # registration and login
    enable_registration: bool = False
    enable_registration_without_verification: bool = False
    registration_requires_token: bool = False
    registration_shared_secret: str | None = field(default=None, repr=False)
    allow_guest_access: bool = False
    bcrypt_rounds: int = 12
    # third-party IDs: mail settings, who validates phone numbers, which addresses
    # may be used, whether users may change theirs
    email: EmailConfig = field(default_factory=EmailConfig)
    account_threepid_delegates: ThreepidDelegates = field(default_factory=ThreepidDelegates)
    # None: any address
    allowed_local_3pids: tuple[ThreepidPattern, ...] | None = None
    enable_3pid_changes: bool = True
    # registration guards: top-level options, read together (config/registration.py)
    registration_guards: RegistrationGuardsConfig = field(default_factory=RegistrationGuardsConfig)
    # application services: registration files; whether their users' IPs are recorded
    app_service_config_files: tuple[Path, ...] = ()
    track_appservice_user_ips: bool = False
    # single sign-on
    cas_config: CasConfig = field(default_factory=CasConfig)
    sso: SsoConfig = field(default_factory=SsoConfig)
    # oidc_providers, then the legacy oidc_config
    oidc_providers: tuple[OidcProviderConfig, ...] = ()
    # rate limits
    rc_message: RateLimitConfig = DEFAULT_RC_MESSAGE
    rc_registration: RateLimitConfig = DEFAULT_RC_REGISTRATION
    rc_login: LoginRateLimits = field(default_factory=LoginRateLimits)
    rc_federation: RateLimitConfig = DEFAULT_RC_FEDERATION
    rc_joins: JoinRateLimits = field(default_factory=JoinRateLimits)
    rc_room_creation: RateLimitConfig = DEFAULT_RC_ROOM_CREATION
    rc_delayed_event_mgmt: RateLimitConfig = DEFAULT_RC_DELAYED_EVENT_MGMT
    rc_reports: RateLimitConfig = DEFAULT_RC_REPORTS
    rc_presence: RateLimitConfig = DEFAULT_RC_PRESENCE
    rc_3pid_validation: RateLimitConfig = DEFAULT_RC_3PID_VALIDATION
    # rooms
    default_room_version: str = DEFAULT_ROOM_VERSION
    allow_public_rooms_without_auth: bool = False
    allow_public_rooms_over_federation: bool = False
    require_membership_for_aliases: bool = True
    forget_rooms_on_leave: bool = False
    # how long a redacted event's original JSON is kept (None: forever)
    redaction_retention_period: int | None = 7 * 86_400_000
    enable_ephemeral_messages: bool = False  # MSC2228 self-destructing messages
    alias_creation_rules: tuple[DirectoryRule, ...] = DEFAULT_ALIAS_CREATION_RULES
    room_list_publication_rules: tuple[DirectoryRule, ...] = DEFAULT_ROOM_LIST_PUBLICATION_RULES
    # request limits
    max_request_body_size: int = 1024**2
    # media
    enable_media_repo: bool = True
    media_store_path: Path = Path("data/media_store")
    max_upload_size: int = 50 * 1024**2
    max_image_pixels: int = 32 * 1024**2
    dynamic_thumbnails: bool = False
    thumbnail_sizes: tuple[ThumbnailSize, ...] = DEFAULT_THUMBNAIL_SIZES
    media_retention: MediaRetentionConfig = field(default_factory=MediaRetentionConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)  # message retention
    url_preview_enabled: bool = False
    # None: the general ip_range_blacklist / ip_range_whitelist
    url_preview_ip_range_blacklist: tuple[IPNetwork, ...] | None = None
    url_preview_ip_range_whitelist: tuple[IPNetwork, ...] = ()
    unauthenticated_media_allowed_before: int | None = None
    # VoIP
    turn_uris: tuple[str, ...] = ()
    turn_shared_secret: str | None = field(default=None, repr=False)
    turn_username: str | None = None
    turn_password: str | None = field(default=None, repr=False)
    turn_user_lifetime: int = 3_600_000
    turn_allow_guests: bool = True
    # MSC4140 delayed events: off unless set (Synapse's max_event_delay_duration)
    max_event_delay_duration: int | None = None
    # presence, push, caches, redis
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    push: PushConfig = field(default_factory=PushConfig)
    user_directory: UserDirectoryConfig = field(default_factory=UserDirectoryConfig)
    login_via_existing_session: LoginViaExistingSessionConfig = field(
        default_factory=LoginViaExistingSessionConfig
    )
    # None: server notices are off
    server_notices: ServerNoticesConfig | None = None
    caches: CachesConfig = field(default_factory=CachesConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    # federation and outbound requests
    federation_verify_certificates: bool = True
    federation_custom_ca_list: tuple[Path, ...] = ()
    use_insecure_ssl_client_just_for_testing_do_not_use: bool = False
    federation_domain_whitelist: tuple[str, ...] | None = None
    federation_ip_range_whitelist: tuple[IPNetwork, ...] = ()
    ip_range_blacklist: tuple[IPNetwork, ...] = _networks(
        DEFAULT_IP_RANGE_BLACKLIST + ALWAYS_BLACKLISTED
    )
    ip_range_whitelist: tuple[IPNetwork, ...] = ()
    # Synapse's legacy option: when set, federation checks it (and no whitelist)
    # instead of ip_range_blacklist / ip_range_whitelist.
    federation_ip_range_blacklist: tuple[IPNetwork, ...] | None = None
    trusted_key_servers: tuple[TrustedKeyServer, ...] = ()
    suppress_key_server_warning: bool = False
    tls_certificate_path: Path | None = None
    tls_private_key_path: Path | None = None
    # which process this is and which process does what (one main process by default);
    # on a worker, listeners, log_config and pid_file are its worker_* options
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    # Synapse options in the file that this server does not implement (warned at start)
    ignored_options: tuple[str, ...] = ()

    @property
    def public_baseurl_effective(self) -> str:
        """Where clients reach this server (as Synapse: https://<server_name>/ unless
        ``public_baseurl`` says otherwise); ends with a slash."""
        return self.public_baseurl or f"https://{self.server_name}/"

    @property
    def client_base_url_effective(self) -> str:
        """The base URL clients should use (``m.homeserver`` in /.well-known/matrix/client)."""
        return self.client_base_url or self.public_baseurl or f"https://{self.server_name}/"

    @staticmethod
    def parse(reader: Reader, environ: Mapping[str, str] | None = None) -> HomeserverConfig:
        """Read the top-level mapping; errors are recorded in `reader.errors`."""
        server_name = reader.require("server_name", to_server_name) or "invalid.invalid"
        default_key_path = Path("data") / f"{server_name.replace(':', '_')}.signing.key"

        database = DatabaseConfig.parse(reader.child("database"))
        try:
            database = database_override(os.environ if environ is None else environ) or database
        except ConfigError as error:
            reader.errors.extend(error.errors)

        listeners = parse_listeners(reader)
        tls_certificate_path = reader.optional("tls_certificate_path", to_path)
        tls_private_key_path = reader.optional("tls_private_key_path", to_path)
        has_tls_files = tls_certificate_path is not None and tls_private_key_path is not None
        _check_tls_files(reader, "listeners", listeners, has_tls_files)

        ip_blacklist = reader.get(
            "ip_range_blacklist", list_of(to_cidr), _networks(DEFAULT_IP_RANGE_BLACKLIST)
        )
        ip_blacklist = _with_always_blacklisted(ip_blacklist)

        federation_blacklist = reader.optional("federation_ip_range_blacklist", list_of(to_cidr))
        if federation_blacklist is not None:
            federation_blacklist = _with_always_blacklisted(federation_blacklist)
        preview_blacklist = reader.optional("url_preview_ip_range_blacklist", list_of(to_cidr))
        if preview_blacklist is not None:
            preview_blacklist = _with_always_blacklisted(preview_blacklist)

        config = HomeserverConfig(
            server_name=server_name,
            public_baseurl=reader.optional("public_baseurl", to_http_url),
            client_base_url=reader.optional("client_base_url", to_http_url),
            serve_server_wellknown=reader.get("serve_server_wellknown", to_bool, False),
            admin_contact=reader.optional("admin_contact", to_nonempty_str),
            listeners=listeners,
            database=database,
            signing_key_path=reader.get("signing_key_path", to_path, default_key_path),
            old_signing_keys=parse_old_signing_keys(reader),
            key_refresh_interval=reader.get("key_refresh_interval", to_duration_ms, 86_400_000),
            log_level=cast(
                "LogLevel",
                reader.get(
                    "log_level",
                    one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", case_insensitive=True),
                    "INFO",
                ),
            ),
            log_config=reader.optional("log_config", to_path),
            enable_metrics=reader.get("enable_metrics", to_bool, False),
            pid_file=reader.optional("pid_file", to_path),
            gc_thresholds=reader.optional(
                "gc_thresholds", _per_generation(int_between(1, 2**31 - 1))
            ),
            gc_min_interval=reader.get(
                "gc_min_interval", _per_generation(to_duration_ms), (1_000, 10_000, 30_000)
            ),
            enable_registration=reader.get("enable_registration", to_bool, False),
            enable_registration_without_verification=reader.get(
                "enable_registration_without_verification", to_bool, False
            ),
            registration_requires_token=reader.get("registration_requires_token", to_bool, False),
            registration_shared_secret=reader.optional(
                "registration_shared_secret", to_nonempty_str
            ),
            allow_guest_access=reader.get("allow_guest_access", to_bool, False),
            bcrypt_rounds=reader.get("bcrypt_rounds", int_between(4, 31), 12),
            email=EmailConfig.parse(reader.child("email")),
            account_threepid_delegates=ThreepidDelegates.parse(
                reader.child("account_threepid_delegates")
            ),
            allowed_local_3pids=parse_allowed_local_3pids(reader),
            enable_3pid_changes=reader.get("enable_3pid_changes", to_bool, True),
            registration_guards=RegistrationGuardsConfig.parse(reader),
            app_service_config_files=reader.get("app_service_config_files", list_of(to_path), ()),
            track_appservice_user_ips=reader.get("track_appservice_user_ips", to_bool, False),
            cas_config=CasConfig.parse(reader.child("cas_config")),
            sso=SsoConfig.parse(reader.child("sso")),
            oidc_providers=parse_oidc_providers(reader),
            rc_message=RateLimitConfig.parse(reader.child("rc_message"), DEFAULT_RC_MESSAGE),
            rc_registration=RateLimitConfig.parse(
                reader.child("rc_registration"), DEFAULT_RC_REGISTRATION
            ),
            rc_login=LoginRateLimits.parse(reader.child("rc_login")),
            rc_federation=RateLimitConfig.parse(
                reader.child("rc_federation"), DEFAULT_RC_FEDERATION
            ),
            rc_joins=JoinRateLimits.parse(reader.child("rc_joins")),
            rc_delayed_event_mgmt=RateLimitConfig.parse(
                reader.child("rc_delayed_event_mgmt"), DEFAULT_RC_DELAYED_EVENT_MGMT
            ),
            rc_room_creation=RateLimitConfig.parse(
                reader.child("rc_room_creation"), DEFAULT_RC_ROOM_CREATION
            ),
            rc_reports=RateLimitConfig.parse(reader.child("rc_reports"), DEFAULT_RC_REPORTS),
            rc_presence=_rc_presence(reader.child("rc_presence")),
            rc_3pid_validation=RateLimitConfig.parse(
                reader.child("rc_3pid_validation"), DEFAULT_RC_3PID_VALIDATION
            ),
            default_room_version=reader.get(
                "default_room_version", _to_room_version, DEFAULT_ROOM_VERSION
            ),
            allow_public_rooms_without_auth=reader.get(
                "allow_public_rooms_without_auth", to_bool, False
            ),
            allow_public_rooms_over_federation=reader.get(
                "allow_public_rooms_over_federation", to_bool, False
            ),
            require_membership_for_aliases=reader.get(
                "require_membership_for_aliases", to_bool, True
            ),
            forget_rooms_on_leave=reader.get("forget_rooms_on_leave", to_bool, False),
            redaction_retention_period=(
                None  # written as null: keep the originals forever, as Synapse
                if "redaction_retention_period" in reader.keys()
                and reader.raw("redaction_retention_period") is None
                else reader.get("redaction_retention_period", to_duration_ms, 7 * 86_400_000)
            ),
            enable_ephemeral_messages=reader.get("enable_ephemeral_messages", to_bool, False),
            alias_creation_rules=parse_directory_rules(
                reader, "alias_creation_rules", DEFAULT_ALIAS_CREATION_RULES
            ),
            room_list_publication_rules=parse_directory_rules(
                reader, "room_list_publication_rules", DEFAULT_ROOM_LIST_PUBLICATION_RULES
            ),
            max_request_body_size=reader.get("max_request_body_size", to_size, 1024**2),
            enable_media_repo=reader.get("enable_media_repo", to_bool, True),
            media_store_path=reader.get("media_store_path", to_path, Path("data/media_store")),
            max_upload_size=reader.get("max_upload_size", to_size, 50 * 1024**2),
            max_image_pixels=reader.get("max_image_pixels", to_size, 32 * 1024**2),
            dynamic_thumbnails=reader.get("dynamic_thumbnails", to_bool, False),
            thumbnail_sizes=parse_thumbnail_sizes(reader),
            media_retention=MediaRetentionConfig.parse(reader.child("media_retention")),
            retention=RetentionConfig.parse(reader.child("retention")),
            url_preview_enabled=reader.get("url_preview_enabled", to_bool, False),
            url_preview_ip_range_blacklist=preview_blacklist,
            url_preview_ip_range_whitelist=reader.get(
                "url_preview_ip_range_whitelist", list_of(to_cidr), ()
            ),
            unauthenticated_media_allowed_before=reader.optional(
                "unauthenticated_media_allowed_before", to_non_negative_int
            ),
            turn_uris=reader.get("turn_uris", list_of(to_nonempty_str), ()),
            turn_shared_secret=reader.optional("turn_shared_secret", to_nonempty_str),
            turn_username=reader.optional("turn_username", to_nonempty_str),
            turn_password=reader.optional("turn_password", to_nonempty_str),
            turn_user_lifetime=reader.get("turn_user_lifetime", to_duration_ms, 3_600_000),
            turn_allow_guests=reader.get("turn_allow_guests", to_bool, True),
            max_event_delay_duration=reader.optional(
                "max_event_delay_duration", to_positive_duration_ms
            ),
            presence=PresenceConfig.parse(reader.child("presence")),
            push=PushConfig.parse(reader.child("push")),
            user_directory=UserDirectoryConfig.parse(reader.child("user_directory")),
            login_via_existing_session=LoginViaExistingSessionConfig.parse(
                reader.child("login_via_existing_session")
            ),
            server_notices=(
                ServerNoticesConfig.parse(reader.child("server_notices"))
                if reader.raw("server_notices") is not None
                else None
            ),
            caches=CachesConfig.parse(reader.child("caches")),
            redis=RedisConfig.parse(reader.child("redis")),
            federation_verify_certificates=reader.get(
                "federation_verify_certificates", to_bool, True
            ),
            federation_custom_ca_list=reader.get("federation_custom_ca_list", list_of(to_path), ()),
            use_insecure_ssl_client_just_for_testing_do_not_use=reader.get(
                "use_insecure_ssl_client_just_for_testing_do_not_use", to_bool, False
            ),
            federation_domain_whitelist=reader.optional(
                "federation_domain_whitelist", list_of(to_server_name)
            ),
            federation_ip_range_whitelist=reader.get(
                "federation_ip_range_whitelist", list_of(to_cidr), ()
            ),
            ip_range_blacklist=ip_blacklist,
            ip_range_whitelist=reader.get("ip_range_whitelist", list_of(to_cidr), ()),
            federation_ip_range_blacklist=federation_blacklist,
            trusted_key_servers=tuple(
                TrustedKeyServer.parse(child)
                for child in reader.children("trusted_key_servers") or ()
            ),
            suppress_key_server_warning=reader.get("suppress_key_server_warning", to_bool, False),
            tls_certificate_path=tls_certificate_path,
            tls_private_key_path=tls_private_key_path,
        )
        if config.enable_registration and not (
            config.enable_registration_without_verification
            or config.registration_requires_token
            or config.registration_guards.enable_registration_captcha
            or config.registration_guards.registrations_require_3pid
        ):
            reader.error(
                "enable_registration",
                "open registration without any verification lets anyone create accounts; "
                "also set registration_requires_token: true, enable_registration_captcha: true, "
                "registrations_require_3pid, or "
                "enable_registration_without_verification: true if you really want that",
            )
        config = _with_worker_options(reader, config, has_tls_files)
        if reader.get("report_stats", to_bool, False):
            reader.warnings.append(
                "report_stats: this server does not report usage statistics; ignored"
            )
        reader.finish()
        return dataclasses.replace(config, ignored_options=tuple(reader.warnings))


def _check_tls_files(
    reader: Reader, key: str, listeners: tuple[ListenerConfig, ...], has_tls_files: bool
) -> None:
    if has_tls_files:
        return
    for index, listener in enumerate(listeners):
        if listener.tls:
            reader.error(
                f"{key}[{index}].tls",
                "tls_certificate_path and tls_private_key_path must be set "
                "when a listener has tls: true",
            )


_WORKER_ONLY_OPTIONS: Final = (
    ("worker_listeners", "listeners"),
    ("worker_log_config", "log_config"),
    ("worker_pid_file", "pid_file"),
)


def _with_worker_options(
    reader: Reader, config: HomeserverConfig, has_tls_files: bool
) -> HomeserverConfig:
    """Read the worker options. On a worker, ``worker_listeners``,
    ``worker_log_config`` and ``worker_pid_file`` take the place of the shared
    file's ``listeners``, ``log_config`` and ``pid_file`` (as in Synapse)."""
    worker = WorkerConfig.parse(
        reader,
        postgres=config.database.engine == "postgres",
        redis_enabled=config.redis.enabled,
    )
    if not worker.is_worker:
        app = reader.raw("worker_app")
        app_known = app is None or is_worker_app(app) is not None
        for key, main_key in _WORKER_ONLY_OPTIONS:
            if reader.raw(key) is not None and app_known:
                reader.error(key, f"only read by a worker; the main process uses {main_key}")
        return dataclasses.replace(config, worker=worker)
    listeners = parse_listeners(reader, "worker_listeners", default=())
    _check_tls_files(reader, "worker_listeners", listeners, has_tls_files)
    return dataclasses.replace(
        config,
        worker=worker,
        listeners=listeners,
        log_config=worker.log_config,
        pid_file=reader.optional("worker_pid_file", to_path),
    )


def _rc_presence(reader: Reader) -> RateLimitConfig:
    """``rc_presence``: presence updates per user (``per_user``)."""
    limit = RateLimitConfig.parse(reader.child("per_user"), DEFAULT_RC_PRESENCE)
    reader.finish()
    return limit


def parse_config(raw: object, environ: Mapping[str, str] | None = None) -> HomeserverConfig:
    """Validate an already-parsed YAML document. Raises ConfigError listing every problem."""
    errors: list[str] = []
    reader = Reader(raw, "", errors)
    config = HomeserverConfig.parse(reader, environ)
    if errors:
        raise ConfigError(errors)
    return config


ConfigPath = str | os.PathLike[str]


def load_config(
    paths: ConfigPath | Sequence[ConfigPath], environ: Mapping[str, str] | None = None
) -> HomeserverConfig:
    """Read and validate the YAML config file at `paths`, or several files merged in
    order: a top-level key of a later file replaces the same key of an earlier one
    (as Synapse merges its ``--config-path`` files; sections are not merged).

    `environ` is where ``HOMESERVER_DATABASE_URL`` is looked up (None: ``os.environ``;
    pass ``{}`` to ignore the environment). Raises ConfigError with a one-line
    message for a missing or unreadable file, invalid YAML or invalid settings.
    """
    return parse_config(read_config_files(paths), environ)


def read_config_files(paths: ConfigPath | Sequence[ConfigPath]) -> object:
    """The YAML document of one file, or of several merged in order (a later file's
    top-level keys replacing an earlier one's), not yet validated. ConfigError for
    a missing or unreadable file, invalid YAML, or a file that is not a mapping."""
    if isinstance(paths, str | os.PathLike):
        return _read_yaml(paths)
    if not paths:
        raise ConfigError("no config file given")
    if len(paths) == 1:
        return _read_yaml(paths[0])
    merged: dict[object, object] = {}
    for path in paths:
        raw = _read_yaml(path)
        if raw is None:
            continue  # an empty file
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{os.fspath(path)}: expected a mapping of options, got {describe(raw)}"
            )
        merged.update(raw)
    return merged


def _read_yaml(path: ConfigPath) -> object:
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {os.fspath(path)}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {os.fspath(path)}: {error}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"invalid YAML in {os.fspath(path)}: {_yaml_problem(error)}") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A short description of a YAML syntax error with its (1-based) line and column."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
