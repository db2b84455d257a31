//! Which client a request comes from, for per-IP login throttling.
//!
//! `X-Forwarded-For` is trivially forged, so it is only read when the
//! operator says how many reverse proxies stand in front of the service
//! (`TRUSTED_PROXY_HOPS`). Each proxy appends the address it saw, so the
//! client is the entry that many places from the right; anything to its
//! left was written by the client and is ignored.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, request::Parts},
};

use crate::AppState;

/// The client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Picks the client address from the peer and, behind `trusted_hops`
/// proxies, from `X-Forwarded-For`.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted_hops: usize) -> IpAddr {
    let fallback = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if trusted_hops == 0 {
        return fallback;
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
        .unwrap_or(fallback)
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(Self(client_ip(
            &parts.headers,
            peer,
            state.trusted_proxy_hops,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    const PEER: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)));

    #[test]
    fn forwarded_for_is_ignored_without_trusted_proxies() {
        assert_eq!(client_ip(&headers(&["1.2.3.4"]), PEER, 0), PEER.unwrap());
    }

    #[test]
    fn the_entry_added_by_the_trusted_proxy_wins() {
        let spoofed = headers(&["6.6.6.6, 1.2.3.4"]);
        assert_eq!(client_ip(&spoofed, PEER, 1).to_string(), "1.2.3.4");
        assert_eq!(client_ip(&spoofed, PEER, 2).to_string(), "6.6.6.6");
        assert_eq!(
            client_ip(&headers(&["6.6.6.6", "1.2.3.4"]), PEER, 1).to_string(),
            "1.2.3.4"
        );
        assert_eq!(
            client_ip(&headers(&["2001:db8::1"]), PEER, 1).to_string(),
            "2001:db8::1"
        );
    }

    #[test]
    fn too_few_or_garbage_entries_fall_back_to_the_peer() {
        assert_eq!(client_ip(&headers(&["1.2.3.4"]), PEER, 2), PEER.unwrap());
        assert_eq!(client_ip(&headers(&["nonsense"]), PEER, 1), PEER.unwrap());
        assert_eq!(client_ip(&HeaderMap::new(), None, 0).to_string(), "0.0.0.0");
    }
}
