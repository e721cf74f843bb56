-- +goose Up
-- Each customer's notifications, numbered 1, 2, 3… per customer in commit order: a
-- client that reconnects asks for those after the last number it saw.
CREATE TABLE notifications (
    user_id  TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    type     TEXT NOT NULL,
    order_id TEXT NOT NULL,
    status   TEXT NOT NULL,
    message  TEXT NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX notifications_at ON notifications (at);

-- +goose Down
DROP TABLE notifications;
