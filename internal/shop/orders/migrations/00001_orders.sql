-- +goose Up
CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    items           TEXT NOT NULL,
    -- The Idempotency-Key the order was placed with, and the hash of the request it
    -- came with: the same key with the same body gets the same order back; with a
    -- different body, a 422.
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (customer_id, idempotency_key)
);
CREATE INDEX orders_customer ON orders (customer_id, id);

-- +goose Down
DROP TABLE orders;
