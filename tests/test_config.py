"""Tests of homeserver.config: loading, defaults, key-path errors, generation."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import stat
import textwrap
from pathlib import Path
from typing import Any

import pytest
from signedjson.key import decode_verify_key_bytes, get_verify_key, read_signing_keys

from homeserver.config import (
    CachesConfig,
    ConfigError,
    DatabaseConfig,
    DirectoryRule,
    HomeserverConfig,
    JoinRateLimits,
    ListenerConfig,
    ListenerResource,
    LoginRateLimits,
    OldSigningKey,
    PostgresArgs,
    PresenceConfig,
    PushConfig,
    RateLimitConfig,
    RedisConfig,
    ThumbnailSize,
    TrustedKeyServer,
    generate_config,
    load_config,
    load_or_create_signing_key,
    parse_config,
    render_config,
)
from homeserver.config.email import EmailConfig, ThreepidDelegates
from homeserver.config.registration import ConsentConfig, RegistrationGuardsConfig

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.yaml"
NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "homeserver.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> HomeserverConfig:
    return load_config(write(tmp_path, text), NO_ENV if environ is None else environ)


def error_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text, environ)
    return str(caught.value)


def minimal(extra: str = "") -> str:
    return "server_name: example.org\n" + textwrap.dedent(extra)


# --- the example file ---------------------------------------------------------------


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE, NO_ENV)
    assert config.server_name == "localhost:8008"
    assert config.enable_registration and config.enable_registration_without_verification
    [listener] = config.listeners
    assert listener.port == 8008 and listener.bind_addresses == ("127.0.0.1",)
    assert not listener.tls
    for name in ("client", "federation", "keys", "media"):
        assert listener.serves(name)
    assert config.database == DatabaseConfig.sqlite(Path("data/homeserver.db"))
    assert config.signing_key_path == Path("data/localhost_8008.signing.key")
    assert config.media_store_path == Path("data/media_store")


def test_example_config_states_the_real_defaults() -> None:
    """Every value written in the example is the default, except the few it sets on purpose."""
    example = load_config(EXAMPLE, NO_ENV)
    defaults = parse_config({"server_name": "localhost:8008"}, NO_ENV)
    assert dataclasses.replace(
        example, enable_registration=False, enable_registration_without_verification=False
    ) == dataclasses.replace(defaults)


def test_example_config_is_what_the_template_renders() -> None:
    rendered = render_config(
        server_name="localhost:8008",
        database_path="data/homeserver.db",
        signing_key_path="data/localhost_8008.signing.key",
        media_store_path="data/media_store",
        registration_shared_secret=None,
        open_registration=True,
    )
    assert EXAMPLE.read_text(encoding="utf-8") == rendered, (
        "config.example.yaml is out of date: regenerate it with render_config"
    )


def test_example_config_comments_say_what_the_code_does() -> None:
    """The well-known answer is <server_name>:443 (not a listener's port, see
    test_versions_capabilities_wellknown) and register-user needs no shared secret
    (see tests/test_cli.py, whose config has none)."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    text = " ".join(line.lstrip("# ") for line in lines)
    assert "port of the first federation listener" not in text
    assert "at <server_name>:443 (or at server_name itself if it has a port)" in text
    assert "(such as the register-user command)" not in text
    assert "The register-user command does not use it: it writes to the database directly" in text


@pytest.mark.parametrize(
    "cls",
    [
        HomeserverConfig,
        ListenerConfig,
        ListenerResource,
        PostgresArgs,
        RateLimitConfig,
        LoginRateLimits,
        ThumbnailSize,
        TrustedKeyServer,
        OldSigningKey,
        PresenceConfig,
        PushConfig,
        CachesConfig,
        RedisConfig,
        JoinRateLimits,
        DirectoryRule,
        EmailConfig,
        ThreepidDelegates,
        ConsentConfig,
        RegistrationGuardsConfig,
    ],
)
def test_example_config_documents_every_option(cls: type) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    # OldSigningKey.key_id is the mapping key, ignored_options what the file held,
    # EmailConfig.can_verify_email whether the email section is there, and
    # registration_guards groups top-level options (RegistrationGuardsConfig's fields),
    # and worker the worker options (tests/workers/test_worker_config.py checks them)
    not_options = {
        "key_id",
        "ignored_options",
        "can_verify_email",
        "registration_guards",
        "worker",
    }
    for f in dataclasses.fields(cls):
        if f.name not in not_options:
            assert re.search(rf"\b{f.name}:", text), f"{f.name} is not in config.example.yaml"


