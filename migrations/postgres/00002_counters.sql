-- The sign-in throttle's attempts and the request rates, counted here so
-- that every instance on the database counts together (adapters/postgres
-- counters.go). UNLOGGED: no write-ahead log for a count taken on every
-- request; a crash empties them, which only forgives the attempts of the
-- last window. Keys are 64-bit keyed hashes, never a username or an
-- address; the key is in counter_key, made by the first instance.

-- +goose Up
CREATE TABLE counter_key (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    key BYTEA   NOT NULL
);

-- Attempt times (unix nanoseconds, oldest first, at most the limit's
-- worth) per username or address; the row can go once expires has passed.
CREATE UNLOGGED TABLE throttle_attempts (
    key     BIGINT   PRIMARY KEY,
    times   BIGINT[] NOT NULL,
    expires BIGINT   NOT NULL
);

-- One theoretical arrival time per key (the generic cell rate algorithm);
-- a row whose tat has passed is back to a full allowance and can go.
CREATE UNLOGGED TABLE rate_tat (
    key BIGINT PRIMARY KEY,
    tat BIGINT NOT NULL
);

-- throttle_reserve counts an attempt at at_ns under every key, unless one
-- already holds its limit (limits, in the same order) of attempts newer
-- than at_ns - win: then it counts none and returns how long until it would
-- (nanoseconds). One call is one transaction: the upsert locks the rows in
-- key order, so concurrent calls on any instance count one after the
-- other and never deadlock, and a row a concurrent prune deletes is
-- inserted again rather than lost.
-- +goose StatementBegin
CREATE FUNCTION throttle_reserve(keys BIGINT[], limits INTEGER[], win BIGINT, at_ns BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    wait BIGINT;
BEGIN
    INSERT INTO throttle_attempts AS t (key, times, expires)
    SELECT k, '{}', at_ns + win FROM unnest(keys) AS k ORDER BY k
    ON CONFLICT (key) DO UPDATE SET expires = t.expires;
    -- A new statement, so a new snapshot: it sees what the calls this one
    -- waited for committed.
    SELECT coalesce(max(CASE WHEN cardinality(live) >= lim THEN live[cardinality(live) - lim + 1] + win - at_ns END), 0)
    INTO wait
    FROM (SELECT l.lim, ARRAY(SELECT x FROM unnest(t.times) AS x WHERE x > at_ns - win ORDER BY x) AS live
          FROM throttle_attempts AS t JOIN unnest(keys, limits) AS l (key, lim) ON l.key = t.key) AS s;
    IF wait > 0 THEN
        RETURN wait;
    END IF;
    UPDATE throttle_attempts AS t
    SET times = ARRAY(SELECT x FROM unnest(t.times) AS x WHERE x > at_ns - win ORDER BY x) || at_ns,
        expires = greatest(t.expires, at_ns + win)
    WHERE t.key = ANY (keys);
    RETURN 0;
END $$;
-- +goose StatementEnd

-- throttle_release forgets one attempt at at_ns under every key.
-- +goose StatementBegin
CREATE FUNCTION throttle_release(keys BIGINT[], at_ns BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM throttle_attempts WHERE key = ANY (keys) ORDER BY key FOR UPDATE;
    UPDATE throttle_attempts
    SET times = times[:array_position(times, at_ns) - 1] || times[array_position(times, at_ns) + 1:]
    WHERE key = ANY (keys) AND at_ns = ANY (times);
END $$;
-- +goose StatementEnd

-- rate_allow counts a request under k at now_ns when its time is at most
-- burst ahead of now_ns, and returns 0; otherwise how long until it would
-- be (nanoseconds), counting nothing.
-- +goose StatementBegin
CREATE FUNCTION rate_allow(k BIGINT, now_ns BIGINT, intv BIGINT, burst BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    t BIGINT;
BEGIN
    INSERT INTO rate_tat AS r (key, tat) VALUES (k, now_ns + intv)
    ON CONFLICT (key) DO UPDATE SET tat = greatest(r.tat, now_ns) + intv
        WHERE greatest(r.tat, now_ns) - now_ns <= burst;
    IF FOUND THEN
        RETURN 0;
    END IF;
    -- Not updated, but locked by the upsert: this reads its latest time.
    SELECT r.tat - burst - now_ns INTO t FROM rate_tat AS r WHERE r.key = k;
    RETURN greatest(t, 1);
END $$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION rate_allow(BIGINT, BIGINT, BIGINT, BIGINT);
DROP FUNCTION throttle_release(BIGINT[], BIGINT);
DROP FUNCTION throttle_reserve(BIGINT[], INTEGER[], BIGINT, BIGINT);
DROP TABLE rate_tat;
DROP TABLE throttle_attempts;
DROP TABLE counter_key;
