//! Who the shopper is, network-wise, for user-service's per-IP login limit.
//!
//! Logins reach user-service from the storefront, so without help every
//! shopper would share the storefront's address and twenty wrong passwords
//! anywhere would lock everyone out. The storefront acts as the reverse proxy
//! it is: it passes on `X-Forwarded-For` with the address it saw appended,
//! and user-service (with `TRUSTED_PROXY_HOPS` counting the storefront and
//! any proxy in front of it) picks the shopper's address from that list.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};

/// Longest forwarded chain passed on; anything longer is not a real chain.
const MAX_CHAIN: usize = 512;

/// The `X-Forwarded-For` value to send upstream, if there is anything to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedFor(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ForwardedFor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let earlier: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(Self(chain(&earlier, peer.as_deref())))
    }
}

/// Joins the earlier hops and the peer; drops a chain with odd characters.
fn chain(earlier: &[&str], peer: Option<&str>) -> Option<String> {
    let mut hops: Vec<&str> = earlier
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect();
    let plausible = hops.iter().all(|hop| {
        hop.bytes()
            .all(|b| b.is_ascii_hexdigit() || b".:[]".contains(&b))
    });
    if !plausible {
        hops.clear();
    }
    hops.extend(peer);
    let joined = hops.join(", ");
    (!joined.is_empty() && joined.len() <= MAX_CHAIN).then_some(joined)
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[test]
    fn the_peer_is_appended_to_earlier_hops() {
        assert_eq!(chain(&[], Some("10.0.0.9")).as_deref(), Some("10.0.0.9"));
        assert_eq!(
            chain(&["203.0.113.7, 10.1.1.1"], Some("10.0.0.9")).as_deref(),
            Some("203.0.113.7, 10.1.1.1, 10.0.0.9")
        );
        assert_eq!(chain(&[], None), None);
    }

    #[test]
    fn a_garbage_chain_is_dropped_but_the_peer_kept() {
        assert_eq!(
            chain(&["<script>, 1.2.3.4"], Some("10.0.0.9")).as_deref(),
            Some("10.0.0.9")
        );
    }
}
