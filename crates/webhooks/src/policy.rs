//! Which URLs may receive webhooks, and the resolver that makes the rule hold at connect time.
//!
//! A webhook URL is chosen by a host, so without a rule it is a way into the deployment's own
//! network (server-side request forgery): the cloud metadata service, Redis, an admin port.
//! The rule: `http` or `https` only, no credentials in the URL, and every address the host
//! name resolves to must be public. Refused: unspecified, loopback, private (RFC 1918),
//! link-local, carrier-grade NAT (100.64/10), multicast, broadcast and the reserved and
//! documentation ranges; for IPv6 also unique local (fc00::/7), link-local (fe80::/10), and
//! IPv4 addresses inside IPv6 (mapped, NAT64, 6to4) by the IPv4 they carry.
//!
//! Checking a name when a webhook is created is not enough: its DNS answer can change before
//! the delivery (rebinding). So the delivery client resolves through `PolicyResolver`, which
//! applies the same rule to the very addresses the connection then uses; a URL with an IP
//! literal is checked directly, since it is never resolved. `allow_private` lifts the
//! address rule (tests, and deployments whose receivers live on a private network); the
//! scheme and credential rules stay.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use url::{Host, Url};

/// Longest URL accepted: a receiver address, not a place for data.
pub const MAX_URL_LENGTH: usize = 2048;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    pub allow_private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    #[error("the webhook URL is not a valid absolute URL")]
    Malformed,
    #[error("the webhook URL is longer than {MAX_URL_LENGTH} characters")]
    TooLong,
    #[error("the webhook URL must use http or https")]
    Scheme,
    #[error("the webhook URL may not carry a user name or password")]
    Credentials,
    #[error("the webhook URL has no host")]
    NoHost,
    #[error("the webhook URL's host {0} does not resolve")]
    Unresolvable(String),
    #[error("the webhook URL's host resolves to {0}, a private, loopback or link-local address")]
    NotPublic(IpAddr),
}

impl UrlPolicy {
    /// The syntactic part of the rule, and the address rule for an IP literal host.
    pub fn parse(&self, text: &str) -> Result<Url, UrlRefusal> {
        if text.len() > MAX_URL_LENGTH {
            return Err(UrlRefusal::TooLong);
        }
        let url = Url::parse(text.trim()).map_err(|_| UrlRefusal::Malformed)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlRefusal::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefusal::Credentials);
        }
        match url.host() {
            None => return Err(UrlRefusal::NoHost),
            Some(Host::Domain("")) => return Err(UrlRefusal::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(_)) => {}
        }
        Ok(url)
    }

    /// The whole rule, resolving the host now (used when a webhook is created, so a host
    /// hears at once that its URL will never be called).
    pub async fn check(&self, text: &str) -> Result<Url, UrlRefusal> {
        let url = self.parse(text)?;
        if let Some(Host::Domain(name)) = url.host() {
            resolve_checked(*self, name).await?;
        }
        Ok(url)
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), UrlRefusal> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(UrlRefusal::NotPublic(ip))
        }
    }

    /// The resolver for the delivery client.
    pub fn resolver(&self) -> Arc<PolicyResolver> {
        Arc::new(PolicyResolver { policy: *self })
    }
}

/// Resolves a name and refuses the whole answer if any address in it is not allowed: an
/// answer mixing a public and a private address is an attack more often than a setup.
async fn resolve_checked(policy: UrlPolicy, name: &str) -> Result<Vec<SocketAddr>, UrlRefusal> {
    let unresolvable = || UrlRefusal::Unresolvable(name.to_owned());
    // Port 0: the connector puts the URL's port in.
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|_| unresolvable())?
        .collect();
    if addrs.is_empty() {
        return Err(unresolvable());
    }
    for addr in &addrs {
        policy.check_ip(addr.ip())?;
    }
    Ok(addrs)
}

