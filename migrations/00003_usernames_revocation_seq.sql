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

-- +goose Down
DROP INDEX sessions_revoked_seq;
ALTER TABLE sessions DROP COLUMN revoked_seq;
DROP INDEX users_username_key;
ALTER TABLE users DROP COLUMN username_key;
