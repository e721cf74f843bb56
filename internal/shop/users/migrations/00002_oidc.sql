-- +goose Up
-- The OpenID Connect provider's state.

-- Clients registered by an operator (`switchyard client add`); the shop's own are
-- in code and switchyard.yaml. A confidential client's secret is stored as its
-- SHA-256: it is 256 random bits, so no slow hash is needed.
CREATE TABLE oauth_clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL DEFAULT '',
    redirect_uris TEXT NOT NULL DEFAULT '',
    grants        TEXT NOT NULL,
    scopes        TEXT NOT NULL DEFAULT '',
    first_party   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

-- An authorization request from /authorize until its code is exchanged (or it
-- expires). The code is stored as its SHA-256. exchanged_at marks a used code:
-- presenting it again revokes what it was exchanged for (RFC 6749 section 4.1.2).
CREATE TABLE auth_requests (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL,
    request      TEXT NOT NULL,
    user_id      TEXT NOT NULL DEFAULT '',
    auth_time    BIGINT NOT NULL DEFAULT 0,
    done         BOOLEAN NOT NULL DEFAULT FALSE,
    code_hash    TEXT UNIQUE,
    exchanged_at BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX auth_requests_created ON auth_requests (created_at);

-- Access tokens are self-contained JWTs; a row per token lets introspection and
-- userinfo answer for them, and revocation end them there.
CREATE TABLE access_tokens (
    id         TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    grant_type TEXT NOT NULL,
    scopes     TEXT NOT NULL DEFAULT '',
    family_id  TEXT NOT NULL DEFAULT '',
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);
CREATE INDEX access_tokens_family ON access_tokens (family_id);

-- Refresh tokens of the provider carry their client, scopes and the time of the
-- sign-in they descend from; the JSON login's have no client.
ALTER TABLE refresh_tokens ADD COLUMN client_id TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;

-- What a user allowed a third-party client to do.
CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- +goose Down
DROP TABLE consents;
ALTER TABLE refresh_tokens DROP COLUMN auth_time;
ALTER TABLE refresh_tokens DROP COLUMN scopes;
ALTER TABLE refresh_tokens DROP COLUMN client_id;
DROP TABLE access_tokens;
DROP TABLE auth_requests;
DROP TABLE oauth_clients;
