-- Back to carriers holding their events' data, as the earlier relay reads them.
UPDATE outbox c SET data = jsonb_build_object('events',
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'reservationId', r.id::text, 'scheduleId', r.schedule_id::text, 'concertId', s.concert_id::text,
        'userId', r.user_id::text, 'status', 'HELD', 'seatCount', r.seat_count,
        'totalPrice', r.total_price, 'expiresAt', r.expires_at,
        'seatIds', (SELECT coalesce(jsonb_agg(rs.seat_id::text ORDER BY rs.seat_id), '[]'::jsonb)
                    FROM reservation_seats rs WHERE rs.reservation_id = r.id)) ORDER BY x.n), '[]'::jsonb)
     FROM jsonb_array_elements_text(c.data->'reservationIds') WITH ORDINALITY AS x(id, n)
     JOIN reservations r ON r.id = x.id::bigint JOIN schedules s ON s.id = r.schedule_id))
WHERE subject = 'batch' AND data ? 'reservationIds';
