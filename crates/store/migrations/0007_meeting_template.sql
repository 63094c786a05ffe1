-- The template a meeting was started from, so that history can start the same meeting again.
-- No foreign key: the history outlives the template (as it does the room).
ALTER TABLE meetings ADD COLUMN template_id TEXT;
