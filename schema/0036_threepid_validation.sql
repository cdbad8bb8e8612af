-- Third-party ID validation (email tokens this server mails itself) and where a
-- user's third-party IDs were bound on identity servers.

-- One attempt to prove that the holder of ``client_secret`` controls ``address``;
-- ``validated_at`` is set once a mailed token was submitted.
CREATE TABLE threepid_validation_session (
    session_id TEXT NOT NULL PRIMARY KEY,
    medium TEXT NOT NULL,
    address TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    last_send_attempt BIGINT NOT NULL,
    validated_at BIGINT
);
CREATE INDEX threepid_validation_session_secret
    ON threepid_validation_session (medium, client_secret, address);

-- The tokens mailed for a session (one per send attempt), valid until ``expires``
-- and used at most once (all of a session's tokens go when one is submitted).
CREATE TABLE threepid_validation_token (
    token TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES threepid_validation_session (session_id)
        ON DELETE CASCADE,
    next_link TEXT,
    expires BIGINT NOT NULL
);
CREATE INDEX threepid_validation_token_session ON threepid_validation_token (session_id);

-- The identity servers a user's third-party ID was bound on through this server
-- (unbound there on /account/3pid/delete, /unbind and deactivation).
CREATE TABLE user_threepid_id_server (
    user_id TEXT NOT NULL,
    medium TEXT NOT NULL,
    address TEXT NOT NULL,
    id_server TEXT NOT NULL,
    PRIMARY KEY (user_id, medium, address, id_server)
);
