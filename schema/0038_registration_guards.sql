-- Registration guards: the privacy policy version each user agreed to (user_consent),
-- when, and the version whose consent server notice they were sent; and the user a
-- registration UIA session created, so that repeating its last request returns the
-- same account (as Synapse).
ALTER TABLE users ADD COLUMN consent_version TEXT;
ALTER TABLE users ADD COLUMN consent_ts BIGINT;
ALTER TABLE users ADD COLUMN consent_server_notice_sent TEXT;
ALTER TABLE ui_auth_sessions ADD COLUMN registered_user_id TEXT;
