-- A user's own language (`en`, `zh`) for what is mailed to them; NULL: the room's.
ALTER TABLE users ADD COLUMN language TEXT;
-- Reminders before an occurrence's start: queued once per occurrence and recipient, which
-- the unique key enforces across restarts and concurrent passes (NULL for other mail: many
-- NULLs are allowed by a unique index on both backends). The occurrence's original and
-- actual start let the sender drop a reminder whose occurrence was moved or cancelled since.
ALTER TABLE mail_outbox ADD COLUMN dedupe_key TEXT;
ALTER TABLE mail_outbox ADD COLUMN occurrence_original BIGINT;
ALTER TABLE mail_outbox ADD COLUMN occurrence_start BIGINT;
CREATE UNIQUE INDEX mail_outbox_dedupe ON mail_outbox (dedupe_key);