# --- defaults -----------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, "server_name: example.org\n")
    assert config.public_baseurl is None
    assert config.client_base_url_effective == "https://example.org/"
    [listener] = config.listeners
    assert (listener.port, listener.bind_addresses, listener.type) == (8008, ("127.0.0.1",), "http")
    assert [r.names for r in listener.resources] == [("client", "federation", "keys", "media")]
    assert config.database.engine == "sqlite"
    assert config.database.sqlite_path == Path("data/homeserver.db")
    assert config.database.pg is None
    assert config.signing_key_path == Path("data/example.org.signing.key")
    assert not config.enable_registration
    assert not config.registration_requires_token
    assert config.registration_shared_secret is None
    assert not config.allow_guest_access
    assert config.bcrypt_rounds == 12
    assert config.media_store_path == Path("data/media_store")
    assert config.max_upload_size == 50 * 1024 * 1024
    assert config.max_request_body_size == 1024 * 1024
    assert config.max_image_pixels == 32 * 1024 * 1024
    assert config.log_level == "INFO"
    assert config.rc_message == RateLimitConfig(0.2, 10)
    assert config.rc_registration == RateLimitConfig(0.17, 3)
    assert config.rc_login.address == RateLimitConfig(0.003, 5)
    assert config.rc_login.account == RateLimitConfig(0.003, 5)
    assert config.rc_login.failed_attempts == RateLimitConfig(0.17, 3)
    assert config.default_room_version == "12"
    assert config.presence.enabled
    assert config.push.include_content
    assert config.push.legacy_mention_rules  # as Synapse
    assert config.federation_verify_certificates
    assert config.federation_domain_whitelist is None
    assert config.trusted_key_servers == ()
    assert ipaddress.ip_network("10.0.0.0/8") in config.ip_range_blacklist
    assert ipaddress.ip_network("0.0.0.0/32") in config.ip_range_blacklist
    assert [(t.width, t.height, t.method) for t in config.thumbnail_sizes] == [
        (32, 32, "crop"),
        (96, 96, "crop"),
        (320, 240, "scale"),
        (640, 480, "scale"),
        (800, 600, "scale"),
    ]
    assert config.enable_media_repo and not config.url_preview_enabled
    assert config.unauthenticated_media_allowed_before is None
    assert config.key_refresh_interval == 86_400_000


def test_push_legacy_mention_rules(tmp_path: Path) -> None:
    config = load_text(tmp_path, minimal("push:\n  legacy_mention_rules: false\n"))
    assert not config.push.legacy_mention_rules
    message = error_of(tmp_path, minimal("push:\n  legacy_mention_rules: sometimes\n"))
    assert "push.legacy_mention_rules" in message


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_text(tmp_path, minimal())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server_name = "other.org"  # type: ignore[misc]


def test_values_are_converted(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        minimal("""
            public_baseurl: https://matrix.example.org
            client_base_url: https://client.example.org/
            max_upload_size: 100K
            max_request_body_size: 2048
            max_image_pixels: 1g
            log_level: debug
            bcrypt_rounds: 4
            key_refresh_interval: 2h
            turn_user_lifetime: 30s
            listeners:
              - port: 443
                bind_addresses: ["::", "0.0.0.0"]
                x_forwarded: true
                resources:
                  - names: [client]
                    compress: true
                  - names: [federation, keys]
            ip_range_blacklist: ["10.0.0.0/8"]
            federation_domain_whitelist: ["example.com", "[::1]:8448"]
            trusted_key_servers:
              - server_name: matrix.org
                verify_keys:
                  "ed25519:auto": "Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw"
            old_signing_keys:
              "ed25519:old": {key: "l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ", expired_ts: 12}
        """),
    )
    assert config.public_baseurl == "https://matrix.example.org/"
    assert config.client_base_url_effective == "https://client.example.org/"
    assert config.max_upload_size == 100 * 1024
    assert config.max_request_body_size == 2048
    assert config.max_image_pixels == 1024**3
    assert config.log_level == "DEBUG"
    assert config.bcrypt_rounds == 4
    assert config.key_refresh_interval == 2 * 3600 * 1000
    assert config.turn_user_lifetime == 30_000
    [listener] = config.listeners
    assert listener.bind_addresses == ("::", "0.0.0.0")
    assert listener.serves("client") and listener.compresses("client")
    assert listener.serves("keys") and not listener.compresses("keys")
    assert not listener.serves("media")
    assert ipaddress.ip_network("192.168.0.0/16") not in config.ip_range_blacklist
    assert ipaddress.ip_network("::/128") in config.ip_range_blacklist
    assert config.federation_domain_whitelist == ("example.com", "[::1]:8448")
    [notary] = config.trusted_key_servers
    assert notary.verify_keys is not None and "ed25519:auto" in notary.verify_keys
    assert config.old_signing_keys["ed25519:old"].expired_ts == 12


