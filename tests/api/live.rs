//! Live subscriptions across instances (C11, C14).
