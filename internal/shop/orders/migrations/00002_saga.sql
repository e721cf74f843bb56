-- +goose Up
-- Orders placed through the saga: priced lines, the total, the card's last digits,
-- and the history of statuses the v2 API shows.
ALTER TABLE orders ADD COLUMN total_minor BIGINT NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN currency TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN card_last4 TEXT NOT NULL DEFAULT '';

CREATE TABLE order_history (
    order_id TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    status   TEXT NOT NULL,
    reason   TEXT NOT NULL DEFAULT '',
    at       BIGINT NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- +goose Down
DROP TABLE order_history;