def test_public_baseurl_is_used_when_no_client_base_url(tmp_path: Path) -> None:
    config = load_text(tmp_path, minimal("public_baseurl: http://localhost:8008/\n"))
    assert config.client_base_url_effective == "http://localhost:8008/"


@pytest.mark.parametrize(
    "name", ["example.org", "localhost:8008", "1.2.3.4", "1.2.3.4:8448", "[::1]", "[::1]:80"]
)
def test_valid_server_names(tmp_path: Path, name: str) -> None:
    assert load_text(tmp_path, f'server_name: "{name}"\n').server_name == name


# --- errors name the key path -------------------------------------------------------


def test_wrong_type(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        minimal("""
            listeners:
              - port: abc
                resources: [{names: [client]}]
        """),
    )
    assert message == 'listeners[0].port: expected an integer, got "abc"'


def test_wrong_type_bool(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal("enable_registration: 'yes'\n")) == (
        'enable_registration: expected true or false, got "yes"'
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal("foo: 1\n")) == "foo: unknown option"


def test_unknown_nested_key(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        minimal("""
            listeners:
              - port: 8008
                bogus: true
                resources: [{names: [client]}]
        """),
    )
    assert message == "listeners[0].bogus: unknown option"


def test_misspelt_option_names_the_closest_one(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal("enable_registation: true\n")) == (
        'enable_registation: unknown option (did you mean "enable_registration"?)'
    )
    assert error_of(tmp_path, minimal("require_membership_for_alias: false\n")) == (
        "require_membership_for_alias: unknown option "
        '(did you mean "require_membership_for_aliases"?)'
    )
    assert error_of(tmp_path, minimal("caches: {sync_response_cache_durations: 0}\n")) == (
        "caches.sync_response_cache_durations: unknown option "
        '(did you mean "sync_response_cache_duration"?)'
    )


def test_synapse_options_not_implemented_are_accepted_with_a_warning(tmp_path: Path) -> None:
    """A Synapse admin's homeserver.yaml starts: options of Synapse that this server
    does not implement are named in one warning each, at every depth."""
    config = load_text(
        tmp_path,
        minimal("""
            macaroon_secret_key: "secret"
            hs_disabled: false
            email: {smtp_host: localhost, notif_from: "hs@localhost", enable_notifs: false}
            auto_join_rooms: []
            cas_config: {enabled: false, service_url: "https://hs.example.org"}
            caches: {global_factor: 1.0, sync_response_cache_duration: 0}
            rc_federation: {window_size: 1000, sleep_limit: 100}
            report_stats: false
        """),
    )
    warned = sorted(warning.split(":")[0] for warning in config.ignored_options)
    assert warned == sorted(
        [
            "caches.sync_response_cache_duration",
            "rc_federation.window_size",
            "rc_federation.sleep_limit",
            "macaroon_secret_key",
            "hs_disabled",
            "email.enable_notifs",
            "auto_join_rooms",
            "cas_config.service_url",
        ]
    )
    assert all("does not implement" in warning for warning in config.ignored_options)
    assert config.caches.global_factor == 1.0
    reported = load_text(tmp_path, minimal("report_stats: true\n"))
    assert reported.ignored_options == (
        "report_stats: this server does not report usage statistics; ignored",
    )


