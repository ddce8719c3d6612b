-- The uploaded profile picture's version: it names the stored files
-- (avatars/USER_ID/VERSION-SIZE.png) and busts caches. 0: none, the
-- generated picture is shown.
ALTER TABLE users ADD COLUMN avatar_version BIGINT NOT NULL DEFAULT 0;
