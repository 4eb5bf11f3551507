-- Each sink of an event (the in-API notification, the email) has its own
-- delivery state, so that a slow or failing mail relay never delays an
-- in-API notification, nor another event. The outbox row keeps the event
-- and a summary of its deliveries (state, attempts, last_error,
-- next_attempt_at, delivered_at), updated in the same transaction as they
-- are, for the admin's list and counts.

-- +goose Up
CREATE TABLE outbox_deliveries (
    event_id        INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    sink            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    next_attempt_at INTEGER NOT NULL,
    since           INTEGER NOT NULL, -- transient failures are given up by age from here
    delivered_at    INTEGER,
    claimed_by      TEXT,
    claimed_until   INTEGER,
    PRIMARY KEY (event_id, sink)
) WITHOUT ROWID;
-- Only pending deliveries are ever claimed: the index stays as small as the
-- backlog.
CREATE INDEX outbox_deliveries_due ON outbox_deliveries (sink, next_attempt_at, event_id)
    WHERE state = 'pending';

-- Existing events. The old dispatcher recorded a sink in done only when
-- another sink followed it or one failed, so a delivered event with
-- "notification" in done had an email sink too. An undelivered event keeps
-- an email delivery: it is at least once, and delivered when SMTP is on.
INSERT INTO outbox_deliveries (event_id, sink, state, attempts, last_error, next_attempt_at, since, delivered_at)
SELECT id, 'notification',
       CASE WHEN state = 'delivered' OR instr(',' || done || ',', ',notification,') > 0 THEN 'delivered' ELSE state END,
       attempts,
       CASE WHEN state = 'delivered' OR instr(',' || done || ',', ',notification,') > 0 THEN '' ELSE last_error END,
       next_attempt_at, created_at,
       CASE WHEN state = 'delivered' OR instr(',' || done || ',', ',notification,') > 0
            THEN coalesce(delivered_at, next_attempt_at) END
FROM outbox;

INSERT INTO outbox_deliveries (event_id, sink, state, attempts, last_error, next_attempt_at, since, delivered_at)
SELECT id, 'email',
       CASE WHEN state = 'delivered' OR instr(',' || done || ',', ',email,') > 0 THEN 'delivered' ELSE state END,
       attempts,
       CASE WHEN state = 'delivered' OR instr(',' || done || ',', ',email,') > 0 THEN '' ELSE last_error END,
       next_attempt_at, created_at,
       CASE WHEN state = 'delivered' OR instr(',' || done || ',', ',email,') > 0
            THEN coalesce(delivered_at, next_attempt_at) END
FROM outbox
WHERE state <> 'delivered' OR instr(',' || done || ',', ',email,') > 0
   OR instr(',' || done || ',', ',notification,') > 0;

-- Leases now live on the deliveries.
DROP INDEX outbox_due;
ALTER TABLE outbox DROP COLUMN claimed_by;
ALTER TABLE outbox DROP COLUMN claimed_until;
ALTER TABLE outbox DROP COLUMN done;

-- +goose Down
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
ALTER TABLE outbox ADD COLUMN done TEXT NOT NULL DEFAULT '';
UPDATE outbox SET done = coalesce((
    SELECT group_concat(sink) FROM outbox_deliveries d
    WHERE d.event_id = outbox.id AND d.state = 'delivered'), '');
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
DROP INDEX outbox_deliveries_due;
DROP TABLE outbox_deliveries;