def test_implemented_synapse_options(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        minimal("""
            pid_file: /run/hs.pid
            log_config: /etc/hs/log.yaml
            use_insecure_ssl_client_just_for_testing_do_not_use: true
            federation_custom_ca_list: [/etc/ca.crt]
            federation_ip_range_blacklist: ["10.0.0.0/8"]
            url_preview_ip_range_blacklist: ["192.168.0.0/16"]
            url_preview_ip_range_whitelist: ["192.168.1.1"]
            require_membership_for_aliases: false
            room_list_publication_rules: [{user_id: "@admin*", action: allow}, {action: deny}]
            alias_creation_rules: [{alias: "#bot*", action: deny}, {action: allow}]
            rc_joins: {local: {per_second: 1, burst_count: 2}}
            rc_room_creation: {per_second: 3, burst_count: 4}
            rc_presence: {per_user: {per_second: 5, burst_count: 6}}
        """),
    )
    assert config.ignored_options == ()
    assert config.pid_file == Path("/run/hs.pid")
    assert config.log_config == Path("/etc/hs/log.yaml")
    assert config.use_insecure_ssl_client_just_for_testing_do_not_use
    assert config.federation_custom_ca_list == (Path("/etc/ca.crt"),)
    # 0.0.0.0 and :: are added to every blacklist, as in Synapse
    assert config.federation_ip_range_blacklist == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("0.0.0.0/32"),
        ipaddress.ip_network("::/128"),
    )
    assert config.url_preview_ip_range_blacklist is not None
    assert ipaddress.ip_network("192.168.0.0/16") in config.url_preview_ip_range_blacklist
    assert config.url_preview_ip_range_whitelist == (ipaddress.ip_network("192.168.1.1/32"),)
    assert not config.require_membership_for_aliases
    assert config.room_list_publication_rules == (
        DirectoryRule(action="allow", user_id="@admin*"),
        DirectoryRule(action="deny"),
    )
    assert config.alias_creation_rules[0] == DirectoryRule(action="deny", alias="#bot*")
    assert config.rc_joins == JoinRateLimits(
        local=RateLimitConfig(1, 2), remote=JoinRateLimits().remote
    )
    assert config.rc_room_creation == RateLimitConfig(3, 4)
    assert config.rc_presence == RateLimitConfig(5, 6)


def test_synapse_defaults_of_directory_options(tmp_path: Path) -> None:
    config = load_text(tmp_path, minimal())
    assert config.require_membership_for_aliases
    assert config.room_list_publication_rules == ()  # nobody may publish
    assert config.alias_creation_rules == (DirectoryRule(action="allow"),)
    assert config.federation_ip_range_blacklist is None
    assert config.url_preview_ip_range_blacklist is None
    assert not config.use_insecure_ssl_client_just_for_testing_do_not_use


def test_directory_rule_errors(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal("room_list_publication_rules: [{action: maybe}]\n")) == (
        'room_list_publication_rules[0].action: expected one of "allow", "deny", got "maybe"'
    )
    assert error_of(tmp_path, minimal("alias_creation_rules: [{user_id: '*'}]\n")) == (
        "alias_creation_rules[0].action: this option is required"
    )
    assert error_of(tmp_path, minimal("alias_creation_rules: [{action: allow, room: x}]\n")) == (
        'alias_creation_rules[0].room: unknown option (did you mean "room_id"?)'
    )


def test_directory_rule_globs() -> None:
    rule = DirectoryRule(action="allow", user_id="@a?ice:*", alias="#pub-*")
    assert rule.matches("@alice:example.org", "!r:x", ("#other:x", "#PUB-1:x"))
    assert not rule.matches("@alice:example.org", "!r:x", ("#other:x",))
    assert not rule.matches("@bob:example.org", "!r:x", ("#pub-1:x",))
    # no alias: only a rule for any alias matches
    assert not rule.matches("@alice:example.org", "!r:x", ())
    assert DirectoryRule(action="deny").matches("@x:y", "!r:x", ())


