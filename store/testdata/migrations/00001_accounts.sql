-- +goose Up
CREATE TABLE accounts (
    id         TEXT PRIMARY KEY,
    email      TEXT NOT NULL UNIQUE,
    balance    BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE accounts;
