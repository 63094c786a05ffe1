-- A tenant's own rule for its recordings: deleted this many days after they end (0: kept);
-- NULL follows the server's `--recording-retention-days`.
ALTER TABLE tenants ADD COLUMN recording_retention_days BIGINT;