def test_unknown_key_deeper(tmp_path: Path) -> None:
    assert (
        error_of(tmp_path, minimal("rc_login: {address: {per_second: 1, burst: 2}}\n"))
        == "rc_login.address.burst: unknown option"
    )


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_bad_port(tmp_path: Path, port: str) -> None:
    message = error_of(
        tmp_path,
        minimal(f"listeners: [{{port: {port}, resources: [{{names: [client]}}]}}]\n"),
    )
    assert message == f"listeners[0].port: expected an integer from 1 to 65535, got {port}"


def test_bad_resource_name(tmp_path: Path) -> None:
    message = error_of(
        tmp_path, minimal("listeners: [{port: 8008, resources: [{names: [client, chat]}]}]\n")
    )
    assert message.startswith('listeners[0].resources[0].names[1]: expected one of "client"')
    assert message.endswith('got "chat"')


def test_openid_resource_is_accepted(tmp_path: Path) -> None:
    """Synapse's "openid" resource: the OpenID userinfo endpoint alone."""
    config = load_text(
        tmp_path,
        minimal("listeners: [{port: 8448, resources: [{names: [openid]}]}]\n"),
    )
    assert [r.names for r in config.listeners[0].resources] == [("openid",)]


def test_missing_required_listener_fields(tmp_path: Path) -> None:
    message = error_of(tmp_path, minimal("listeners: [{bind_addresses: ['127.0.0.1']}]\n"))
    assert message == (
        "listeners[0].port: this option is required; "
        "listeners[0].resources: this option is required"
    )


def test_empty_listeners(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal("listeners: []\n")) == (
        "listeners: at least one listener is required"
    )


def test_bad_port_is_not_also_reported_as_a_clash(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        minimal("""
            listeners:
              - {port: 8008, resources: [{names: [client]}]}
              - {port: x, resources: [{names: [federation]}]}
        """),
    )
    assert message == 'listeners[1].port: expected an integer, got "x"'


def test_duplicate_listener(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        minimal("""
            listeners:
              - {port: 8008, resources: [{names: [client]}]}
              - {port: 8008, resources: [{names: [federation]}]}
        """),
    )
    assert message == "listeners[1].port: 127.0.0.1:8008 is already used by listeners[0]"


@pytest.mark.parametrize(
    "name", ["", "exa mple.org", "example.org:", "example.org:99999", "[::1", "[nothost]", "a_b"]
)
def test_bad_server_name(tmp_path: Path, name: str) -> None:
    message = error_of(tmp_path, f'server_name: "{name}"\n')
    assert message.startswith("server_name: expected a server name")


def test_missing_server_name(tmp_path: Path) -> None:
    assert error_of(tmp_path, "log_level: INFO\n") == "server_name: this option is required"


def test_empty_file(tmp_path: Path) -> None:
    assert error_of(tmp_path, "") == "server_name: this option is required"


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    assert error_of(tmp_path, "- a\n- b\n").startswith(
        "the config file: expected a mapping, got a list"
    )


def test_bad_cidr(tmp_path: Path) -> None:
    message = error_of(tmp_path, minimal("ip_range_blacklist: ['10.0.0.0/8', '10.0.0.0/33']\n"))
    assert message == (
        'ip_range_blacklist[1]: expected an IP range in CIDR notation, got "10.0.0.0/33"'
    )
    message = error_of(tmp_path, minimal("federation_ip_range_whitelist: [banana]\n"))
    assert message.startswith("federation_ip_range_whitelist[0]: expected an IP range")


@pytest.mark.parametrize("size", ["50X", "M", "-5", "1.5M"])
def test_bad_size_string(tmp_path: Path, size: str) -> None:
    message = error_of(tmp_path, minimal(f'max_upload_size: "{size}"\n'))
    assert message == (
        'max_upload_size: expected a size in bytes or a string like "100K", "50M" or "1G", '
        f'got "{size}"'
    )


def test_bad_duration(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal("key_refresh_interval: soon\n")).startswith(
        "key_refresh_interval: expected a duration"
    )


