-- +goose Up
CREATE TABLE bookings (
    id              TEXT PRIMARY KEY,
    show_id         TEXT NOT NULL,
    seats           INTEGER NOT NULL,
    amount_minor    BIGINT NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    -- The Idempotency-Key the booking was made with: the same key, the same booking.
    idempotency_key TEXT UNIQUE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- +goose Down
DROP TABLE bookings;
