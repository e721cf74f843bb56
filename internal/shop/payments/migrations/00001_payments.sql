-- +goose Up
-- One payment per order. A VOIDED row with no provider reference is a marker left
-- by a void that came before its authorization: the late authorization is refused.
CREATE TABLE payments (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL UNIQUE,
    customer_id     TEXT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('AUTHORIZING', 'AUTHORIZED', 'DECLINED', 'CAPTURING', 'CAPTURED', 'VOIDED', 'REFUNDING', 'REFUNDED')),
    decline_reason  TEXT NOT NULL DEFAULT '',
    card_last4      TEXT NOT NULL DEFAULT '',
    provider_ref    TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    -- What was taken and what was given back, for `switchyard check`.
    captured        BIGINT NOT NULL DEFAULT 0,
    refunded        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX payments_idempotency_key ON payments (idempotency_key);

-- +goose Down
DROP TABLE payments;
