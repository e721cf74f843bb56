-- +goose Up
ALTER TABLE accounts ADD COLUMN name TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE accounts DROP COLUMN name;
