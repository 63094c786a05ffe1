-- Room settings for the conference bridge. Flags are BIGINT 0/1; the defaults keep existing
-- rooms as they were.
-- entry_chime: a chime when someone joins or leaves.
ALTER TABLE rooms ADD COLUMN entry_chime BIGINT NOT NULL DEFAULT 1;
-- alone_music: music for a member alone in the meeting.
ALTER TABLE rooms ADD COLUMN alone_music BIGINT NOT NULL DEFAULT 1;
-- members_skip_pin: callers recognised by caller ID as members of the room join without the PIN.
ALTER TABLE rooms ADD COLUMN members_skip_pin BIGINT NOT NULL DEFAULT 0;
-- release_when_empty: the room is deleted when its meeting ends (rooms created from the keypad).
ALTER TABLE rooms ADD COLUMN release_when_empty BIGINT NOT NULL DEFAULT 0;
