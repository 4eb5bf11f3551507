-- A live notification stream asks often for a user's notifications above
-- the last id it sent; this index answers with one seek.

-- +goose Up
CREATE INDEX notifications_user_id ON notifications (user_id, id);

-- +goose Down
DROP INDEX notifications_user_id;
