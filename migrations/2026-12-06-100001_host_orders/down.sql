DROP INDEX reservations_schedule;
