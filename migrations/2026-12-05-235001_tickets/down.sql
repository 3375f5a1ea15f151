DROP TABLE check_ins;
DROP TABLE scanners;
DROP TABLE tickets;
DROP TABLE ticket_keys;
