-- The entries one request leaves for the records a list showed are stored
-- as one row (n entries, ids id … id+n-1, the first's record and patient in
-- their columns and the others' packed in `more`), and the users a row
-- names, as actor or patient, are indexed in audit_users, one narrow row
-- each: a patient's own list, one. Records are not indexed one by one any more: a list
-- names ten, and ten index entries scattered over the tree were most of
-- its cost; a record's entries are found among its patient's, whose id is
-- on the record's record.create entry (indexed alone). The time indexes
-- are ascending: entries are appended in near time order, so new index
-- entries go at the end of the tree instead of splitting pages at its
-- start.

-- +goose Up
ALTER TABLE audit ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit ADD COLUMN more BLOB;
CREATE TABLE audit_users (
    user_id INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    id      INTEGER NOT NULL,
    PRIMARY KEY (user_id, at, id)
) WITHOUT ROWID;
INSERT INTO audit_users (user_id, at, id) SELECT patient_id, at, id FROM audit WHERE patient_id != 0;
INSERT OR IGNORE INTO audit_users (user_id, at, id) SELECT actor_id, at, id FROM audit WHERE actor_id != 0;
DROP INDEX audit_record;
DROP INDEX audit_patient;
DROP INDEX audit_actor;
DROP INDEX audit_at;
CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_created ON audit (record_id) WHERE action = 'record.create';

-- +goose Down
-- Refused once a row holds several entries: going down would lose them.
CREATE TEMP TABLE audit_groups_down (grouped INTEGER CHECK (grouped = 0));
INSERT INTO audit_groups_down SELECT count(*) FROM audit WHERE n > 1;
DROP TABLE audit_groups_down;
DROP INDEX audit_created;
DROP INDEX audit_at;
CREATE INDEX audit_at ON audit (at DESC, id DESC);
CREATE INDEX audit_actor ON audit (actor_id, at DESC, id DESC);
CREATE INDEX audit_record ON audit (record_id, at DESC, id DESC);
CREATE INDEX audit_patient ON audit (patient_id, at DESC, id DESC);
DROP TABLE audit_users;
ALTER TABLE audit DROP COLUMN more;
ALTER TABLE audit DROP COLUMN n;
