//! Search (C4) and the seat map (C6).