def test_gc_schedule_as_synapse(tmp_path: Path) -> None:
    default = load_text(tmp_path, minimal(""))
    assert default.gc_thresholds is None
    assert default.gc_min_interval == (1_000, 10_000, 30_000)
    config = load_text(
        tmp_path,
        minimal('gc_thresholds: [1000, 20, 20]\ngc_min_interval: ["500ms", "1m", 60000]\n'),
    )
    assert config.gc_thresholds == (1000, 20, 20)
    assert config.gc_min_interval == (500, 60_000, 60_000)
    assert config.ignored_options == ()


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("gc_thresholds: [700, 10]", "gc_thresholds: expected a list of 3 values"),
        ("gc_thresholds: 700", "gc_thresholds: expected a list"),
        ("gc_thresholds: [700, 10, 0]", "gc_thresholds[2]: expected an integer from 1"),
        ("gc_thresholds: [700, ten, 10]", "gc_thresholds[1]: expected an integer"),
        ('gc_min_interval: ["1s", "10s", "30s", "1m"]', "gc_min_interval: expected a list of 3"),
        ('gc_min_interval: ["1s", "soon", "30s"]', "gc_min_interval[1]: expected a duration"),
    ],
)
def test_bad_gc_schedule(tmp_path: Path, yaml_text: str, expected: str) -> None:
    assert error_of(tmp_path, minimal(yaml_text + "\n")).startswith(expected)


def test_bad_log_level_and_room_version(tmp_path: Path) -> None:
    message = error_of(tmp_path, minimal("log_level: LOUD\ndefault_room_version: 13\n"))
    first, second = message.split("; ")
    assert first.startswith('log_level: expected one of "DEBUG"')
    assert second.startswith('default_room_version: expected one of "1", "2"')
    assert second.endswith('got "13"')
    assert load_text(tmp_path, minimal("default_room_version: 11\n")).default_room_version == "11"


def test_bad_bcrypt_rounds(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal("bcrypt_rounds: 3\n")) == (
        "bcrypt_rounds: expected an integer from 4 to 31, got 3"
    )


def test_bad_url(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal("public_baseurl: matrix.example.org\n")) == (
        'public_baseurl: expected an http:// or https:// URL, got "matrix.example.org"'
    )


def test_bad_thumbnail_size(tmp_path: Path) -> None:
    message = error_of(tmp_path, minimal("thumbnail_sizes: [{width: 32, height: 32, method: x}]"))
    assert message == 'thumbnail_sizes[0].method: expected one of "crop", "scale", got "x"'


def test_bad_signing_key_in_old_signing_keys(tmp_path: Path) -> None:
    message = error_of(
        tmp_path, minimal("old_signing_keys: {'ed25519:a': {key: nope, expired_ts: 1}}\n")
    )
    assert message.startswith("old_signing_keys.ed25519:a.key: expected an ed25519 public key")


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, minimal("foo: 1\nbcrypt_rounds: x\npresence: {enabled: 2}\n"))
    assert set(caught.value.errors) == {
        "foo: unknown option",
        'bcrypt_rounds: expected an integer, got "x"',
        "presence.enabled: expected true or false, got 2",
    }


def test_tls_without_certificate_paths(tmp_path: Path) -> None:
    text = minimal("""
        listeners:
          - port: 8008
            resources: [{names: [client]}]
          - port: 8448
            tls: true
            resources: [{names: [federation]}]
    """)
    assert error_of(tmp_path, text) == (
        "listeners[1].tls: tls_certificate_path and tls_private_key_path must be set "
        "when a listener has tls: true"
    )
    config = load_text(
        tmp_path, text + "tls_certificate_path: a.crt\ntls_private_key_path: a.key\n"
    )
    assert config.listeners[1].tls
    assert config.tls_certificate_path == Path("a.crt")


def test_open_registration_needs_a_verification_choice(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal("enable_registration: true\n")).startswith(
        "enable_registration: open registration without any verification"
    )
    config = load_text(
        tmp_path, minimal("enable_registration: true\nregistration_requires_token: true\n")
    )
    assert config.enable_registration and config.registration_requires_token


# --- database -----------------------------------------------------------------------


def test_sqlite_path(tmp_path: Path) -> None:
    config = load_text(
        tmp_path, minimal("database: {name: sqlite3, args: {database: /var/lib/hs.db}}\n")
    )
    assert config.database == DatabaseConfig("sqlite", Path("/var/lib/hs.db"), None)


