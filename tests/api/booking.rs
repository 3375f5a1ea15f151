//! Holds, payment, cancellation, expiry and the invariants under contention (C9, I1-I7).
