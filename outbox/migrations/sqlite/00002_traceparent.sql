-- +goose Up
-- The trace context of the request that wrote the event, so the relay continues
-- that trace when it sends the event.
ALTER TABLE outbox ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE outbox DROP COLUMN traceparent;
