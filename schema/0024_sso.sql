-- Single sign-on: which local user each identity of an identity provider logs in as,
-- and the short-lived single-use tokens (m.login.token) SSO hands to clients.

CREATE TABLE user_external_ids (
    -- the identity provider ("cas")
    auth_provider TEXT NOT NULL,
    -- the user's identity there (the CAS user name)
    external_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    PRIMARY KEY (auth_provider, external_id)
);
CREATE INDEX user_external_ids_user ON user_external_ids (user_id);

-- Stored as SHA-256 digests, like access tokens. A used token stays (with used_ts)
-- until it expires, so that a second use is told apart from an unknown token.
CREATE TABLE login_tokens (
    token_hash TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    auth_provider TEXT,
    expiry_ts BIGINT NOT NULL,
    used_ts BIGINT
);
CREATE INDEX login_tokens_expiry ON login_tokens (expiry_ts);
