-- The enterprise directory: an organisation tree of departments, people (users and enterprise
-- contacts) placed in it with a title, a search key per person, and groups of people.

-- Departments nest (parent_id NULL: a top-level department). A name is unique among its
-- siblings; the expression index treats every top-level department as a sibling of the others
-- (a plain (tenant_id, parent_id, name) index would not: NULLs never clash).
CREATE TABLE departments (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    parent_id   TEXT REFERENCES departments (id),
    name        TEXT NOT NULL,
    sort_order  BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX departments_name ON departments (tenant_id, COALESCE(parent_id, ''), name);
CREATE INDEX departments_parent ON departments (parent_id);

-- A person's department and title. A department that still has people cannot be deleted (the
-- API refuses, or moves them up first when asked), so no ON DELETE action here.
-- `search_key` is what the directory search matches with LIKE: the name in lower case, its
-- pinyin (full and initials: 张三 -> "zhangsan zs") and every number, computed by the store
-- on each write (store::search) — and, for rows written before this migration, once at
-- start-up (store::directory::upgrade), since SQL cannot compute pinyin.
ALTER TABLE users ADD COLUMN department_id TEXT REFERENCES departments (id);
ALTER TABLE users ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN search_key TEXT;
CREATE INDEX users_department ON users (department_id);

-- Contacts keep their free-text `department` as a label: it is the only department a
-- personal contact can have (a personal book is not part of the organisation). Enterprise
-- contacts move into the tree: at start-up each distinct label of a tenant's enterprise book
-- becomes a top-level department of that name (or joins the one already there) and the label
-- is cleared, once (store::directory::upgrade; SQL has no portable way to make UUIDs).
ALTER TABLE contacts ADD COLUMN department_id TEXT REFERENCES departments (id);
ALTER TABLE contacts ADD COLUMN title TEXT NOT NULL DEFAULT '';
ALTER TABLE contacts ADD COLUMN search_key TEXT;
CREATE INDEX contacts_department ON contacts (department_id);

-- Groups of people: the enterprise's (owner_id NULL, kept by administrators, seen by the
-- tenant) or one user's own (seen by that user only). Names are unique per owner.
CREATE TABLE directory_groups (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    owner_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX directory_groups_name ON directory_groups (tenant_id, COALESCE(owner_id, ''), name);

-- A group's members, like a template's: a user, a contact or a raw number. A deleted user or
-- contact leaves the groups it was in.
CREATE TABLE directory_group_members (
    group_id      TEXT NOT NULL REFERENCES directory_groups (id) ON DELETE CASCADE,
    position      BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    contact_id    TEXT REFERENCES contacts (id) ON DELETE CASCADE,
    number        TEXT,
    display_name  TEXT NOT NULL,
    PRIMARY KEY (group_id, position)
);
