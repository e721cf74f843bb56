-- +goose Up
-- The journal only appends, and nothing looks a row up by its id: without the
-- primary key's index a row costs one write, not two.
CREATE TABLE simulated_log (
    id      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    name    TEXT NOT NULL,
    status  INTEGER NOT NULL,
    took_ms DOUBLE PRECISION NOT NULL,
    at      BIGINT NOT NULL
);
INSERT INTO simulated_log (id, kind, name, status, took_ms, at) SELECT id, kind, name, status, took_ms, at FROM simulated;
DROP TABLE simulated;
ALTER TABLE simulated_log RENAME TO simulated;

-- +goose Down
CREATE TABLE simulated_keyed (
    id      TEXT PRIMARY KEY,
    kind    TEXT NOT NULL,
    name    TEXT NOT NULL,
    status  INTEGER NOT NULL,
    took_ms DOUBLE PRECISION NOT NULL,
    at      BIGINT NOT NULL
);
INSERT INTO simulated_keyed (id, kind, name, status, took_ms, at) SELECT id, kind, name, status, took_ms, at FROM simulated;
DROP TABLE simulated;
ALTER TABLE simulated_keyed RENAME TO simulated;
