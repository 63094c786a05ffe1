-- A public recording has a link for people outside the tenant (`/recording/<share_key>`),
-- with an optional password; `share_access` names its audio once the password was given.
-- Making it private again clears all three: the link stops working.
ALTER TABLE recordings ADD COLUMN share_key TEXT;
ALTER TABLE recordings ADD COLUMN share_access TEXT;
ALTER TABLE recordings ADD COLUMN share_password TEXT;
CREATE UNIQUE INDEX recordings_share_key ON recordings (share_key);
