-- Directory sync: what an identity provider calls a resource it provisions through SCIM
-- (`externalId`, RFC 7643 §3.1), kept apart from the resource so the directory's own tables
-- stay as they are. One per resource; removed with the resource (users: the cascade).
CREATE TABLE scim_external_ids (
    resource_id   TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id   TEXT NOT NULL
);
CREATE INDEX scim_external_ids_tenant ON scim_external_ids (tenant_id, external_id);