/// reqwest's resolver for webhook deliveries: the addresses it returns are the only ones
/// the connection may use, and each was checked here.
#[derive(Debug)]
pub struct PolicyResolver {
    policy: UrlPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolve_checked(policy, &name).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether an address is on the public internet (globally routable and unicast).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", including the unspecified address
        || a == 10 // private
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT, 100.64/10
        || (a == 169 && b == 254) // link-local, where cloud metadata services listen
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 168) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // IPv4 carried inside IPv6 reaches the IPv4 address: judge that one.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        // NAT64, 64:ff9b::/96
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x2002 {
        // 6to4, 2002:AABB:CCDD::/48
        return is_public_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || s[0..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated), ::/96
        || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo: tunnels to an address it does not show
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]); // discard-only, 100::/64
    !refused
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy { allow_private: false };
    const LAX: UrlPolicy = UrlPolicy { allow_private: true };

    #[test]
    fn refuses_every_non_public_range() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "100::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_public(ip), "{ip} counted as public");
            assert_eq!(STRICT.check_ip(ip), Err(UrlRefusal::NotPublic(ip)));
            assert_eq!(LAX.check_ip(ip), Ok(()));
        }
    }

    #[test]
    fn keeps_public_addresses() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_public(ip), "{ip} counted as private");
        }
    }

    #[test]
    fn parses_only_http_urls_without_credentials() {
        assert!(STRICT.parse("https://hooks.example.com/boxoffice?x=1").is_ok());
        assert!(STRICT.parse("http://hooks.example.com:8080/").is_ok());
        assert_eq!(STRICT.parse("ftp://hooks.example.com/"), Err(UrlRefusal::Scheme));
        assert_eq!(STRICT.parse("file:///etc/passwd"), Err(UrlRefusal::Scheme));
        assert_eq!(
            STRICT.parse("gopher://127.0.0.1:6379/_INFO"),
            Err(UrlRefusal::Scheme)
        );
        assert_eq!(STRICT.parse("hooks.example.com/x"), Err(UrlRefusal::Malformed));
        assert_eq!(
            STRICT.parse("https://user:pw@hooks.example.com/"),
            Err(UrlRefusal::Credentials)
        );
        assert_eq!(
            STRICT.parse("https://user@hooks.example.com/"),
            Err(UrlRefusal::Credentials)
        );
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_LENGTH));
        assert_eq!(STRICT.parse(&long), Err(UrlRefusal::TooLong));
    }

    #[test]
    fn ip_literals_are_judged_without_resolving() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            STRICT.parse("http://127.0.0.1:6379/"),
            Err(UrlRefusal::NotPublic(loopback))
        );
        // Spellings the URL parser normalises still land on the address they mean.
        assert_eq!(
            STRICT.parse("http://2130706433/"),
            Err(UrlRefusal::NotPublic(loopback))
        );
        assert_eq!(
            STRICT.parse("http://0x7f.1/"),
            Err(UrlRefusal::NotPublic(loopback))
        );
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        assert_eq!(
            STRICT.parse("http://169.254.169.254/latest/"),
            Err(UrlRefusal::NotPublic(metadata))
        );
        let v6: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            STRICT.parse("http://[::ffff:127.0.0.1]/"),
            Err(UrlRefusal::NotPublic(v6))
        );
        assert!(LAX.parse("http://127.0.0.1:6379/").is_ok());
        assert!(STRICT.parse("https://1.1.1.1/").is_ok());
    }

    #[tokio::test]
    async fn names_are_resolved_and_judged_by_their_addresses() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let refusal = STRICT.check("http://localhost:9/").await.unwrap_err();
        assert!(
            matches!(refusal, UrlRefusal::NotPublic(ip) if ip.is_loopback()),
            "{refusal:?}"
        );
        assert!(LAX.check("http://localhost:9/").await.is_ok());
        assert_eq!(
            STRICT.check("http://127.0.0.1/").await,
            Err(UrlRefusal::NotPublic(loopback))
        );
        assert_eq!(
            STRICT.check("http://no-such-host.invalid/").await,
            Err(UrlRefusal::Unresolvable("no-such-host.invalid".into()))
        );
    }
}
