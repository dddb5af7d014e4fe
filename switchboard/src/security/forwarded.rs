//! [`TrustedProxies`]: the client's address behind reverse proxies we trust.
//!
//! Behind nginx the TCP peer is nginx; the client's address travels in `X-Forwarded-For`
//! (nginx's `$proxy_add_x_forwarded_for`) or in RFC 7239 `Forwarded`. Both are lists that
//! each proxy appends to, so only the right end is written by proxies we run; everything to
//! the left of the first address we do not trust was written by the client and may be a
//! lie. We walk the list from the right and stop there.

use http::HeaderMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Which header the proxies in front of us append the client's address to. Only one is
/// read: a proxy that appends to one passes the other through from the client unchanged,
/// so reading both would let a client choose its own address.
///
/// ```
/// use switchboard::security::{ForwardedHeader, TrustedProxies};
///
/// let proxies = TrustedProxies::new(["127.0.0.1"])?.header(ForwardedHeader::Forwarded);
/// let mut headers = http::HeaderMap::new();
/// headers.insert("forwarded", "for=203.0.113.9".parse().unwrap());
/// headers.insert("x-forwarded-for", "6.6.6.6".parse().unwrap()); // not read
/// let client = proxies.client_ip("127.0.0.1".parse().unwrap(), &headers);
/// assert_eq!(client, "203.0.113.9".parse::<std::net::IpAddr>().unwrap());
/// # Ok::<(), switchboard::security::InvalidProxyRange>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// An address range in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = InvalidProxyRange;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidProxyRange(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let network = canonical(addr.parse::<IpAddr>().map_err(|_| invalid())?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(invalid)?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

/// An address range that is not `ADDRESS` or `ADDRESS/PREFIX`.
///
/// ```
/// use switchboard::security::{InvalidProxyRange, TrustedProxies};
///
/// let err = TrustedProxies::new(["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
/// assert_eq!(err, InvalidProxyRange("10.0.0.0/33".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid proxy address or range {0:?} (expected e.g. 127.0.0.1, 10.0.0.0/8 or fd00::/8)")]
pub struct InvalidProxyRange(pub String);

/// The reverse proxies whose forwarding headers we believe, and which header they set.
///
/// ```
/// use switchboard::security::TrustedProxies;
/// let proxies = TrustedProxies::new(["127.0.0.1", "10.0.0.0/8"]).unwrap();
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.2.3".parse().unwrap());
/// // nginx on 127.0.0.1 got it from 10.1.2.3 (trusted) which got it from 203.0.113.9;
/// // the 6.6.6.6 on the left was written by that client and is ignored.
/// let client = proxies.client_ip("127.0.0.1".parse().unwrap(), &headers);
/// assert_eq!(client, "203.0.113.9".parse::<std::net::IpAddr>().unwrap());
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TrustedProxies {
    ranges: Vec<Cidr>,
    header: ForwardedHeader,
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<String> = self
            .ranges
            .iter()
            .map(|c| format!("{}/{}", c.network, c.prefix))
            .collect();
        f.debug_struct("TrustedProxies")
            .field("ranges", &ranges)
            .field("header", &self.header)
            .finish()
    }
}

impl TrustedProxies {
    /// Trusts proxies at these addresses or ranges (`127.0.0.1`, `10.0.0.0/8`, `::1`,
    /// `fd00::/8`), reading `X-Forwarded-For`. With no ranges, nothing is trusted and the
    /// TCP peer is always the client.
    pub fn new(
        ranges: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, InvalidProxyRange> {
        let ranges = ranges
            .into_iter()
            .map(|r| r.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies {
            ranges,
            header: ForwardedHeader::default(),
        })
    }

    /// Reads this header instead of `X-Forwarded-For`.
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether `ip` is one of our proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|range| range.contains(ip))
    }

    /// The client's address for a connection from `peer` carrying `headers`: `peer` unless
    /// it is a trusted proxy; then the rightmost address in the forwarding header that is
    /// not a trusted proxy. An entry that is not an address (`unknown`, an obfuscated name)
    /// stops the walk at the last address known.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.is_trusted(client) {
            return client;
        }
        for hop in self.hops(headers).into_iter().rev() {
            match hop {
                Some(ip) => {
                    client = ip;
                    if !self.is_trusted(ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }

    /// The addresses in the configured header, left to right (`None` for an entry that is
    /// not an address). Repeated headers are one list, in order (RFC 7230 §3.2.2).
    fn hops(&self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let (name, pick): (&str, fn(&str) -> Option<&str>) = match self.header {
            ForwardedHeader::XForwardedFor => ("x-forwarded-for", whole_element),
            ForwardedHeader::Forwarded => ("forwarded", forwarded_for),
        };
        headers
            .get_all(name)
            .iter()
            .flat_map(|value| value.to_str().unwrap_or("unknown").split(','))
            .map(|element| pick(element.trim()).and_then(parse_node))
            .collect()
    }
}

/// An `X-Forwarded-For` element is the address itself.
fn whole_element(element: &str) -> Option<&str> {
    Some(element)
}

/// The `for=` parameter of one `Forwarded` element (RFC 7239 §4).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim())
    })
}

