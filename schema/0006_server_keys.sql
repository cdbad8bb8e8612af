-- Signing keys of other servers (server-server API "Retrieving server keys").
-- Each verify key is kept with the end of its validity: valid_until_ts of the key
-- response (capped at 7 days after it was fetched) for a current key, expired_ts
-- for a key listed in old_verify_keys. A key is used for a check at time T only if
-- valid_until_ts >= T; rows stay after they expire, since events of room versions
-- 1-4 ignore key validity.
CREATE TABLE server_signing_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    -- unpadded base64 ed25519 public key
    verify_key TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    -- listed in old_verify_keys: valid for old events only
    expired BOOLEAN NOT NULL,
    fetched_ts BIGINT NOT NULL,
    -- the server the key came from: server_name itself, or a notary
    from_server TEXT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);

-- The latest verified key response of each server as it came (signed by that
-- server), served again, counter-signed, when this server acts as a notary.
CREATE TABLE server_key_responses (
    server_name TEXT NOT NULL PRIMARY KEY,
    valid_until_ts BIGINT NOT NULL,
    fetched_ts BIGINT NOT NULL,
    from_server TEXT NOT NULL,
    response_json TEXT NOT NULL
);
