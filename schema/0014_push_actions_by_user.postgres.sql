-- The push actions of each user, keyed by (user, stream position): one index instead
-- of three that all began with the user (each message writes a row per notified
-- member, so each such index costs a page write per member). A stream position is
-- one event, so (user_id, stream_ordering) is as unique as (user_id, event_id) was.
ALTER TABLE event_push_actions DROP CONSTRAINT event_push_actions_pkey;
DROP INDEX event_push_actions_user_stream;
DROP INDEX event_push_actions_user_room;
ALTER TABLE event_push_actions ADD PRIMARY KEY (user_id, stream_ordering);
