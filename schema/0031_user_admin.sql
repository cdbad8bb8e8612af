-- Synapse's user admin API (/_synapse/admin/v2/users ...): the account flags it
-- reads and sets, the third-party IDs of an account, per-user rate-limit overrides,
-- and the (IP, user agent) pairs each device was seen from (whois, device lists).

-- shadow_banned: the user's sends, invites and state changes get a fake success
-- locked: the account may not be used until unlocked (tokens refused)
-- suspended: the account may read but not change anything in rooms
-- user_type: NULL for a normal user, "bot" or "support"
ALTER TABLE users ADD COLUMN shadow_banned BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN locked BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN suspended BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN user_type TEXT;

ALTER TABLE devices ADD COLUMN last_seen_user_agent TEXT;

CREATE TABLE user_threepids (
    user_id TEXT NOT NULL REFERENCES users (user_id),
    -- "email" or "msisdn"
    medium TEXT NOT NULL,
    address TEXT NOT NULL,
    validated_at BIGINT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (medium, address)
);
CREATE INDEX user_threepids_user ON user_threepids (user_id);

-- A user's own message rate limit; 0 and 0 mean no limit at all.
CREATE TABLE ratelimit_override (
    user_id TEXT NOT NULL PRIMARY KEY REFERENCES users (user_id),
    messages_per_second BIGINT NOT NULL,
    burst_count BIGINT NOT NULL
);

-- Every (IP, user agent) a device of a local user was seen from, with when last.
CREATE TABLE user_ips (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, ip, user_agent)
);
