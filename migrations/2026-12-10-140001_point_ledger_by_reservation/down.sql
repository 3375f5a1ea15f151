DROP INDEX point_ledger_reservation;
