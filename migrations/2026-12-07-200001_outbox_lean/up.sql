-- Every hold batch writes one outbox row per reservation inside the schedule's lock, so each
-- index on the outbox is paid on the sale's serial path (issue 25's 5 % bound). These two
-- served only the invariant check (every recent reservation change has its event), which
-- reads the whole table once and is answered as well by a hashed anti-join; pruning goes by
-- `relayed_at` in id order and the relay by `outbox_unrelayed`.
DROP INDEX outbox_created;
DROP INDEX outbox_subject;
