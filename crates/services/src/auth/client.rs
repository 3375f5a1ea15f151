//! The client's address as the HTTP layer saw it, and how rate limits group addresses.

use std::net::{IpAddr, Ipv6Addr};

/// The client's address, as request data for rate limits.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The address as rate limits count it: IPv4 as is, IPv6 by its /64 (one customer's
    /// network; counting by /128 would give each attacker 2^64 addresses).
    pub fn group(&self) -> Option<IpAddr> {
        self.0.map(group)
    }
}

/// See [`ClientAddr::group`].
pub fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}
