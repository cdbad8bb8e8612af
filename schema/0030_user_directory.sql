-- The user directory (POST /user_directory/search), kept current on write by
-- homeserver/user_directory/: one row per user it may find, local users (from their
-- profile) and remote users seen joined to a room (from their membership event).
CREATE TABLE user_directory (
    user_id TEXT NOT NULL PRIMARY KEY,
    display_name TEXT,
    avatar_url TEXT,
    is_local BOOLEAN NOT NULL,
    -- the lower-cased words of the user ID and display name, each preceded by a space
    -- (" alice example.com @alice:example.com ..."), so a word prefix is a plain LIKE
    search_words TEXT NOT NULL
);

-- Rooms whose members anyone may find: join rule public or history world_readable.
CREATE TABLE user_directory_public_rooms (
    room_id TEXT NOT NULL PRIMARY KEY
);

-- One row once the directory has been filled from the users and rooms held before it.
CREATE TABLE user_directory_filled (
    filled BOOLEAN NOT NULL PRIMARY KEY
);
