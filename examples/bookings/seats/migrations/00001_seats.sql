-- +goose Up
-- Shows and their seats: held while a booking pays, sold once it has.
CREATE TABLE shows (
    id       TEXT PRIMARY KEY,
    title    TEXT NOT NULL,
    capacity INTEGER NOT NULL CHECK (capacity >= 0),
    held     INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    sold     INTEGER NOT NULL DEFAULT 0 CHECK (sold >= 0),
    CHECK (held + sold <= capacity)
);
-- One hold per booking: held, sold, or released (a release that came before its
-- hold leaves the row, so the late hold is refused).
CREATE TABLE holds (
    booking_id TEXT PRIMARY KEY,
    show_id    TEXT NOT NULL,
    seats      INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('held', 'sold', 'released'))
);
INSERT INTO shows (id, title, capacity) VALUES
    ('jazz-night', 'Jazz Night at the Depot', 100),
    ('opera-gala', 'Opera Gala (two seats left)', 2);

-- +goose Down
DROP TABLE holds;
DROP TABLE shows;
