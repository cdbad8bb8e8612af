"""The commented YAML config file: `config.example.yaml` and what `generate_config` writes.

Both come from `render_config`, so they cannot drift apart (a test compares them).
Every option is listed with a comment; options that have a value by default are
written with that default, options that are unset by default are commented out.
"""

from __future__ import annotations

import json
from string import Template

_OPEN_REGISTRATION = """\
# Anyone who can reach the server may register, without email, captcha or token.
# That is for a private test setup only: on a public server use
# registration_requires_token, or keep enable_registration false and create
# accounts with the register-user command.
enable_registration: true
enable_registration_without_verification: true"""

_CLOSED_REGISTRATION = """\
# Allow anyone who can reach the server to register (default false). Open
# registration also needs registration_requires_token: true, or
# enable_registration_without_verification: true (only for private test setups).
enable_registration: false
enable_registration_without_verification: false"""

_TEMPLATE = Template("""\
# Configuration of a Matrix homeserver. Option names and meanings follow Synapse.
# Sizes are bytes or strings like "100K", "50M", "1G" (powers of 1024); durations
# are milliseconds or strings like "30s", "5m", "1h", "1d", "1w", "1y". Relative
# paths are relative to the working directory of the server process.

## Server ##

# The domain in user IDs (@alice:$bare_server_name) and room aliases. It cannot be
# changed once users exist. A hostname, IPv4 address or [IPv6 address], with an
# optional :port.
server_name: $server_name

# The public URL of the client API, if it differs from https://<server_name>/
# (for example behind a reverse proxy). Default: unset.
#public_baseurl: https://matrix.example.com/

# The base URL advertised to clients in /.well-known/matrix/client. Default: unset,
# meaning public_baseurl, or else https://<server_name>/.
#client_base_url: https://matrix.example.com/

# Serve /.well-known/matrix/server, telling other servers to reach this one at
# <server_name>:443 (or at server_name itself if it has a port), as Synapse does:
# for a reverse proxy serving HTTPS on port 443 in front of the federation
# listener (default false).
serve_server_wellknown: false

# How users reach the server's admin, served at /.well-known/matrix/support: an
# email address (mailto: or bare), a user ID, or the URL of a support page.
# Default: unset (the document is not served).
#admin_contact: "mailto:admin@example.com"

# Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO).
log_level: INFO

# A logging configuration file (YAML, Python's logging dictConfig schema, as for
# Synapse) used instead of log_level. Default: unset. Synapse's log configs work
# as they are: synapse.logging.context.LoggingContextFilter,
# synapse.logging.handlers.PeriodicallyFlushingMemoryHandler and
# synapse.logging.TerseJsonFormatter are mapped to this server's equivalents.
# Every record has the field request: the ID of the request that caused it
# (Synapse's form, GET-42; "sentinel" outside requests), as in Synapse's format
# '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'.
# Request log lines (logger homeserver.access) give the client address, method,
# path (access tokens and other secrets replaced by <redacted>), status,
# duration and the requester (user ID, or the origin server of a federation
# request).
#log_config: /etc/matrix/log.yaml

# Collect Prometheus metrics (Synapse's metric names and labels, each series
# labelled with server_name) and serve them at /_synapse/metrics on listeners of
# type "metrics" and on http listeners with the "metrics" resource (default false).
# Example listener:
#   - port: 9000
#     type: metrics
#     bind_addresses: ["127.0.0.1"]
# Synapse's Grafana dashboard (contrib/grafana/synapse.json) reads these series
# unchanged; it also filters on the job and index labels, which come from the
# Prometheus scrape config (as for Synapse).
enable_metrics: false

# Write the process ID to this file once started, and remove it at a clean exit.
# The server refuses to start if the file names another running process.
# Default: unset.
#pid_file: /run/homeserver.pid

# The garbage collector, as Synapse runs it: automatic collection is off once the
# server is up (what start-up allocated is frozen out of collections), and every
# 100 ms the oldest generation whose count passed its threshold is collected, unless
# it was collected less than its minimum interval ago. gc_thresholds: per
# generation (0, 1, 2); default: Python's (700, 10, 10). gc_min_interval: per
# generation; default: ["1s", "10s", "30s"].
#gc_thresholds: [700, 10, 10]
#gc_min_interval: ["1s", "10s", "30s"]

# Options of Synapse that this server does not implement yet are accepted, each
# with a warning at start-up; an option nobody knows is an error.

# Where the server listens. Default: one listener on 127.0.0.1:8008 serving
# client, federation, keys and media.
listeners:
    # The TCP port (required).
  - port: 8008
    # Addresses to bind (default ["127.0.0.1"]). Use "::" or "0.0.0.0" for all.
    bind_addresses: ["127.0.0.1"]
    # "http" (default), or "metrics": Prometheus metrics alone at /_synapse/metrics
    # (needs enable_metrics: true; such a listener takes no resources).
    type: http
    # Serve HTTPS with tls_certificate_path / tls_private_key_path (default false).
    # Usually TLS is done by a reverse proxy instead.
    tls: false
    # Behind a reverse proxy: take the client's address from the first entry of
    # X-Forwarded-For (for rate limits and logs) and the scheme from
    # X-Forwarded-Proto, as Synapse does. Only if the proxy sets X-Forwarded-For
    # itself, replacing any sent by the client (default false).
    x_forwarded: false
    # Which APIs this listener serves. names: any of client, federation, keys,
    # media, health (GET /health answers "OK"), openid (the OpenID userinfo
    # endpoint alone, which federation serves too), metrics (/_synapse/metrics,
    # with enable_metrics: true) and replication (what the processes of one
    # homeserver ask each other: see Workers). compress: gzip the JSON
    # responses of these resources for clients that accept it (default false).
    resources:
      - names: [client, federation, keys, media]
        compress: false

# Certificate chain and private key (PEM) for listeners with tls: true.
# Default: unset; required if any listener has tls: true.
#tls_certificate_path: /etc/matrix/tls.crt
#tls_private_key_path: /etc/matrix/tls.key

## Database ##

# sqlite3 (the default: nothing else to run) or psycopg (PostgreSQL; psycopg2 is
# accepted as an alias). The environment variable HOMESERVER_DATABASE_URL
# (postgresql://user:password@host:5432/dbname) overrides this section.
database:
  name: sqlite3
  args:
    # The SQLite file (default data/homeserver.db).
    database: $database_path
# For PostgreSQL:
#database:
#  name: psycopg
#  args:
#    user: synapse_user          # default: libpq's default
#    password: secretpassword    # default: none
#    dbname: homeserver          # alias: database
#    host: 127.0.0.1             # default 127.0.0.1 (a directory means a Unix socket)
#    port: 5432                  # default 5432
#    sslmode: prefer             # default: libpq's default
#    cp_min: 2                   # connection pool size, default 2 to 10
#    cp_max: 10

# Caches held in memory: each cache holds its base size times its factor in
# per_cache_factors, else times global_factor (default 0.5). Caches, with their base
# sizes: *getEvent* (20000 events), state_groups (4000), *stateGroupCache* (20000),
# room_heroes (20000 rooms), get_user_by_access_token (20000),
# get_push_rules_for_user (40000 users), push_room_state (1024 rooms),
# get_unread_event_push_actions_by_room_for_user (20000 users),
# history_visibility_by_state_group (40000). Names are matched as Synapse matches
# them (case and characters such as * ignored).
caches:
  global_factor: 0.5
  #per_cache_factors:
  #  get_user_by_access_token: 2.0

# Redis, through which several processes sharing one PostgreSQL database tell
# each other about new data (default off; workers need it: see Workers).
redis:
  enabled: false
  host: localhost
  port: 6379
  #password: secret
  # The Redis database number (default: unset, Redis's default 0).
  #dbid: 0

## Signing keys ##

# The ed25519 key this server signs events and requests with. It is created at
# start-up if missing. Default: data/<server_name, ':' replaced by '_'>.signing.key
signing_key_path: $signing_key_path

# Keys this server used before, still published so that old signatures can be
# verified: key ID -> {key: <base64 public key>, expired_ts: <ms timestamp>}.
# Default: none.
#old_signing_keys:
#  "ed25519:auto": {key: "l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ", expired_ts: 1576767829750}

# How long other servers may cache this server's keys (default 1d).
key_refresh_interval: 1d

## Registration and login ##

$registration

# Require a registration token to register (default false). Tokens are made with
# the registration-token command or the /_synapse/admin/v1/registration_tokens API.
registration_requires_token: false

# Require a third-party ID to register: a list of "email" and/or "msisdn"
# (default: none). The server must be able to verify that kind of ID.
registrations_require_3pid: []

# Never offer registration flows with a phone number (default false).
disable_msisdn_registration: false

# Offer a flow with only a registration token, without the third-party IDs that
# registrations_require_3pid asks for (default false).
enable_registration_token_3pid_bypass: false

# Require a Google reCAPTCHA (m.login.recaptcha) to register (default false). It
# needs the site's recaptcha_public_key and recaptcha_private_key (or their
# *_path variants: files holding them). Captcha responses are checked at
# recaptcha_siteverify_api, through the outbound address rules below
# (ip_range_blacklist / ip_range_whitelist).
enable_registration_captcha: false
#recaptcha_public_key: "<the site key>"
#recaptcha_private_key: "<the secret key>"
recaptcha_siteverify_api: "https://www.recaptcha.net/recaptcha/api/siteverify"

# A secret that signs the links of forms this server serves (the consent page).
# Needed by user_consent. Default: unset. form_secret_path: a file holding it.
#form_secret: "<a long random string>"

# A privacy policy users agree to at /_matrix/consent (default: none). version:
# the current version; template_dir: folders per language (en/) holding
# <version>.html and success.html (default: a built-in page);
# require_at_registration: m.login.terms in every registration flow;
# policy_name: how clients name it; block_events_error: refuse sending events
# until the user has agreed, with this message (%(consent_uri)s is their link);
# server_notice_content: a server notice asking for consent (also to guests with
# send_server_notice_to_guests).
#user_consent:
#  version: "1.0"
#  template_dir: /etc/matrix/privacy_policy_templates
#  require_at_registration: false
#  policy_name: Privacy Policy
#  block_events_error: "Please review and agree to %(consent_uri)s before sending."
#  server_notice_content:
#    msgtype: m.text
#    body: "Please review and agree to the privacy policy: %(consent_uri)s"
#  send_server_notice_to_guests: false

# A shared secret that lets admin tools create accounts through
# /_synapse/admin/v1/register (such as Synapse's register_new_matrix_user),
# whatever enable_registration says. The register-user command does not use it:
# it writes to the database directly. Default: unset.
$registration_shared_secret

# Allow guest accounts (default false).
allow_guest_access: false

# bcrypt cost of stored password hashes, 4 to 31 (default 12).
bcrypt_rounds: 12

# Let a logged-in client get a login token for signing in another device (for
# example by QR code): POST /_matrix/client/v1/login/get_token. With
# require_ui_auth the user confirms with their password first. Tokens live
# token_timeout.
login_via_existing_session:
  enabled: false
  require_ui_auth: true
  token_timeout: 5m

## Email and third-party IDs ##

# Sending mail. With this section set (and not empty) the server validates email
# addresses itself: it mails a link to confirm an address for registration
# (m.login.email.identity), password reset and adding an address to an account.
# Without it those endpoints answer that email is not supported. notif_from is
# then required. force_tls: TLS from the first byte (SMTPS, default port 465);
# otherwise, with enable_tls (default true), STARTTLS when the SMTP server offers
# it, and require_transport_security refuses to send without it. tlsname: the name
# the SMTP server's certificate must carry (default: smtp_host). Links and
# tokens last validation_token_lifetime (default 1h). subjects override the
# mail subjects (password_reset, email_validation ...). Templates in
# template_dir (Synapse's names: registration.html/.txt, password_reset.html/.txt,
# add_threepid.html/.txt, *_success.html, *_failure.html) replace the built-in
# ones. enable_notifs, notif_for_new_users, client_base_url and
# invite_client_location are accepted; notification mails are not sent yet.
#email:
#  smtp_host: mail.example.com
#  smtp_port: 587
#  smtp_user: matrix
#  smtp_pass: "secret"
#  force_tls: false
#  require_transport_security: true
#  enable_tls: true
#  tlsname: mail.example.com
#  notif_from: "Your Matrix server <noreply@example.com>"
#  app_name: Matrix
#  validation_token_lifetime: 1h
#  template_dir: /etc/matrix/templates
#  subjects:
#    password_reset: "[%(server_name)s] Password reset"
#    email_validation: "[%(server_name)s] Validate your email"

# The identity server that validates phone numbers for this server (texting the
# code): m.login.msisdn and the msisdn requestToken endpoints. Without it phone
# numbers are not supported. Default: unset.
#account_threepid_delegates:
#  msisdn: https://id.example.com

# Which third-party IDs may be registered or added to accounts: each entry a medium
# and a regular expression the address must match from its start. Default: unset
# (any address).
#allowed_local_3pids:
#  - medium: email
#    pattern: '^[^@]+@example\\.com$$'
#  - medium: msisdn
#    pattern: '^44'

# Let users add and remove their email addresses and phone numbers (default true).
enable_3pid_changes: true

## Application services ##

# Registration files of application services (bridges, bots), each a YAML file
# with id, url, as_token, hs_token, sender_localpart, namespaces (users, aliases,
# rooms: regex and exclusive), rate_limited, protocols and receive_ephemeral. A bad
# file stops the server at start-up with the file and the field named. Default: none.
#app_service_config_files:
#  - /etc/matrix/bridges/telegram-registration.yaml
app_service_config_files: []

# Record the IP addresses and user agents of requests made by application services
# for their users (default false).
track_appservice_user_ips: false

## Single sign-on ##

# Log users in through a CAS server (default: off). Clients are sent to
# <server_url>/login; tickets are checked at <server_url>/proxyValidate
# (/p3/proxyValidate for protocol_version 3), through the outbound address rules
# below (ip_range_blacklist / ip_range_whitelist). A CAS user logs in as the user
# whose localpart is their CAS user name (lower-cased, other characters escaped as
# =xx), created on first login unless enable_registration is false.
#cas_config:
#  enabled: true
#  server_url: https://cas.example.com/cas
#  protocol_version: 3                 # 1, 2 or 3 (default: the /proxyValidate URL)
#  displayname_attribute: name         # a new user's display name (default: none)
#  required_attributes:                # all must be present, with this value unless null
#    userGroup: staff
#    department: null
#  enable_registration: true           # create accounts on first login (default true)
#  allow_numeric_ids: false            # prefix all-digit user names (default false)
#  numeric_ids_prefix: u               # that prefix (default u)
#  idp_name: CAS                       # shown by clients (default CAS)
#  idp_icon: mxc://example.com/abcdef  # shown by clients (default: none)
#  idp_brand: cas                      # shown by clients (default: none)

# Log users in through OpenID Connect providers (default: none). Each provider is
# listed to clients as oidc-<idp_id>; the browser comes back to
# <public_baseurl>_synapse/client/oidc/callback, which the provider must allow as a
# redirect URI. The provider is reached through the outbound address rules below.
# A user is known by their subject claim; on first login an account is made from
# localpart_template (taken names get 1, 2 ... appended, unless
# allow_existing_users links the existing account). Templates are Jinja templates
# over the provider's claims (user.<claim>), run in a sandbox. Synapse's single
# legacy oidc_config section (the provider "oidc") is read too.
#oidc_providers:
#  - idp_id: example                   # required: A-Z a-z 0-9 . _ ~ -
#    idp_name: Example                 # required: shown by clients
#    idp_icon: mxc://example.com/abc   # shown by clients (default: none)
#    idp_brand: example                # shown by clients (default: none)
#    discover: true                    # read <issuer>/.well-known/openid-configuration
#    issuer: https://id.example.com/
#    client_id: matrix
#    client_secret: a-secret           # or client_secret_path: /path/to/secret
#    client_auth_method: client_secret_basic   # or client_secret_post, none
#    pkce_method: auto                 # auto (if the provider supports it), always, never
#    scopes: [openid, profile]         # must include openid (default [openid])
#    authorization_endpoint: https://id.example.com/auth   # override or, without
#    token_endpoint: https://id.example.com/token           # discovery, required
#    userinfo_endpoint: https://id.example.com/userinfo
#    jwks_uri: https://id.example.com/jwks
#    skip_verification: false          # allow http:// and odd metadata (testing only)
#    user_profile_method: auto         # auto: the ID token's claims; userinfo_endpoint
#    allow_existing_users: false       # link a new identity to an existing account
#    enable_registration: true         # create accounts on first login
#    user_mapping_provider:
#      config:
#        subject_claim: sub            # or subject_template: "{{ user.sub }}"
#        localpart_template: "{{ user.preferred_username }}"
#        display_name_template: "{{ user.name }}"
#        email_template: "{{ user.email }}"
#        confirm_localpart: false      # asking the user is not supported
#    attribute_requirements:           # all must hold for a login
#      - attribute: groups
#        value: staff
#      - attribute: department
#        one_of: [sales, support]

# Settings of every single sign-on provider. client_whitelist: client URLs that
# receive a login token straight away; the user confirms any other redirectUrl on
# a page first. An entry matches URLs equal to it or continuing it after a "/".
#sso:
#  client_whitelist:
#    - https://app.example.com/

## Rate limits ##
# Token buckets: burst_count actions at once, refilled at per_second.

# Messages sent, per user (default 0.2 per second, burst 10).
rc_message:
  per_second: 0.2
  burst_count: 10

# Registrations, per client address (default 0.17 per second, burst 3).
rc_registration:
  per_second: 0.17
  burst_count: 3

# Logins: per client address, per account, and failed attempts per account.
rc_login:
  address:
    per_second: 0.003
    burst_count: 5
  account:
    per_second: 0.003
    burst_count: 5
  failed_attempts:
    per_second: 0.17
    burst_count: 3

# Inbound federation requests (/send and event reads), per origin server
# (default 50 per second, burst 500).
rc_federation:
  per_second: 50
  burst_count: 500

# Joins per user: to rooms this server is in (local) and to rooms joined over
# federation (remote).
rc_joins:
  local:
    per_second: 0.1
    burst_count: 10
  remote:
    per_second: 0.01
    burst_count: 10

# Rooms created, per user (default 0.016 per second, burst 10).
rc_room_creation:
  per_second: 0.016
  burst_count: 10

# Management of delayed events (list, cancel, restart, send), per user or per
# address when unauthenticated (default 1 per second, burst 5).
rc_delayed_event_mgmt:
  per_second: 1
# Reports of events, rooms and users, per user (default 1 per second, burst 5).
rc_reports:
  per_second: 1.0
  burst_count: 5

# Presence updates (PUT /presence), per user (default 0.1 per second, burst 1).
rc_presence:
  per_user:
    per_second: 0.1
    burst_count: 1

# Requests for validation mails and texts (the requestToken endpoints), per client
# address and per address validated (default 0.003 per second, burst 5).
rc_3pid_validation:
  per_second: 0.003
  burst_count: 5

## Rooms ##

# Room version of new rooms, "1" to "12" (default "12", as the spec recommends).
default_room_version: "12"

# Let clients list the public room directory without an access token
# (default false).
allow_public_rooms_without_auth: false

# Let other servers list this server's public room directory (default false).
allow_public_rooms_over_federation: false

# A user must be joined to a room to give it an alias (server admins need not be)
# (default true).
require_membership_for_aliases: true

# Forget a room for a local user as soon as they leave it, are kicked or banned, as
# POST /rooms/{roomId}/forget would (default false).
forget_rooms_on_leave: false

# How long the original content of a redacted event stays in the database (for
# admins looking into abuse) before it is erased for good; null keeps it forever
# (default 7d).
redaction_retention_period: 7d

# Self-destructing messages (MSC2228, experimental): a message whose content has an
# integer org.matrix.self_destruct_after (a timestamp in milliseconds) is pruned
# for good at that time, as a redaction leaves it (default false).
enable_ephemeral_messages: false

# Who may create which aliases, and who may publish which rooms to the public room
# directory. The first rule whose globs (* and ?) match the user ID, the room ID
# and (one of) the aliases decides by its action, allow or deny; no match denies.
# Defaults: anyone may create aliases; nobody may publish a room (a room created
# with visibility "public" is created, but not listed). To let everyone publish:
#room_list_publication_rules:
#  - action: allow
alias_creation_rules:
  - {user_id: "*", room_id: "*", alias: "*", action: allow}
room_list_publication_rules: []

# Largest JSON request body accepted by the client and federation APIs; media
# uploads are limited by max_upload_size instead (default 1M).
max_request_body_size: 1M

## Presence and push ##

presence:
  # Track and share online/offline status (default true).
  enabled: true
  # Online users become "unavailable" after this long without activity (default 5m).
  idle_timeout: 5m
  # Users become "offline" this long after their last /sync ended (default 30s).
  offline_timeout: 30s

push:
  # Include the message content in push notifications (default true).
  include_content: true
  # Keep the server-default push rules that notify on a mention in the message body
  # (the user's localpart or display name, "@room"), which spec v1.17 no longer
  # lists, in favour of m.mentions; they never apply to an event with m.mentions.
  # Bots, bridges and older clients do not send m.mentions, so they stay on by
  # default, as in Synapse (default true).
  legacy_mention_rules: true

## User directory ##

user_directory:
  # Answer POST /user_directory/search (default true); when false it finds no one.
  enabled: true
  # Find every local user, not only those who share a room with the searcher or are
  # in a public room (default false).
  search_all_users: false
  # Rank local users above remote ones (default false).
  prefer_local_users: false
  # Find only local users (default false).
  exclude_remote_users: false
  # Find locked accounts too (default false).
  show_locked_users: false

## Server notices ##

# Messages from the admins (POST /_synapse/admin/v1/send_server_notice) reach each
# user in a room of their own, created at the first notice, which they can neither
# write in nor leave. Off unless this section is set; system_mxid_localpart is the
# one required key (the user notices come from, created if missing).
#server_notices:
#  system_mxid_localpart: server
#  system_mxid_display_name: "Server Notices"
#  system_mxid_avatar_url: "mxc://example.org/abcdef"
#  room_name: "Server Notices"    # the default
#  room_avatar_url: "mxc://example.org/abcdef"
#  room_topic: "Messages from the administrators of this server"
#  auto_join: false               # true: the user is joined rather than invited

## Media ##

# Serve the media repository (default true).
enable_media_repo: true

# Where uploaded and remote media are stored (default data/media_store).
media_store_path: $media_store_path

# Largest upload accepted (default 50M).
max_upload_size: 50M

# Largest image (in pixels) that will be thumbnailed (default 32M).
max_image_pixels: 32M

# Make thumbnails of any requested size on demand, not only thumbnail_sizes
# (default false).
dynamic_thumbnails: false

# Thumbnails generated for each uploaded image. method: crop or scale.
thumbnail_sizes:
  - {width: 32, height: 32, method: crop}
  - {width: 96, height: 96, method: crop}
  - {width: 320, height: 240, method: scale}
  - {width: 640, height: 480, method: scale}
  - {width: 800, height: 600, method: scale}

# Delete media nobody has downloaded for a while (checked every hour; default: keep
# forever). Local media: uploads of this server's users, except quarantined and
# protected media and the avatars of users and rooms. Remote media: the cache of
# other servers' media, fetched again when asked for.
#media_retention:
#  local_media_lifetime: 90d
#  remote_media_lifetime: 14d

# Message retention policies (MSC1763, as Synapse; default: off). A room's policy is
# its m.room.retention state event (max_lifetime, min_lifetime in milliseconds),
# else default_policy. Non-state events older than max_lifetime are hidden from
# clients at once and deleted by the purge jobs (state events and each room's
# latest event stay). allowed_lifetime_min/max bound the max_lifetime the purge jobs
# use. Each purge job handles the rooms whose max_lifetime is in
# (shortest_max_lifetime, longest_max_lifetime], every interval; without
# purge_jobs, one job handles every room daily.
#retention:
#  enabled: true
#  default_policy:
#    min_lifetime: 1d
#    max_lifetime: 1y
#  allowed_lifetime_min: 1d
#  allowed_lifetime_max: 1y
#  purge_jobs:
#    - longest_max_lifetime: 3d
#      interval: 12h
#    - shortest_max_lifetime: 3d
#      interval: 1d

# Generate URL previews for links (default false).
url_preview_enabled: false

# IP ranges URL previews never fetch from. Default: unset, meaning
# ip_range_blacklist (with ip_range_whitelist) applies. 0.0.0.0 and :: are
# always blocked.
#url_preview_ip_range_blacklist: ["127.0.0.0/8", "10.0.0.0/8"]
# Exceptions to the blacklist that applies to URL previews (default none).
url_preview_ip_range_whitelist: []

# Media uploaded before this time (ms since the epoch) stays available on the
# legacy unauthenticated /_matrix/media/* download endpoints. Default: unset,
# meaning those endpoints serve nothing new.
#unauthenticated_media_allowed_before: 1725148800000

## VoIP ##

# TURN servers handed to clients for calls, with the shared secret of their
# REST API (coturn's static-auth-secret). Default: none.
turn_uris: []
#turn_uris: ["turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=tcp"]
#turn_shared_secret: "a secret"
# Or fixed credentials, handed to every user as they are (when there is no secret).
#turn_username: "turnuser"
#turn_password: "turnpassword"
# How long TURN credentials are valid (default 1h).
turn_user_lifetime: 1h
# Whether guests may use the TURN servers (default true).
turn_allow_guests: true

# Delayed events (MSC4140, which Element Call uses to leave a call when a client
# dies): the longest delay a client may ask for. Default: unset, meaning delayed
# events are refused.
#max_event_delay_duration: 24h

## Federation ##

# Check the TLS certificates of other servers (default true). Only for tests.
federation_verify_certificates: true

# Certificate authorities (PEM files) trusted for federation instead of the
# system's (default: the system's).
federation_custom_ca_list: []
#federation_custom_ca_list: [/etc/matrix/our-ca.crt]

# Check no certificate at all on outbound HTTPS (federation, push gateways, URL
# previews), with a loud warning at start-up. Only for test setups (default false).
use_insecure_ssl_client_just_for_testing_do_not_use: false

# Federate only with these server names. Default: unset (federate with everyone).
#federation_domain_whitelist: [example.com, example.org]

# IP ranges that federation may reach even if ip_range_blacklist blocks them
# (default none).
federation_ip_range_whitelist: []

# IP ranges the server never connects to for federation, URL previews and
# other outbound requests. 0.0.0.0 and :: are always blocked.
# Default: loopback, private, CGNAT, link-local, test, multicast and site-local
# ranges, as below.
ip_range_blacklist:
  - "127.0.0.0/8"
  - "10.0.0.0/8"
  - "172.16.0.0/12"
  - "192.168.0.0/16"
  - "100.64.0.0/10"
  - "192.0.0.0/24"
  - "169.254.0.0/16"
  - "192.88.99.0/24"
  - "198.18.0.0/15"
  - "192.0.2.0/24"
  - "198.51.100.0/24"
  - "203.0.113.0/24"
  - "224.0.0.0/4"
  - "::1/128"
  - "fe80::/10"
  - "fc00::/7"
  - "2001:db8::/32"
  - "ff00::/8"
  - "fec0::/10"

# Exceptions to ip_range_blacklist for all outbound requests (default none).
ip_range_whitelist: []

# Synapse's older option: when set, federation checks this list instead of
# ip_range_blacklist, with no whitelist. Default: unset.
#federation_ip_range_blacklist: ["127.0.0.0/8", "10.0.0.0/8"]

# Notary servers trusted to vouch for other servers' signing keys. verify_keys
# (optional) pins the notary's own keys. Default: none.
trusted_key_servers: []
#trusted_key_servers:
#  - server_name: matrix.org
#    verify_keys:
#      "ed25519:auto": "Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw"

# Silence the warning logged when matrix.org is a trusted key server
# (default false).
suppress_key_server_warning: false

## Workers ##

# One process serves everything by default, and needs none of this. To use more
# than one core, run the same homeserver as several processes sharing one
# PostgreSQL database and one Redis (redis.enabled: true), as Synapse's workers:
# every process reads this file plus a file of its own (python -m homeserver
# --config homeserver.yaml --config worker1.yaml; a later file's top-level keys
# replace an earlier one's), and a reverse proxy routes each path to a process.
# `python -m homeserver generate-workers` writes all of that. SQLite is refused.
#
# Shared options (in this file). The main process is "master" in stream_writers and
# the options below, and "main" in instance_map.
#
# Where each process serves its replication resource (host, port, tls). Every
# worker needs main; every stream writer must be listed. Default: none.
#instance_map:
#  main: {host: 127.0.0.1, port: 18100}
#  writer1: {host: 127.0.0.1, port: 18101}
#  writer2: {host: 127.0.0.1, port: 18102}
#
# Which instances write each stream (an instance name or a list; default master).
# events may have several writers: each room's events are written by one of them,
# chosen by its room ID. typing, to_device, account_data, receipts, presence,
# push_rules and device_lists have exactly one writer each.
#stream_writers:
#  events: [writer1, writer2]
#  typing: writer1
#  to_device: master
#  account_data: master
#  receipts: master
#  presence: master
#  push_rules: master
#  device_lists: master
#
# The instances that send to other servers, each a share of the destinations
# (default [master]). Synapse's older send_federation: false, with a
# synapse.app.federation_sender worker, is read too.
#federation_sender_instances: [sender1]
#
# The instances that send push notifications, each for a share of the users
# (default [master]). Synapse's older start_pushers: false is read too.
#pusher_instances: [pusher1]
#
# The instance that runs the background jobs that must run once (default master):
# message expiry, redaction censoring, retention purges, pruning old push
# actions, delayed events.
#run_background_tasks_on: background1
#
# The instance that runs the media repository's jobs (media retention).
# Default: unset, the main process.
#media_instance_running_background_jobs: media1
#
# The instance that sends events to application services. Default: unset, the
# main process.
#notify_appservices_from_worker: appservice1
#
# The instance that fills the user directory at start-up with the users and
# rooms held from before it (later changes are written with each event by the
# event writer, so the directory never lags the rooms). Default: unset, the
# main process.
#update_user_directory_from_worker: background1
#
# A shared secret the processes authenticate replication requests with. Default:
# unset (replication listeners must then be reachable by the processes alone).
#worker_replication_secret: "<a long random string>"
# Or read it from a file:
#worker_replication_secret_path: /etc/matrix/replication.secret
#
# A worker's own options (in its own file):
#
# synapse.app.generic_worker makes a worker; synapse.app.homeserver (the default)
# the main process. Synapse's older specialised apps (synapse.app.pusher,
# synapse.app.federation_sender, synapse.app.media_repository,
# synapse.app.client_reader ...) are read as synapse.app.generic_worker.
#worker_app: synapse.app.generic_worker
# The worker's instance name (required for a worker).
#worker_name: writer1
# The worker's listeners, instead of listeners (same form), usually one on an
# internal address serving what the proxy sends it and replication. Default: none.
#worker_listeners:
#  - port: 18101
#    bind_addresses: ["127.0.0.1"]
#    x_forwarded: true
#    resources:
#      - names: [client, replication]
# The worker's logging configuration, instead of log_config. Default: unset.
#worker_log_config: /etc/matrix/writer1.log.yaml
# The worker's PID file, instead of pid_file. Default: unset.
#worker_pid_file: /run/homeserver-writer1.pid
""")


def _yaml_str(value: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(value)


def render_config(
    *,
    server_name: str,
    database_path: str,
    signing_key_path: str,
    media_store_path: str,
    registration_shared_secret: str | None,
    open_registration: bool,
) -> str:
    """The text of a config file with every option documented."""
    if registration_shared_secret is None:
        secret_line = '#registration_shared_secret: "<a long random string>"'
    else:
        secret_line = f"registration_shared_secret: {_yaml_str(registration_shared_secret)}"
    return _TEMPLATE.substitute(
        server_name=_yaml_str(server_name),
        bare_server_name=server_name,
        database_path=_yaml_str(database_path),
        signing_key_path=_yaml_str(signing_key_path),
        media_store_path=_yaml_str(media_store_path),
        registration=_OPEN_REGISTRATION if open_registration else _CLOSED_REGISTRATION,
        registration_shared_secret=secret_line,
    )
