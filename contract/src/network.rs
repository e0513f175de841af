//! Which addresses a `Hardened` cluster's storage endpoint may not reach:
//! loopback, link-local (cloud metadata services live there) and the
//! cluster's own service network. The operator checks an endpoint given as
//! an IP literal; the executor checks the addresses a host name resolves
//! to, before it connects. One rule for both.

use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// The security profiles of an `OpenBaoCluster` (`spec.profile`), as the
/// executor gets them (`SECURITY_PROFILE`).
pub mod profile {
    pub const DEVELOPMENT: &str = "Development";
    pub const HARDENED: &str = "Hardened";
}

/// AWS's IPv6 instance metadata address (the IPv4 one, 169.254.169.254, is
/// link-local).
pub const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// An address range, `10.96.0.0/12` or `fd00::/108`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32)
                    == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }

    /// One address as a range of its own (`/32`, `/128`).
    pub fn host(ip: IpAddr) -> Self {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        Self { addr: ip, prefix }
    }
}

fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("`{text}` is not an address range: give e.g. 10.96.0.0/12");
        let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > width {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A comma-separated list of ranges (`SERVICE_CIDRS`).
pub fn parse_cidrs(list: &str) -> Result<Vec<Cidr>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::parse)
        .collect()
}

/// Why a `Hardened` storage endpoint may not be at `ip`, or None when it
/// may.
pub fn forbidden(ip: IpAddr, service_cidrs: &[Cidr]) -> Option<String> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6 == AWS_METADATA_V6,
    };
    if ip.is_loopback() {
        Some(format!("{ip} is a loopback address"))
    } else if link_local {
        Some(format!(
            "{ip} is link-local, where cloud metadata services answer"
        ))
    } else if ip.is_unspecified() {
        Some(format!("{ip} is the unspecified address"))
    } else {
        service_cidrs
            .iter()
            .find(|cidr| cidr.contains(ip))
            .map(|cidr| format!("{ip} is in the cluster's service network {cidr}"))
    }
}

/// The host of a URL (`https://host:port/path`), without brackets around
/// an IPv6 literal.
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

/// A URL's host as an IP address, when it is one.
pub fn url_ip(url: &str) -> Option<IpAddr> {
    url_host(url).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_link_local_metadata_and_service_network_are_forbidden() {
        let service = parse_cidrs("10.96.0.0/12, fd00:10:96::/108").unwrap();
        for (address, why) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.1", "loopback"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("fd00:ec2::254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("10.96.0.1", "service network 10.96.0.0/12"),
            ("10.111.255.254", "service network 10.96.0.0/12"),
            ("fd00:10:96::5", "service network fd00:10:96::/108"),
        ] {
            let found = forbidden(ip(address), &service);
            assert!(
                found.as_deref().is_some_and(|f| f.contains(why)),
                "{address}: {found:?}"
            );
        }
        for address in ["10.112.0.1", "192.168.1.10", "52.95.110.1", "2600:1f18::1"] {
            assert_eq!(forbidden(ip(address), &service), None, "{address}");
        }
    }

    #[test]
    fn ranges_parse_and_bad_ones_say_so() {
        assert_eq!(
            parse_cidrs("10.96.0.0/12").unwrap(),
            [Cidr {
                addr: ip("10.96.0.0"),
                prefix: 12
            }]
        );
        assert!(parse_cidrs("").unwrap().is_empty());
        assert!(Cidr::from_str("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!Cidr::from_str("0.0.0.0/0").unwrap().contains(ip("::1")));
        for bad in ["10.96.0.0", "10.96.0.0/33", "x/8", "::/129"] {
            let error = parse_cidrs(bad).unwrap_err();
            assert!(error.contains("not an address range"), "{error}");
        }
        assert_eq!(Cidr::host(ip("10.0.0.7")).to_string(), "10.0.0.7/32");
    }

    #[test]
    fn hosts_come_out_of_urls() {
        assert_eq!(url_host("https://s3.example.com:9000/b"), "s3.example.com");
        assert_eq!(url_host("http://[fd00:ec2::254]:80/"), "fd00:ec2::254");
        assert_eq!(url_host("http://u:p@10.0.0.1"), "10.0.0.1");
        assert_eq!(
            url_ip("http://169.254.169.254/latest"),
            Some(ip("169.254.169.254"))
        );
        assert_eq!(url_ip("https://s3.amazonaws.com"), None);
    }
}
