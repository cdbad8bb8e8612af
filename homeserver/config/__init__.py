"""Configuration: YAML -> typed, validated, frozen dataclasses.

``load_config(path)`` reads the file and returns a `HomeserverConfig`; every problem
is reported as ``<dotted key path>: <message>`` in one `ConfigError`, e.g.
``listeners[0].port: expected an integer, got "abc"``. Option names follow Synapse.
There is no global config: the composition root loads it once and passes it on.

Modules: ``_reader`` (the key-path reader and value converters), ``sections`` and
``database`` (nested sections), ``workers`` (which process does what),
``homeserver_config`` (the top level and loading),
``template`` (the commented YAML file), ``generate`` (new config and signing key).
"""

from homeserver.config._reader import ConfigError
from homeserver.config.database import (
    DATABASE_URL_VARIABLE,
    DatabaseConfig,
    PostgresArgs,
    database_from_url,
)
from homeserver.config.generate import generate_config, load_or_create_signing_key
from homeserver.config.homeserver_config import (
    DEFAULT_IP_RANGE_BLACKLIST,
    DEFAULT_ROOM_VERSION,
    HomeserverConfig,
    LogLevel,
    load_config,
    parse_config,
    read_config_files,
)
from homeserver.config.oidc import AttributeRequirement, OidcMappingConfig, OidcProviderConfig
from homeserver.config.retention import RetentionConfig, RetentionPurgeJob
from homeserver.config.sections import (
    CachesConfig,
    DirectoryRule,
    JoinRateLimits,
    ListenerConfig,
    ListenerResource,
    LoginRateLimits,
    MediaRetentionConfig,
    OldSigningKey,
    PresenceConfig,
    PushConfig,
    RateLimitConfig,
    RedisConfig,
    ResourceName,
    ServerNoticesConfig,
    ThumbnailSize,
    TrustedKeyServer,
    UserDirectoryConfig,
)
from homeserver.config.sso import CasConfig, SsoConfig
from homeserver.config.template import render_config
from homeserver.config.workers import InstanceLocation, StreamWriters, WorkerConfig

__all__ = [
    "DATABASE_URL_VARIABLE",
    "DEFAULT_IP_RANGE_BLACKLIST",
    "DEFAULT_ROOM_VERSION",
    "AttributeRequirement",
    "CachesConfig",
    "CasConfig",
    "ConfigError",
    "DatabaseConfig",
    "DirectoryRule",
    "HomeserverConfig",
    "InstanceLocation",
    "JoinRateLimits",
    "ListenerConfig",
    "ListenerResource",
    "LogLevel",
    "LoginRateLimits",
    "MediaRetentionConfig",
    "OidcMappingConfig",
    "OidcProviderConfig",
    "OldSigningKey",
    "PostgresArgs",
    "PresenceConfig",
    "PushConfig",
    "RateLimitConfig",
    "RedisConfig",
    "ResourceName",
    "RetentionConfig",
    "RetentionPurgeJob",
    "ServerNoticesConfig",
    "SsoConfig",
    "StreamWriters",
    "ThumbnailSize",
    "TrustedKeyServer",
    "UserDirectoryConfig",
    "WorkerConfig",
    "database_from_url",
    "generate_config",
    "load_config",
    "load_or_create_signing_key",
    "parse_config",
    "read_config_files",
    "render_config",
]
