//! Idempotency keys with Stripe's semantics, for requests a retry must not
//! apply twice (placing an order, refunding a payment).
//!
//! The client sends an `Idempotency-Key` header ([`IdempotencyKey`], 1 to
//! [`KEY_MAX`] printable ASCII characters; 400 when missing or malformed).
//! The first request with a key claims it ([`KeyTable::claim`], a row keyed
//! by user and key holding the [`request_hash`]) in the transaction that
//! does the work, and stores its answer there
//! ([`KeyTable::store_response`]); a request whose answer is known before
//! its writes claims the key with its answer in the statement that does
//! them ([`KeyTable::claim_from`]). A later request with the same key and
//! request replays that answer byte for byte ([`StoredKey::replay`],
//! [`Answer`] with `Idempotent-Replayed: true`); another request under the
//! key is refused ([`KeyReused`], 422 `idempotency-key-reused`). Concurrent
//! requests with one key queue on the row's primary key and then replay the
//! winner's answer. Keys are kept [`RETENTION_HOURS`] and then pruned
//! ([`KeyTable::prune_hourly`]).
//!
//! One place for these rules, so every service that takes a key answers
//! alike.

mod answer;
mod key;
mod table;

use sha2::{Digest, Sha256};

pub use answer::{Answer, REPLAYED_HEADER};
pub use key::{IdempotencyKey, KEY_HEADER, KEY_MAX, KeyError};
pub use table::{AnsweredClaim, KeyReused, KeyTable, StoredKey};

/// How long keys are kept: the API promises at least 24 hours.
pub const RETENTION_HOURS: i32 = 48;

/// Hex SHA-256 of the request in canonical form (object keys sorted, no
/// whitespace), so the same request written differently is still the same.
pub fn request_hash(request: &serde_json::Value) -> String {
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    Sha256::digest(&canonical)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_ignores_key_order_and_whitespace() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": {"c": null}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":{"c":null},"a":1}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"b":{"c":2},"a":1}"#).unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&c));
        assert_eq!(request_hash(&a).len(), 64);
    }
}