def test_psycopg2_alias_is_normalised(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        minimal("""
            database:
              name: psycopg2
              args:
                user: synapse
                password: "it's secret"
                database: hs
                host: db.internal
                cp_min: 5
                cp_max: 20
        """),
    )
    assert config.database.engine == "postgres"
    assert config.database.sqlite_path is None
    assert config.database.pg == PostgresArgs(
        dbname="hs",
        user="synapse",
        password="it's secret",
        host="db.internal",
        port=5432,
        cp_min=5,
        cp_max=20,
    )
    assert config.database.postgres_conninfo() == (
        "host=db.internal port=5432 dbname=hs user=synapse password='it\\'s secret'"
    )


def test_postgres_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, minimal("database: {name: psycopg, args: {dbname: hs}}\n"))
    assert config.database.pg == PostgresArgs(dbname="hs")
    assert config.database.pg.host == "127.0.0.1" and config.database.pg.port == 5432
    assert (config.database.pg.cp_min, config.database.pg.cp_max) == (2, 10)


def test_postgres_errors(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal("database: {name: mysql, args: {user: x}}\n")) == (
        'database.name: expected one of "sqlite3", "psycopg", "psycopg2", got "mysql"'
    )
    assert error_of(
        tmp_path, minimal("database: {name: psycopg, args: {port: x, dbnam: hs}}\n")
    ) == (
        'database.args.port: expected an integer, got "x"; database.args.dbnam: unknown option (did you mean "dbname"?)'
    )
    assert error_of(
        tmp_path, minimal("database: {name: psycopg, args: {cp_min: 5, cp_max: 2}}\n")
    ) == ("database.args.cp_min: must not exceed cp_max (2), got 5")
    assert (
        error_of(tmp_path, minimal("database: {name: sqlite3, args: {user: me}}\n"))
        == "database.args.user: unknown option"
    )


def test_conninfo_requires_postgres() -> None:
    with pytest.raises(ValueError):
        DatabaseConfig.sqlite(Path("x.db")).postgres_conninfo()


def test_database_url_overrides_the_database_section(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        minimal("database: {name: sqlite3, args: {database: x.db}}\n"),
        {"HOMESERVER_DATABASE_URL": "postgresql://alice:p%40ss@db.example:6543/matrix"},
    )
    assert config.database == DatabaseConfig.postgres(
        PostgresArgs(dbname="matrix", user="alice", password="p@ss", host="db.example", port=6543)
    )
    config = load_text(
        tmp_path,
        minimal(),
        {"HOMESERVER_DATABASE_URL": "postgres://%2Fvar%2Frun%2Fpostgresql/hs?sslmode=disable"},
    )
    assert config.database.pg == PostgresArgs(
        dbname="hs", host="/var/run/postgresql", sslmode="disable"
    )
    assert load_text(tmp_path, minimal(), {"HOMESERVER_DATABASE_URL": ""}).database.engine == (
        "sqlite"
    )


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "postgresql://u@h:99999/db",
        "postgresql://u@h/",
        "postgresql://u@h/db?foo=bar",
        "not a url",
    ],
)
def test_bad_database_url(tmp_path: Path, url: str) -> None:
    message = error_of(tmp_path, minimal(), {"HOMESERVER_DATABASE_URL": url})
    assert message.startswith("HOMESERVER_DATABASE_URL: ")


# --- files --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, NO_ENV)
    assert str(caught.value) == f"config file not found: {path}"


def test_invalid_yaml(tmp_path: Path) -> None:
    message = error_of(tmp_path, "server_name: example.org\nlisteners: [\n  port: 1\n")
    assert message.startswith(f"invalid YAML in {tmp_path / 'homeserver.yaml'}: ")
    assert re.search(r"at line \d+, column \d+$", message)
    assert "\n" not in message


def test_load_config_accepts_str_path(tmp_path: Path) -> None:
    path = write(tmp_path, minimal())
    assert load_config(str(path), NO_ENV).server_name == "example.org"


# --- generation and signing keys ----------------------------------------------------


