//! Concerts, schedules and layouts (C3, C5) over the API.
