DROP INDEX users_in_debt;
