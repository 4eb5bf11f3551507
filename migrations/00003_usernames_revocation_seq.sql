-- Usernames are unique after Unicode NFKC normalisation and case folding.
-- SQLite cannot compute that key, so the adapter fills username_key for
-- existing rows right after this migration (and for every new row); NULLs
-- are distinct in a UNIQUE index, so the migration itself cannot fail on
-- old accounts whose names collide once folded.
--
-- Revocations carry a sequence number, assigned inside the revoking write
-- transaction: another process's poll asks for numbers above the last it
-- saw, so a write that waited long before committing (its revoked_at set
-- earlier than a poll already past) is still found.

-- +goose Up
ALTER TABLE users ADD COLUMN username_key TEXT;
CREATE UNIQUE INDEX users_username_key ON users (username_key);

ALTER TABLE sessions ADD COLUMN revoked_seq INTEGER;
UPDATE sessions SET revoked_seq = r.n
FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY revoked_at, id) AS n FROM sessions WHERE revoked_at IS NOT NULL) AS r
WHERE sessions.id = r.id;
CREATE INDEX sessions_revoked_seq ON sessions (revoked_seq) WHERE revoked_seq IS NOT NULL;

-- Each patient's stored bytes (titles, contents, and comments on their
-- records), kept by triggers in the same transaction as every change,
-- whoever makes it, so the storage quota is one indexed read.
ALTER TABLE users ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE users SET stored_bytes =
    (SELECT COALESCE(SUM(LENGTH(CAST(title AS BLOB)) + LENGTH(CAST(content AS BLOB))), 0) FROM records WHERE patient_id = users.id)
  + (SELECT COALESCE(SUM(LENGTH(CAST(c.comment AS BLOB))), 0) FROM comments c JOIN records r ON r.id = c.record_id WHERE r.patient_id = users.id);

-- +goose StatementBegin
CREATE TRIGGER records_bytes_insert AFTER INSERT ON records
BEGIN
    UPDATE users SET stored_bytes = stored_bytes + LENGTH(CAST(NEW.title AS BLOB)) + LENGTH(CAST(NEW.content AS BLOB))
    WHERE id = NEW.patient_id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER records_bytes_update AFTER UPDATE OF title, content ON records
BEGIN
    UPDATE users SET stored_bytes = stored_bytes
        - LENGTH(CAST(OLD.title AS BLOB)) - LENGTH(CAST(OLD.content AS BLOB))
        + LENGTH(CAST(NEW.title AS BLOB)) + LENGTH(CAST(NEW.content AS BLOB))
    WHERE id = NEW.patient_id;
END;
-- +goose StatementEnd

-- A record's comments go with it (ON DELETE CASCADE): their bytes are
-- given back here, while they can still be counted.
-- +goose StatementBegin
CREATE TRIGGER records_bytes_delete BEFORE DELETE ON records
BEGIN
    UPDATE users SET stored_bytes = stored_bytes
        - LENGTH(CAST(OLD.title AS BLOB)) - LENGTH(CAST(OLD.content AS BLOB))
        - (SELECT COALESCE(SUM(LENGTH(CAST(comment AS BLOB))), 0) FROM comments WHERE record_id = OLD.id)
    WHERE id = OLD.patient_id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER comments_bytes_insert AFTER INSERT ON comments
BEGIN
    UPDATE users SET stored_bytes = stored_bytes + LENGTH(CAST(NEW.comment AS BLOB))
    WHERE id = (SELECT patient_id FROM records WHERE id = NEW.record_id);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER comments_bytes_insert;
DROP TRIGGER records_bytes_delete;
DROP TRIGGER records_bytes_update;
DROP TRIGGER records_bytes_insert;
ALTER TABLE users DROP COLUMN stored_bytes;
DROP INDEX sessions_revoked_seq;
ALTER TABLE sessions DROP COLUMN revoked_seq;
DROP INDEX users_username_key;
ALTER TABLE users DROP COLUMN username_key;
