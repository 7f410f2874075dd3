//! The SSRF guard: a push may only reach a public address of an allowed host.
//!
//! Checked twice: the URL before any request (scheme, allow-list, literal IP addresses), and every
//! address the host resolves to, by the HTTP client's resolver (so a DNS answer that changes
//! between check and connect — DNS rebinding — is caught where the connection is made). Redirects
//! are not followed.

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("only https is allowed (plain http only to loopback in tests)")]
    Scheme,
    #[error("host `{0}` is not in allowed_hosts")]
    HostNotAllowed(String),
    #[error("address {0} is private, loopback, link-local or reserved")]
    Address(IpAddr),
    #[error("the URL has no host")]
    NoHost,
}

impl Refused {
    /// What the audit trail may say (it is served by the read API): no host name or address, which
    /// the log line carries instead.
    pub fn public_reason(&self) -> &'static str {
        match self {
            Self::Scheme => "refused: only https is allowed",
            Self::HostNotAllowed(_) => "refused: the host is not in allowed_hosts",
            Self::Address(_) => "refused: the host resolves to a private or reserved address",
            Self::NoHost => "refused: the URL has no host",
        }
    }
}

/// Whether pushes to `address` are refused: everything but public unicast addresses (metadata
/// endpoints such as 169.254.169.254 and fd00:ec2::254 fall in the link-local and unique-local
/// ranges). Loopback passes only when `allow_loopback` (tests and the local stack).
pub fn address_refused(address: IpAddr, allow_loopback: bool) -> bool {
    match address {
        IpAddr::V4(v4) => v4_refused(v4, allow_loopback),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_refused(v4, allow_loopback),
            None => v6_refused(v6, allow_loopback),
        },
    }
}

fn v4_refused(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        return !allow_loopback;
    }
    ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Carrier-grade NAT (100.64.0.0/10) and the IETF/benchmark/reserved blocks.
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240
}

fn v6_refused(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return !allow_loopback;
    }
    let segments = ip.segments();
    let first = segments[0];
    ip.is_unspecified()
        || segments[..6].iter().all(|s| *s == 0) // IPv4-compatible `::a.b.c.d` (deprecated)
        || first == 0x2002 // 6to4: embeds an IPv4 address
        || (first == 0x2001 && segments[1] == 0) // Teredo: embeds one too
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local, incl. fd00:ec2::254
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 to possibly private v4
}

/// Checks a push URL before any request is made.
pub fn check_url(url: &Url, allowed_hosts: &[String], allow_loopback: bool) -> Result<(), Refused> {
    let host = url.host_str().ok_or(Refused::NoHost)?;
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let literal: Option<IpAddr> = bare_host.parse().ok();
    let loopback_host = bare_host.eq_ignore_ascii_case("localhost") || literal.is_some_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback && loopback_host => {}
        _ => return Err(Refused::Scheme),
    }
    if !allowed_hosts
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(host) || allowed.eq_ignore_ascii_case(bare_host))
    {
        return Err(Refused::HostNotAllowed(host.to_string()));
    }
    match literal {
        Some(ip) if address_refused(ip, allow_loopback) => Err(Refused::Address(ip)),
        _ => Ok(()),
    }
}

/// The HTTP client's resolver: the system's answer, refused as a whole if any address is.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if let Some(bad) = addresses.iter().find(|a| address_refused(a.ip(), allow_loopback)) {
                return Err(Box::new(Refused::Address(bad.ip())) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(addresses.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        address_refused(text.parse().unwrap(), false)
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for bad in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "2002:a00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::ffff:169.254.169.254",
        ] {
            assert!(refused(bad), "{bad}");
        }
        for good in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"] {
            assert!(!refused(good), "{good}");
        }
        assert!(!address_refused("127.0.0.1".parse().unwrap(), true));
        assert!(address_refused("10.0.0.1".parse().unwrap(), true), "tests allow loopback only");
    }

    #[test]
    fn urls_need_https_an_allowed_host_and_a_public_literal() {
        let allowed = vec!["crm.example.com".to_string(), "10.0.0.5".to_string(), "127.0.0.1".to_string()];
        let check = |url: &str, loopback| check_url(&Url::parse(url).unwrap(), &allowed, loopback);
        assert_eq!(check("https://crm.example.com/x", false), Ok(()));
        assert_eq!(check("http://crm.example.com/x", false), Err(Refused::Scheme));
        assert_eq!(
            check("https://other.example.com/x", false),
            Err(Refused::HostNotAllowed("other.example.com".into()))
        );
        assert_eq!(check("https://10.0.0.5/x", false), Err(Refused::Address("10.0.0.5".parse().unwrap())));
        assert_eq!(check("http://127.0.0.1:8080/x", false), Err(Refused::Scheme));
        assert_eq!(check("http://127.0.0.1:8080/x", true), Ok(()));
    }
}
