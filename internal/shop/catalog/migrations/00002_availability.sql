-- +goose Up
-- The availability read model, fed by inventory.stock.changed.v1: eventually
-- consistent with inventory, newest event wins (as_of is the event's time).
CREATE TABLE availability (
    product_id TEXT PRIMARY KEY,
    available  BIGINT NOT NULL,
    reserved   BIGINT NOT NULL,
    sold       BIGINT NOT NULL,
    as_of      BIGINT NOT NULL,
    event_id   TEXT NOT NULL
);

-- +goose Down
DROP TABLE availability;
