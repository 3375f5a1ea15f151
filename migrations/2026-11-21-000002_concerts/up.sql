-- Concerts, their schedules (performances), graded seat layouts and seats.

CREATE TABLE concerts (
    id            BIGSERIAL PRIMARY KEY,
    host_id       BIGINT NOT NULL REFERENCES users (id),
    title         TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    artist        TEXT NOT NULL CHECK (length(artist) BETWEEN 1 AND 200),
    description   TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    venue         TEXT NOT NULL CHECK (length(venue) BETWEEN 1 AND 200),
    category      TEXT NOT NULL CHECK (length(category) BETWEEN 1 AND 50),
    poster_url    TEXT CHECK (length(poster_url) <= 2048),
    status        TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'cancelled')),
    cancel_reason TEXT,
    -- What text search looks at: full-text ('simple' config: no stemming, so it works the
    -- same for any language) plus trigrams for partial words.
    search_text   TEXT GENERATED ALWAYS AS (title || ' ' || artist || ' ' || venue || ' ' || description) STORED,
    search_doc    TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', title), 'A') ||
        setweight(to_tsvector('simple', artist), 'A') ||
        setweight(to_tsvector('simple', venue), 'B') ||
        setweight(to_tsvector('simple', description), 'C')
    ) STORED,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX concerts_search_doc ON concerts USING gin (search_doc);
CREATE INDEX concerts_search_trgm ON concerts USING gin (search_text gin_trgm_ops);
CREATE INDEX concerts_host ON concerts (host_id, id);
CREATE INDEX concerts_published_category ON concerts (category, id) WHERE status = 'published';

CREATE TABLE schedules (
    id                BIGSERIAL PRIMARY KEY,
    concert_id        BIGINT NOT NULL REFERENCES concerts (id),
    starts_at         TIMESTAMPTZ NOT NULL,
    sales_open_at     TIMESTAMPTZ NOT NULL,
    sales_close_at    TIMESTAMPTZ NOT NULL,
    per_user_limit    INT NOT NULL CHECK (per_user_limit BETWEEN 1 AND 20),
    hold_seconds      INT NOT NULL DEFAULT 300 CHECK (hold_seconds BETWEEN 30 AND 3600),
    queue_enabled     BOOLEAN NOT NULL DEFAULT false,
    admit_per_second  INT NOT NULL DEFAULT 50 CHECK (admit_per_second BETWEEN 1 AND 10000),
    max_active        INT NOT NULL DEFAULT 1000 CHECK (max_active BETWEEN 1 AND 100000),
    admission_seconds INT NOT NULL DEFAULT 600 CHECK (admission_seconds BETWEEN 30 AND 7200),
    status            TEXT NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'cancelled')),
    -- The booking-count row. Every writer of this schedule's seats locks it first (I6);
    -- booked_count is held + sold seats (I2) and never exceeds capacity.
    capacity          INT NOT NULL DEFAULT 0 CHECK (capacity BETWEEN 0 AND 100000),
    booked_count      INT NOT NULL DEFAULT 0,
    -- Grows with every change of a seat; clients compare versions to spot missed updates.
    version           BIGINT NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (booked_count BETWEEN 0 AND capacity),
    CHECK (sales_open_at < sales_close_at AND sales_close_at <= starts_at)
);
CREATE INDEX schedules_concert ON schedules (concert_id, starts_at);
CREATE INDEX schedules_starts ON schedules (starts_at);

CREATE TABLE seat_grades (
    id          BIGSERIAL PRIMARY KEY,
    schedule_id BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    price       BIGINT NOT NULL CHECK (price >= 0),
    color       TEXT NOT NULL,
    position    INT NOT NULL,
    UNIQUE (schedule_id, name)
);

CREATE TABLE seats (
    id             BIGSERIAL PRIMARY KEY,
    schedule_id    BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    grade_id       BIGINT NOT NULL REFERENCES seat_grades (id) ON DELETE CASCADE,
    section        TEXT NOT NULL,
    row_label      TEXT NOT NULL,
    number         INT NOT NULL CHECK (number > 0),
    status         TEXT NOT NULL DEFAULT 'available' CHECK (status IN ('available', 'held', 'sold')),
    -- The one live reservation holding this seat (I1): a seat cannot have two.
    reservation_id BIGINT,
    UNIQUE (schedule_id, section, row_label, number),
    CHECK ((status = 'available') = (reservation_id IS NULL))
);
CREATE INDEX seats_schedule ON seats (schedule_id, id);
CREATE INDEX seats_reservation ON seats (reservation_id) WHERE reservation_id IS NOT NULL;