def test_generate_config_writes_a_loadable_config_and_a_key(tmp_path: Path) -> None:
    config_path = tmp_path / "etc" / "homeserver.yaml"
    generate_config("matrix.example.org:8448", config_path)
    config = load_config(config_path, NO_ENV)
    assert config.server_name == "matrix.example.org:8448"
    assert not config.enable_registration
    assert config.registration_shared_secret and len(config.registration_shared_secret) >= 32
    data = tmp_path / "etc" / "data"
    assert config.database.sqlite_path == data / "homeserver.db"
    assert config.media_store_path == data / "media_store"
    key_path = tmp_path / "etc" / "matrix.example.org_8448.signing.key"
    assert config.signing_key_path == key_path
    line = key_path.read_text()
    assert re.fullmatch(r"ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n", line)
    [key] = read_signing_keys(line.splitlines())
    assert load_or_create_signing_key(key_path).encode() == key.encode()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600


def test_generate_config_secrets_differ(tmp_path: Path) -> None:
    generate_config("a.example", tmp_path / "a" / "hs.yaml")
    generate_config("a.example", tmp_path / "b" / "hs.yaml")
    first = load_config(tmp_path / "a" / "hs.yaml", NO_ENV)
    second = load_config(tmp_path / "b" / "hs.yaml", NO_ENV)
    assert first.registration_shared_secret != second.registration_shared_secret


def test_generate_config_with_data_dir(tmp_path: Path) -> None:
    generate_config("example.org", tmp_path / "hs.yaml", data_dir=tmp_path / "var")
    config = load_config(tmp_path / "hs.yaml", NO_ENV)
    assert config.database.sqlite_path == tmp_path / "var" / "homeserver.db"


def test_generate_config_refuses_to_overwrite(tmp_path: Path) -> None:
    config_path = tmp_path / "homeserver.yaml"
    config_path.write_text("keep me")
    with pytest.raises(ConfigError, match="already exists"):
        generate_config("example.org", config_path)
    assert config_path.read_text() == "keep me"
    assert not (tmp_path / "example.org.signing.key").exists()


def test_generate_config_rejects_bad_server_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="server_name"):
        generate_config("not a name", tmp_path / "hs.yaml")


def test_load_or_create_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "server.signing.key"
    key = load_or_create_signing_key(path)
    assert key.alg == "ed25519" and key.version.startswith("a_")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_signing_key(path)
    assert again.version == key.version and again.encode() == key.encode()
    verify_key = decode_verify_key_bytes(f"ed25519:{key.version}", get_verify_key(key).encode())
    assert verify_key.version == key.version


def test_load_or_create_signing_key_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text("")
    with pytest.raises(ConfigError, match="signing_key_path"):
        load_or_create_signing_key(path)
    path.write_text("ed25519 a_bc !!!notbase64\n")
    with pytest.raises(ConfigError, match="signing_key_path"):
        load_or_create_signing_key(path)


def test_caches_section() -> None:
    from homeserver.config import parse_config as parse
    from storage.cache_sizes import BASE_SIZES

    config = parse(
        {
            "server_name": "example.org",
            "caches": {
                "global_factor": 1.0,
                "per_cache_factors": {"*stateGroupCache*": 2, "get_user_by_access_token": 0.1},
            },
        },
        NO_ENV,
    )
    sizes = config.caches.sizes
    assert sizes.size("*stateGroupCache*") == 2 * BASE_SIZES["*stateGroupCache*"]
    assert sizes.size("get_user_by_access_token") == BASE_SIZES["get_user_by_access_token"] // 10
    assert sizes.size("*getEvent*") == BASE_SIZES["*getEvent*"]
    # the default: half of every base size, as Synapse's default global_factor
    default = parse({"server_name": "example.org"}, NO_ENV).caches.sizes
    assert default.size("*getEvent*") == BASE_SIZES["*getEvent*"] // 2


@pytest.mark.parametrize(
    ("caches", "message"),
    [
        ({"per_cache_factors": {"no_such_cache": 1}}, "caches.per_cache_factors.no_such_cache"),
        ({"per_cache_factors": {"getEvent": 0}}, "caches.per_cache_factors.getEvent"),
        ({"per_cache_factors": {"getEvent": "big"}}, "caches.per_cache_factors.getEvent"),
        ({"per_cache_factors": ["getEvent"]}, "caches.per_cache_factors"),
        ({"global_factor": -1}, "caches.global_factor"),
    ],
)
def test_bad_caches_section(caches: dict[str, Any], message: str) -> None:
    from homeserver.config import ConfigError
    from homeserver.config import parse_config as parse

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse({"server_name": "example.org", "caches": caches}, NO_ENV)
