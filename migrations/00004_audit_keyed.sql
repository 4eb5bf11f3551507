-- The audit chain is keyed (HMAC-SHA256) under a key kept outside the
-- database. head_mac keys the head too, so a head moved back to an earlier
-- entry does not verify. keyed says whether the entries are hashed under
-- the key yet: a chain written before this migration (SHA-256, unkeyed)
-- is verified and re-keyed once, by the first process that makes the key;
-- an empty chain is keyed from the start.

-- +goose Up
ALTER TABLE audit_head ADD COLUMN head_mac TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_head ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0;
UPDATE audit_head SET keyed = 1 WHERE last_id = 0;

-- +goose Down
-- A re-keyed chain does not verify as revision 1's SHA-256 chain: going
-- down loses the ability to verify it (the entries themselves stay).
ALTER TABLE audit_head DROP COLUMN keyed;
ALTER TABLE audit_head DROP COLUMN head_mac;
