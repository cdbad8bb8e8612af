-- OpenID tokens (client-server "OpenID"): a user asks for one and hands it to a
-- third party (an integration manager, a widget), which checks it at
-- /_matrix/federation/v1/openid/userinfo. Stored as SHA-256 digests, like access
-- tokens; expired tokens go when a new one is made.
CREATE TABLE openid_tokens (
    token_hash TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    expiry_ts BIGINT NOT NULL
);
CREATE INDEX openid_tokens_expiry ON openid_tokens (expiry_ts);
