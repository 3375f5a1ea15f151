-- A hold batch's carrier row names only its reservations (`data` {"reservationIds": [...]})
-- and the relay makes their events from the reservations when it publishes them: the JSON
-- built in the batch's write, under the schedule's lock, cost the sale about 10 % of its
-- holds/s. Carriers written before keep their events; they are rewritten to the new shape
-- (the relay makes the same events from the reservations, which have not changed what a
-- held event says: user, seats, prices, expiry).
UPDATE outbox SET data = jsonb_build_object('reservationIds',
    (SELECT coalesce(jsonb_agg((e->>'reservationId')::bigint ORDER BY n), '[]'::jsonb)
     FROM jsonb_array_elements(data->'events') WITH ORDINALITY AS x(e, n)))
WHERE subject = 'batch' AND data ? 'events';
