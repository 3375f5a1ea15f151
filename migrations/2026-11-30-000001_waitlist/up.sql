-- Waiting lists of sold-out performances: a fan asks for `count` seats (of a grade, if
-- named) and, when seats come back, the earliest entries that fit are given a hold.
CREATE TABLE waitlist_entries (
    id             BIGSERIAL PRIMARY KEY,
    schedule_id    BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    user_id        BIGINT NOT NULL REFERENCES users (id),
    seat_count     INT NOT NULL CHECK (seat_count BETWEEN 1 AND 10),
    grade          TEXT,
    -- waiting: in line; offered: a hold was made for it (the entry is done: an offer not
    -- paid expires like any hold and its seats go to the next entry); left: the fan left.
    status         TEXT NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'offered', 'left')),
    reservation_id BIGINT REFERENCES reservations (id),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'offered') = (reservation_id IS NOT NULL))
);
-- One place in line per fan and performance.
CREATE UNIQUE INDEX waitlist_one_waiting ON waitlist_entries (schedule_id, user_id) WHERE status = 'waiting';
-- The line itself, in order of joining.
CREATE INDEX waitlist_line ON waitlist_entries (schedule_id, id) WHERE status = 'waiting';
CREATE INDEX waitlist_user ON waitlist_entries (user_id, id);
