//! Tokens whose signature this verifier has checked already.
//!
//! A shopper's pages send the same access token to order-service and
//! payment-service many times in its fifteen minutes, and checking its
//! Ed25519 signature (about 50 µs) was the largest single cost in
//! order-service's profile under load (docs/performance.md). A token is
//! looked up by its exact text, so only a token identical to one that
//! passed every check is answered from here; its expiry is checked again
//! on every use. The table is bounded: when full, expired entries go
//! first, and if none has expired it starts over empty.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use super::{Claims, TokenError};

/// Tokens held at most: a busy replica's active shoppers, about 0.5 MiB.
pub(super) const CAPACITY: usize = 1024;

/// Verified tokens and their claims.
#[derive(Debug)]
pub(super) struct Verified {
    tokens: Mutex<HashMap<Box<str>, Claims>>,
    capacity: usize,
    /// Seconds a token stays valid past its `exp` (the verifier's leeway).
    leeway: i64,
}

impl Verified {
    pub(super) fn new(capacity: usize, leeway: u64) -> Self {
        Self {
            tokens: Mutex::default(),
            capacity,
            leeway: i64::try_from(leeway).unwrap_or(i64::MAX),
        }
    }

    /// The claims of `token` if it was verified before: refused as expired
    /// once `now` (seconds since the epoch) is past its expiry and leeway.
    /// `None` when it has not been verified here.
    pub(super) fn get(&self, token: &str, now: i64) -> Option<Result<Claims, TokenError>> {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let claims = tokens.get(token)?;
        if self.expired(claims, now) {
            tokens.remove(token);
            return Some(Err(TokenError::Expired));
        }
        Some(Ok(claims.clone()))
    }

    /// Remembers that `token` passed every check with `claims`.
    pub(super) fn insert(&self, token: &str, claims: &Claims, now: i64) {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= self.capacity {
            tokens.retain(|_, claims| !self.expired(claims, now));
            if tokens.len() >= self.capacity {
                tokens.clear();
            }
        }
        tokens.insert(token.into(), claims.clone());
    }

    fn expired(&self, claims: &Claims, now: i64) -> bool {
        claims.exp.saturating_add(self.leeway) < now
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::auth::Role;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: Uuid::new_v4(),
            role: Role::Customer,
            exp,
            iat: exp - 900,
            iss: None,
            aud: None,
        }
    }

    #[test]
    fn only_the_same_text_is_answered_and_expiry_is_checked_again() {
        let verified = Verified::new(8, 30);
        let valid = claims(1_000);
        verified.insert("a.b.c", &valid, 100);
        assert_eq!(verified.get("a.b.c", 100), Some(Ok(valid.clone())));
        assert_eq!(verified.get("a.b.d", 100), None);
        assert_eq!(verified.get("a.b.c", 1_030), Some(Ok(valid)), "leeway");
        assert_eq!(verified.get("a.b.c", 1_031), Some(Err(TokenError::Expired)));
        assert_eq!(
            verified.get("a.b.c", 100),
            None,
            "an expired token is forgotten"
        );
    }

    #[test]
    fn a_full_table_drops_expired_tokens_first_then_starts_over() {
        let verified = Verified::new(3, 0);
        verified.insert("old", &claims(50), 10);
        verified.insert("one", &claims(1_000), 10);
        verified.insert("two", &claims(1_000), 10);
        verified.insert("three", &claims(1_000), 100);
        assert_eq!(verified.len(), 3);
        assert_eq!(verified.get("old", 10), None);
        assert!(verified.get("one", 100).is_some());
        verified.insert("four", &claims(1_000), 100);
        assert_eq!(verified.len(), 1);
        assert!(verified.get("four", 100).is_some());
    }
}