/// An address from a forwarding entry: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `"[2001:db8::1]:4711"`; `None` for `unknown` and obfuscated identifiers.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        return rest
            .split_once(']')
            .and_then(|(ip, _)| ip.parse().ok())
            .map(canonical);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // IPv4 with a port (IPv6 with a port is always bracketed).
    let (ip, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// IPv4-mapped IPv6 addresses as IPv4, so `127.0.0.1` also matches a dual-stack peer.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn ranges_parse_and_match() {
        let proxies = TrustedProxies::new(["10.0.0.0/8", "127.0.0.1", "fd00::/8", "::1"]).unwrap();
        assert!(proxies.is_trusted(ip("10.200.3.4")));
        assert!(!proxies.is_trusted(ip("11.0.0.1")));
        assert!(proxies.is_trusted(ip("127.0.0.1")));
        assert!(proxies.is_trusted(ip("::ffff:127.0.0.1")));
        assert!(!proxies.is_trusted(ip("127.0.0.2")));
        assert!(proxies.is_trusted(ip("fd12::5")));
        assert!(proxies.is_trusted(ip("::1")));
        assert!(TrustedProxies::new(["0.0.0.0/0"])
            .unwrap()
            .is_trusted(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "::/129", "nginx", "10.0.0.0/", ""] {
            assert!(TrustedProxies::new([bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = TrustedProxies::new(["127.0.0.1"]).unwrap();
        let claims = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(
            proxies.client_ip(ip("203.0.113.5"), &claims),
            ip("203.0.113.5")
        );
        assert_eq!(
            TrustedProxies::default().client_ip(ip("127.0.0.1"), &claims),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right() {
        let proxies = TrustedProxies::new(["127.0.0.1", "10.0.0.0/8"]).unwrap();
        let peer = ip("127.0.0.1");
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(proxies.client_ip(peer, &h), ip("203.0.113.9"));
        // Only proxies all the way: the leftmost is the best we know.
        let h = headers("x-forwarded-for", &["10.0.0.3, 10.0.0.2"]);
        assert_eq!(proxies.client_ip(peer, &h), ip("10.0.0.3"));
        // No header: the proxy itself.
        assert_eq!(proxies.client_ip(peer, &HeaderMap::new()), peer);
        // Garbage stops the walk at the last known address.
        let h = headers("x-forwarded-for", &["203.0.113.9, garbage, 10.0.0.2"]);
        assert_eq!(proxies.client_ip(peer, &h), ip("10.0.0.2"));
        // Ports are tolerated.
        let h = headers("x-forwarded-for", &["203.0.113.9:5555"]);
        assert_eq!(proxies.client_ip(peer, &h), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_is_read_only_when_configured() {
        let proxies = TrustedProxies::new(["127.0.0.1"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
        let peer = ip("127.0.0.1");
        let h = headers(
            "forwarded",
            &[r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#],
        );
        assert_eq!(proxies.client_ip(peer, &h), ip("2001:db8:cafe::17"));
        let h = headers("forwarded", &["for=unknown"]);
        assert_eq!(proxies.client_ip(peer, &h), peer);
        // The other header is a client's claim here, and ignored.
        let mut h = headers("forwarded", &["for=192.0.2.60"]);
        h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        assert_eq!(proxies.client_ip(peer, &h), ip("192.0.2.60"));
        let xff = TrustedProxies::new(["127.0.0.1"]).unwrap();
        assert_eq!(xff.client_ip(peer, &h), ip("1.2.3.4"));
    }
}
