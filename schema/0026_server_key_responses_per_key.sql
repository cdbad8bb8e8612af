-- Key responses are kept per key (as Synapse's server_keys_json): for each key ID,
-- the latest verified response that listed it, and how long that key is valid by
-- it. A notary asked for a key then answers with a response naming that key, even
-- after the server has dropped it from newer responses (SyTest "Key notary server
-- must not overwrite a valid key with a spurious result from the origin server").
CREATE TABLE server_key_responses_by_key (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    -- the key's validity by this response: valid_until_ts of the response (capped
    -- at 7 days after it was fetched) for a current key, expired_ts for an old one
    valid_until_ts BIGINT NOT NULL,
    fetched_ts BIGINT NOT NULL,
    from_server TEXT NOT NULL,
    response_json TEXT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
-- The keys were stored in the same transaction as the response, with its fetched_ts.
INSERT INTO server_key_responses_by_key
    (server_name, key_id, valid_until_ts, fetched_ts, from_server, response_json)
SELECT k.server_name, k.key_id, k.valid_until_ts, r.fetched_ts, r.from_server, r.response_json
FROM server_key_responses r
JOIN server_signing_keys k ON k.server_name = r.server_name AND k.fetched_ts = r.fetched_ts;
DROP TABLE server_key_responses;
