-- A schedule's orders, newest first (scheduleOrders, exports): keyset pages by id within a
-- schedule, without reading the other schedules' reservations.
CREATE INDEX reservations_schedule ON reservations (schedule_id, id DESC);
