"""The option names a Synapse config file may carry, by section.

A Synapse admin's ``homeserver.yaml`` must start this server. An option this server
implements is read under its Synapse name by the section that owns it; every other
name listed here is a Synapse option this server does not implement (yet): it is
accepted and named in one start-up warning. A key in no list is a typo or an option of
some other program, and stays an error (with a did-you-mean).

Sections are keyed by their key path with list indexes written ``[]``
(``listeners[].resources[]``); every ``rc_*`` rate limit that is a plain token bucket
shares the ``rc_*`` entry. Names come from Synapse's configuration manual and, for
the legacy names it still reads, from its config code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

_TOP_LEVEL: Final = frozenset(
    """
    account_validity admin_contact alias_creation_rules
    allow_device_name_lookup_over_federation allow_guest_access allow_per_room_profiles
    allow_profile_lookup_over_federation allow_public_rooms_over_federation
    allow_public_rooms_without_auth allow_underscore_prefixed_registration
    allowed_avatar_mimetypes app_service_config_files
    auto_accept_invites auto_join_mxid_localpart auto_join_rooms auto_join_rooms_for_guests
    autocreate_auto_join_room_preset autocreate_auto_join_rooms
    autocreate_auto_join_rooms_federated background_updates bcrypt_rounds
    block_non_admin_invites caches cas_config daemonize database databases
    default_identity_server default_power_level_content_override default_room_version
    delete_stale_devices_after dummy_events_threshold
    dynamic_thumbnails email enable_3pid_lookup
    enable_authenticated_media enable_ephemeral_messages enable_local_media_storage
    enable_media_repo enable_metrics enable_registration
    enable_registration_without_verification enable_room_list_search enable_search
    enable_set_avatar_url enable_set_displayname encryption_enabled_by_default_for_room_type
    event_cache_size exclude_rooms_from_presence exclude_rooms_from_sync
    experimental_features extra_well_known_client_content federation
    federation_certificate_verification_whitelist federation_client_minimum_tls_version
    federation_custom_ca_list federation_domain_whitelist federation_ip_range_blacklist
    federation_metrics_domains federation_rc_concurrent federation_rc_reject_limit
    federation_rc_sleep_delay federation_rc_sleep_limit federation_rc_window_size
    federation_rr_transactions_per_room_per_second
    federation_verify_certificates federation_whitelist_endpoint_enabled
    filter_timeline_limit forgotten_room_retention_period
    gc_min_interval gc_thresholds hs_disabled hs_disabled_message
    http_proxy https_proxy include_profile_data_on_invite inhibit_user_in_use_error
    ip_range_blacklist ip_range_whitelist jwt_config key_refresh_interval
    key_server_signing_keys_path limit_profile_requests_to_users_who_share_rooms
    limit_remote_rooms limit_usage_by_mau listeners log_config login_via_existing_session
    macaroon_secret_key macaroon_secret_key_path manhole manhole_settings
    matrix_authentication_service matrix_rtc mau_appservice_trial_days mau_limit_alerting
    mau_limit_reserved_threepids mau_stats_only mau_trial_days max_avatar_size
    max_event_delay_duration max_image_pixels max_mau_value max_pending_media_uploads
    max_spider_size max_upload_size
    media_storage_providers media_store_path media_upload_limits metrics_flags modules
    next_link_domain_whitelist no_proxy_hosts nonrefreshable_access_token_lifetime
    oembed old_signing_keys opentracing
    outbound_federation_restricted_to password_config password_providers pid_file presence
    prevent_media_downloads_from print_pidfile public_baseurl push
    rc_admin_redaction rc_delayed_event_mgmt rc_federation rc_invites
    rc_joins rc_joins_per_room rc_login rc_media_create rc_message rc_presence
    rc_registration rc_registration_token_validity rc_reports rc_room_creation
    rc_third_party_invite rc_user_directory
    redis refresh_token_lifetime
    refreshable_access_token_lifetime registration_requires_token
    registration_shared_secret registration_shared_secret_path
    remote_media_download_burst_count remote_media_download_per_second
    replication_torture_level report_stats report_stats_endpoint
    request_token_inhibit_3pid_errors require_auth_for_profile_requests
    require_membership_for_aliases restrict_public_rooms_to_local_users
    room_invite_state_types room_list_publication_rules room_prejoin_state
    saml2_config sentry serve_server_wellknown
    server_context server_name server_notices session_lifetime signing_key_path
    soft_file_limit spam_checker sso stats
    suppress_key_server_warning templates third_party_event_rules thumbnail_sizes
    tls_certificate_path tls_private_key_path track_appservice_user_ips
    track_puppeted_user_ips trusted_key_servers turn_allow_guests turn_password
    turn_shared_secret turn_shared_secret_path turn_uris turn_user_lifetime turn_username
    ui_auth unused_expiration_time
    url_preview_accept_language url_preview_enabled url_preview_ip_range_blacklist
    url_preview_ip_range_whitelist url_preview_url_blacklist
    use_appservice_legacy_authorization use_frozen_dicts
    use_insecure_ssl_client_just_for_testing_do_not_use user_agent_suffix
    user_directory user_ips_max_age user_types web_client_location
    worker_daemonize worker_manhole
    """.split()
)

_RATE_LIMIT: Final = frozenset({"per_second", "burst_count"})

_LISTENER: Final = frozenset(
    {
        "port",
        "bind_addresses",
        "bind_address",
        "type",
        "tls",
        "x_forwarded",
        "request_id_header",
        "resources",
        "additional_resources",
        "tag",
        "path",
        "mode",
    }
)
_LISTENER_RESOURCE: Final = frozenset({"names", "compress"})

_OIDC_UNIMPLEMENTED: Final = frozenset(
    {
        "client_secret_jwt_key",
        "id_token_signing_alg_values_supported",
        "additional_authorization_parameters",
        "passthrough_authorization_parameters",
        "backchannel_logout_enabled",
        "backchannel_logout_ignore_sub",
        "redirect_uri",
    }
)
_OIDC_MAPPING_UNIMPLEMENTED: Final = frozenset(
    {"picture_template", "picture_claim", "extra_attributes"}
)

SYNAPSE_OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    "": _TOP_LEVEL,
    "rc_*": _RATE_LIMIT,
    "rc_federation": frozenset(
        {"window_size", "sleep_limit", "sleep_delay", "reject_limit", "concurrent"}
    ),
    "rc_login": frozenset({"address", "account", "failed_attempts"}),
    "rc_joins": frozenset({"local", "remote"}),
    "rc_presence": frozenset({"per_user"}),
    "rc_invites": frozenset({"per_room", "per_user", "per_issuer"}),
    "caches": frozenset(
        {
            "global_factor",
            "expire_caches",
            "cache_entry_ttl",
            "sync_response_cache_duration",
            "cache_autotuning",
            "track_memory_usage",
        }
    ),
    "listeners[]": _LISTENER,
    "listeners[].resources[]": _LISTENER_RESOURCE,
    "worker_listeners[]": _LISTENER,
    "worker_listeners[].resources[]": _LISTENER_RESOURCE,
    # Synapse's streams this server has no stream for (yet)
    "stream_writers": frozenset({"thread_subscriptions", "quarantined_media_changes"}),
    "database": frozenset({"name", "args", "txn_limit", "allow_unsafe_locale", "data_stores"}),
    "presence": frozenset({"enabled", "include_offline_users_on_sync", "presence_router"}),
    "push": frozenset({"enabled", "include_content", "group_unread_count_by_room", "jitter_delay"}),
    "user_directory": frozenset({"exclude_remote_users", "show_locked_users"}),
    "redis": frozenset(
        {
            "path",
            "password_path",
            "use_tls",
            "certificate_file",
            "private_key_file",
            "ca_file",
            "ca_path",
        }
    ),
    # Synapse's legacy cas_config.service_url (it builds the service URL itself now)
    "cas_config": frozenset({"service_url"}),
    "sso": frozenset({"update_profile_information", "template_dir"}),
    # notification mails and links are not sent yet
    # Synapse's OpenID Connect options this server does not implement
    "oidc_providers[]": _OIDC_UNIMPLEMENTED,
    "oidc_providers[].user_mapping_provider": frozenset({"module"}),
    "oidc_providers[].user_mapping_provider.config": _OIDC_MAPPING_UNIMPLEMENTED,
    "oidc_config": _OIDC_UNIMPLEMENTED | {"enabled"},
    "oidc_config.user_mapping_provider": frozenset({"module"}),
    "oidc_config.user_mapping_provider.config": _OIDC_MAPPING_UNIMPLEMENTED,
    "email": frozenset(
        {
            "enable_notifs",
            "notif_for_new_users",
            "notif_delay_before_mail",
            "client_base_url",
            "riot_base_url",
            "invite_client_location",
        }
    ),
}

_INDEX = re.compile(r"\[\d+\]")


def section_of(key_path: str) -> str:
    """The catalogue's name for the section at `key_path` (indexes become ``[]``)."""
    return _INDEX.sub("[]", key_path)


def synapse_names(key_path: str) -> frozenset[str]:
    """The Synapse option names of the section at `key_path` (empty if unknown)."""
    section = section_of(key_path)
    names = SYNAPSE_OPTIONS.get(section)
    if names is not None:
        return names
    if section.startswith("rc_"):
        # rc_login.address, rc_joins.local, rc_message ...: token buckets
        return _RATE_LIMIT
    return frozenset()
