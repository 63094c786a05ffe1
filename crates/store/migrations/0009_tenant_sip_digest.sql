-- sip_sha256_only: the registrar challenges this tenant's SIP domain with SHA-256 digest only,
-- and no MD5 digest (HA1) of its users' SIP passwords is kept.
ALTER TABLE tenants ADD COLUMN sip_sha256_only BIGINT NOT NULL DEFAULT 0;
