//! Which client a request comes from, behind a known number of reverse
//! proxies; user-service throttles logins per client address with it, and
//! the storefront passes it on when it calls user-service for a shopper.
//!
//! `X-Forwarded-For` is trivially forged, so it is only read when the
//! deployment says how many reverse proxies stand in front of the service
//! (`TRUSTED_PROXY_HOPS`). Each proxy appends the address it saw, so the
//! client is the entry that many places from the right; anything to its
//! left was written by the client and is ignored.
//!
//! Each hop resolves the address with its own trust setting and forwards
//! only the result, so a service sits one hop behind whoever calls it, by
//! whatever path: the ingress controller or the storefront in a cluster,
//! the storefront locally.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{HeaderMap, request::Parts},
};

/// How many reverse proxies in front of this service are trusted to
/// append to `X-Forwarded-For`; a service's state provides it through
/// [`FromRef`] so [`ClientIp`] can be extracted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrustedProxyHops(pub usize);

/// The client's address, when known (a request that did not come over a
/// socket, as in router tests, has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

/// Picks the client address from the peer and, behind `trusted_hops`
/// proxies, from `X-Forwarded-For`; a chain too short or not an address
/// falls back to the peer.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted_hops: usize) -> Option<IpAddr> {
    if trusted_hops == 0 {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect();
    hops.len()
        .checked_sub(trusted_hops)
        .and_then(|index| hops[index].parse().ok())
        .or(peer)
}

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    TrustedProxyHops: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let TrustedProxyHops(hops) = TrustedProxyHops::from_ref(state);
        Ok(Self(client_ip(&parts.headers, peer, hops)))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    const PEER: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)));

    fn ip(headers: &HeaderMap, hops: usize) -> String {
        client_ip(headers, PEER, hops).unwrap().to_string()
    }

    #[test]
    fn forwarded_for_is_ignored_without_trusted_proxies() {
        assert_eq!(client_ip(&headers(&["1.2.3.4"]), PEER, 0), PEER);
    }

    #[test]
    fn the_entry_added_by_the_trusted_proxy_wins() {
        let spoofed = headers(&["6.6.6.6, 1.2.3.4"]);
        assert_eq!(ip(&spoofed, 1), "1.2.3.4");
        assert_eq!(ip(&spoofed, 2), "6.6.6.6");
        assert_eq!(ip(&headers(&["6.6.6.6", "1.2.3.4"]), 1), "1.2.3.4");
        assert_eq!(ip(&headers(&["2001:db8::1"]), 1), "2001:db8::1");
    }

    #[test]
    fn too_few_or_garbage_entries_fall_back_to_the_peer() {
        assert_eq!(client_ip(&headers(&["1.2.3.4"]), PEER, 2), PEER);
        assert_eq!(client_ip(&headers(&["nonsense"]), PEER, 1), PEER);
        assert_eq!(client_ip(&HeaderMap::new(), None, 1), None);
    }
}
