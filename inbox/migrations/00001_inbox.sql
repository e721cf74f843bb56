-- +goose Up
CREATE TABLE inbox (
    consumer     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_processed ON inbox (processed_at);

-- +goose Down
DROP TABLE inbox;
