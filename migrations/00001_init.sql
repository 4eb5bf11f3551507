-- Times are INTEGER unix nanoseconds, UTC. Ids use AUTOINCREMENT so that an
-- id is never reused after a delete: audit entries, notifications and outbox
-- events keep naming a deleted record, and must never come to name another.

-- +goose Up
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE, -- BINARY collation: case-sensitive, as Django
    email         TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('PATIENT', 'DOCTOR', 'ADMIN')),
    approved      INTEGER NOT NULL DEFAULT 0,
    active        INTEGER NOT NULL DEFAULT 1,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX users_created ON users (created_at DESC, id DESC);

CREATE TABLE records (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id INTEGER NOT NULL REFERENCES users (id),
    doctor_id  INTEGER REFERENCES users (id), -- NULL: unassigned
    title      TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX records_patient ON records (patient_id, created_at DESC, id DESC);
CREATE INDEX records_doctor ON records (doctor_id, created_at DESC, id DESC);

CREATE TABLE comments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id  INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
    doctor_id  INTEGER NOT NULL REFERENCES users (id),
    comment    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX comments_record ON comments (record_id, created_at, id);
CREATE INDEX comments_doctor ON comments (doctor_id, created_at, id);

-- No foreign key to records from here on: history outlives a deleted record.
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    kind       TEXT    NOT NULL,
    record_id  INTEGER NOT NULL,
    patient_id INTEGER NOT NULL,
    event_id   INTEGER NOT NULL UNIQUE, -- one notification per outbox event
    created_at INTEGER NOT NULL,
    read_at    INTEGER
);
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC, id DESC);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL,
    record_id       INTEGER NOT NULL,
    patient_id      INTEGER NOT NULL,
    doctor_id       INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    claimed_by      TEXT,
    claimed_until   INTEGER,
    done            TEXT    NOT NULL DEFAULT '' -- comma-separated sink names
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_created ON outbox (created_at DESC, id DESC);
CREATE INDEX outbox_state_created ON outbox (state, created_at DESC, id DESC);

-- The audit trail is a hash chain; ids are assigned by the adapter, not by
-- SQLite, so that a gap is visible.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor_id    INTEGER NOT NULL,
    actor_role  TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    record_id   INTEGER NOT NULL DEFAULT 0, -- 0: none
    patient_id  INTEGER NOT NULL DEFAULT 0, -- 0: none
    outcome     TEXT    NOT NULL,
    request_id  TEXT    NOT NULL DEFAULT '',
    remote_addr TEXT    NOT NULL DEFAULT '',
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);
CREATE INDEX audit_at ON audit (at DESC, id DESC);
CREATE INDEX audit_actor ON audit (actor_id, at DESC, id DESC);
CREATE INDEX audit_record ON audit (record_id, at DESC, id DESC);
CREATE INDEX audit_patient ON audit (patient_id, at DESC, id DESC);

-- The chain's head, updated in the same transaction as every append, so that
-- deleting the last entries is detectable too.
CREATE TABLE audit_head (
    one       INTEGER PRIMARY KEY CHECK (one = 1),
    last_id   INTEGER NOT NULL,
    last_hash TEXT    NOT NULL
);
INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, 0, '');

CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_revoked ON sessions (revoked_at);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE used_refresh (
    jti        TEXT    PRIMARY KEY,
    session_id TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX used_refresh_expires ON used_refresh (expires_at);

-- +goose Down
DROP TABLE used_refresh;
DROP TABLE sessions;
DROP TABLE audit_head;
DROP TABLE audit;
DROP TABLE outbox;
DROP TABLE notifications;
DROP TABLE comments;
DROP TABLE records;
DROP TABLE users;
