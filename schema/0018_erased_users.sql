-- Users who deactivated their account asking for erasure (``erase: true``): their
-- events are served pruned, as a redaction would leave them, to anyone who was not
-- joined to the room when they were sent (as Synapse does).
CREATE TABLE erased_users (
    user_id TEXT PRIMARY KEY
);
