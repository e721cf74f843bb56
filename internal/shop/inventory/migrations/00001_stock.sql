-- +goose Up
CREATE TABLE stock (
    product_id TEXT PRIMARY KEY,
    available  BIGINT NOT NULL CHECK (available >= 0),
    reserved   BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    sold       BIGINT NOT NULL DEFAULT 0 CHECK (sold >= 0),
    -- What the product started with: available + reserved + sold never changes
    -- except by restocking, and `switchyard check` holds us to it.
    initial    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row per order ever seen: held, committed, released, or rejected (a reserve
-- that found stock short). The row makes every call idempotent by order id, and a
-- release that arrives before its reserve leaves a released row that the late
-- reserve then finds.
CREATE TABLE reservations (
    order_id   TEXT PRIMARY KEY,
    state      TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released', 'rejected')),
    items      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE reservations;
DROP TABLE stock;
