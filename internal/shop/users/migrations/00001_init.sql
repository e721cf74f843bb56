-- +goose Up
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Refresh tokens are stored by the SHA-256 of their value, never the value itself.
-- A family is one login's chain of rotations; reuse of a rotated token revokes it.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    family_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- Signing keys: the newest unretired key signs; a key stays published in the JWKS
-- until every token it signed has expired (published_until).
CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    private_key     TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retire_at       BIGINT NOT NULL,
    published_until BIGINT NOT NULL
);

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE users;
