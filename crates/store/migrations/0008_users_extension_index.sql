-- Registrations from phones whose domain names no tenant look a user up by extension alone;
-- the (tenant_id, extension) index cannot serve that.
CREATE INDEX users_extension_any ON users (extension);
