-- +goose Up
-- One row per request a simulated service answered and per event it handled, so
-- that its database, its outbox and its inbox work as a real service's do.
CREATE TABLE simulated (
    id      TEXT PRIMARY KEY,
    kind    TEXT NOT NULL,      -- request, stream or event
    name    TEXT NOT NULL,      -- the endpoint, or the event type
    status  INTEGER NOT NULL,   -- the HTTP status answered; 0 for an event handled
    took_ms DOUBLE PRECISION NOT NULL,
    at      BIGINT NOT NULL
);

-- +goose Down
DROP TABLE simulated;
