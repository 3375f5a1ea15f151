-- The few accounts that owe points, read every second by each instance (points::debtors).
CREATE INDEX users_in_debt ON users (id) WHERE points_debt > 0;
