//! How many sockets each account holds open on this instance
//! (`WS_MAX_SOCKETS_PER_USER`): a place taken when a socket signs in, given back when it
//! ends.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Open sockets per account on this instance.
#[derive(Default)]
pub struct SocketsPerUser(Mutex<HashMap<i64, usize>>);

/// One account's place in [`SocketsPerUser`], given back when the socket ends.
pub(super) struct UserSlot {
    registry: Arc<SocketsPerUser>,
    user: i64,
}

impl SocketsPerUser {
    pub(super) fn take(self: &Arc<Self>, user: i64, max: usize) -> Option<UserSlot> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(user).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            registry: self.clone(),
            user,
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut map = self
            .registry
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}
