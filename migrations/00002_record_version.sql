-- A record's version changes with every change to the record or to its
-- comments, in the same transaction, whoever makes it (the server, the CLI,
-- another process): a copy of a record read at version v is exactly what
-- the row holds while its version is still v. The server's record cache
-- relies on this.

-- +goose Up
ALTER TABLE records ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

-- A page of records is listed from these indexes alone, (id, version) per
-- record, without a lookup into the table for each.
DROP INDEX records_patient;
DROP INDEX records_doctor;
CREATE INDEX records_patient ON records (patient_id, created_at DESC, id DESC, version);
CREATE INDEX records_doctor ON records (doctor_id, created_at DESC, id DESC, version);

-- +goose StatementBegin
-- recursive_triggers is off, so this trigger's own UPDATE does not fire it
-- again; the WHEN also spares a statement that set version itself.
CREATE TRIGGER records_version AFTER UPDATE ON records
WHEN NEW.version = OLD.version
BEGIN
    UPDATE records SET version = OLD.version + 1 WHERE id = NEW.id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER comments_insert_version AFTER INSERT ON comments
BEGIN
    UPDATE records SET version = version + 1 WHERE id = NEW.record_id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER comments_delete_version AFTER DELETE ON comments
BEGIN
    UPDATE records SET version = version + 1 WHERE id = OLD.record_id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER comments_update_version AFTER UPDATE ON comments
BEGIN
    UPDATE records SET version = version + 1 WHERE id IN (OLD.record_id, NEW.record_id);
END;
-- +goose StatementEnd

-- +goose Down
DROP INDEX records_patient;
DROP INDEX records_doctor;
CREATE INDEX records_patient ON records (patient_id, created_at DESC, id DESC);
CREATE INDEX records_doctor ON records (doctor_id, created_at DESC, id DESC);
DROP TRIGGER comments_update_version;
DROP TRIGGER comments_delete_version;
DROP TRIGGER comments_insert_version;
DROP TRIGGER records_version;
ALTER TABLE records DROP COLUMN version;
