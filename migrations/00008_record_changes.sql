-- Every change to a record or its comments (each moves the record's
-- version, migration 00002) and every deletion of a record leaves a row
-- here, in the same transaction, whoever makes it. A server that learns
-- from the -shm file that something was committed reads only the rows
-- after the last it saw to know which of its cached records to read again,
-- instead of reading a record's version on every request. Only the latest
-- rows are kept: a reader that fell further behind forgets its whole cache.

-- +goose Up
CREATE TABLE record_changes (
    seq       INTEGER PRIMARY KEY, -- the max row is never deleted, so never reused
    record_id INTEGER NOT NULL
);

-- +goose StatementBegin
CREATE TRIGGER record_changes_version AFTER UPDATE OF version ON records
WHEN NEW.version <> OLD.version
BEGIN
    INSERT INTO record_changes (record_id) VALUES (NEW.id);
    DELETE FROM record_changes WHERE seq <= last_insert_rowid() - 10000;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER record_changes_delete AFTER DELETE ON records
BEGIN
    INSERT INTO record_changes (record_id) VALUES (OLD.id);
    DELETE FROM record_changes WHERE seq <= last_insert_rowid() - 10000;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER record_changes_delete;
DROP TRIGGER record_changes_version;
DROP TABLE record_changes;
