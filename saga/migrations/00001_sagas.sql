-- +goose Up
-- One row per saga instance: where it is (status and the step it is at), its data,
-- and who is running it (owner, lease). A lease that is not renewed expires, and
-- any orchestrator then takes the saga over.
CREATE TABLE sagas (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'compensating', 'done', 'compensated', 'stuck')),
    -- Running: the next step to do. Compensating: the next step to undo.
    step        INTEGER NOT NULL,
    data        TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    deadline    BIGINT NOT NULL,
    owner       TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    traceparent TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX sagas_active ON sagas (lease_until) WHERE status IN ('running', 'compensating');

-- +goose Down
DROP TABLE sagas;
