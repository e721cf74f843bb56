-- +goose Up
-- One row per seat of every confirmed booking.
CREATE TABLE tickets (
    id         TEXT PRIMARY KEY,
    booking_id TEXT NOT NULL,
    show_id    TEXT NOT NULL,
    seat       INTEGER NOT NULL,
    issued_at  BIGINT NOT NULL,
    UNIQUE (booking_id, seat)
);

-- +goose Down
DROP TABLE tickets;
