//! Points (C10).
