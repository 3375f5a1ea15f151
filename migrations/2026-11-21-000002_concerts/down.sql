DROP TABLE seats;
DROP TABLE seat_grades;
DROP TABLE schedules;
DROP TABLE concerts;
