//! Refresh tokens: random opaque values, stored only as SHA-256 digests in
//! PostgreSQL (the source of truth), grouped in families.
//!
//! A login starts a family. Each refresh marks the presented token rotated
//! and issues the next one in the same family. Presenting a token that was
//! already rotated means two parties hold the family (a thief, or a replay),
//! so the whole family is revoked and both must log in again (OAuth 2.0
//! Security BCP, "refresh token rotation"). Logout revokes the family too.
//!
//! Except within a short grace window after a rotation (10 s by default,
//! `Settings::refresh_reuse_grace`): two tabs, or a status poll racing a
//! page load, present the same token at nearly the same time, and the later
//! one gets the *same* successor the first one got, so neither is logged
//! out. To hand it out again the successor is stored sealed (XOR) with a
//! key derived from the presented token, which the database never holds;
//! only its presenter can unseal it. Only a successor that has not itself
//! been rotated is handed out; anything else is reuse.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use storekeeper_kit::{Role, db};
use uuid::Uuid;

use crate::store;

/// Random bytes in a refresh token.
const TOKEN_BYTES: usize = 32;

/// Why a refresh was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RotateError {
    /// Unknown, malformed, revoked or expired.
    #[error("the refresh token is invalid or expired")]
    Invalid,
    /// Already rotated: the family has now been revoked.
    #[error("the refresh token was already used; all sessions of this login were signed out")]
    Reused,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A new token and the user it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Rotated {
    /// The next refresh token (give it to the client, then forget it).
    pub(crate) token: String,
    /// True when this is the successor an earlier, concurrent rotation of
    /// the same token issued (the grace window).
    pub(crate) again: bool,
    /// The token's owner.
    pub(crate) user_id: Uuid,
    /// The owner's current role (read fresh, so a promotion shows up on refresh).
    pub(crate) role: Role,
}

/// A fresh token: its raw bytes, its text and its stored digest.
fn new_token() -> ([u8; TOKEN_BYTES], String, Vec<u8>) {
    let mut bytes = [0_u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let digest = Sha256::digest(token.as_bytes()).to_vec();
    (bytes, token, digest)
}

/// Seals (and, applied again, unseals) a successor's raw bytes with a key
/// only the holder of the presented token can compute: the stored digest
/// of a token is SHA-256 of the token alone, this key hashes it with a
/// label first, so one cannot be derived from the other.
fn seal(presented: &str, successor: &[u8]) -> Vec<u8> {
    let key = Sha256::new()
        .chain_update(b"storekeeper refresh successor v1\0")
        .chain_update(presented.as_bytes())
        .finalize();
    successor
        .iter()
        .zip(key)
        .map(|(byte, k)| byte ^ k)
        .collect()
}

/// The stored digest of a presented token; `None` when it cannot be one of
/// ours (saves a database round trip on garbage).
fn digest_of(token: &str) -> Option<Vec<u8>> {
    let decoded = URL_SAFE_NO_PAD.decode(token).ok()?;
    (decoded.len() == TOKEN_BYTES).then(|| Sha256::digest(token.as_bytes()).to_vec())
}

fn expiry(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// Starts a new family for `user_id` and returns its first token.
pub(crate) async fn issue(
    pool: &PgPool,
    user_id: Uuid,
    ttl: Duration,
) -> Result<String, sqlx::Error> {
    let (_, token, digest) = new_token();
    store::start_family(pool, user_id, &digest, expiry(ttl)).await?;
    Ok(token)
}

/// Replaces a user's password hash, revokes every family (every login) of
/// theirs and returns the first token of a new one, for the caller.
pub(crate) async fn restart_after_password_change(
    pool: &PgPool,
    user_id: Uuid,
    hash: &str,
    ttl: Duration,
) -> Result<String, sqlx::Error> {
    let (_, token, digest) = new_token();
    store::replace_password(pool, user_id, hash, &digest, expiry(ttl)).await?;
    Ok(token)
}

/// Exchanges `token` for the next one in its family; within `grace` of an
/// earlier rotation of `token`, answers that rotation's successor again.
pub(crate) async fn rotate(
    pool: &PgPool,
    token: &str,
    ttl: Duration,
    grace: Duration,
) -> Result<Rotated, RotateError> {
    let digest = digest_of(token).ok_or(RotateError::Invalid)?;
    let mut tx = db::begin(pool).await?;
    let presented = store::lock_presented(&mut tx, &digest)
        .await?
        .ok_or(RotateError::Invalid)?;
    if presented.revoked_at.is_some() || presented.expires_at <= Utc::now() {
        return Err(RotateError::Invalid);
    }
    if presented.rotated_at.is_some() {
        let live = store::successor_live_within(&mut tx, &digest, grace).await?;
        if live && let Some(successor) = successor_again(token, &presented) {
            tx.commit().await?;
            tracing::info!(
                user_id = %presented.user_id,
                family_id = %presented.family_id,
                "refresh token presented again within the grace window; same successor"
            );
            return Ok(Rotated {
                token: successor,
                again: true,
                user_id: presented.user_id,
                role: presented.role,
            });
        }
        store::revoke_family(&mut tx, presented.family_id, "reuse").await?;
        tx.commit().await?;
        tracing::warn!(
            user_id = %presented.user_id,
            family_id = %presented.family_id,
            "refresh token reuse detected; family revoked"
        );
        return Err(RotateError::Reused);
    }
    let (next_bytes, next, next_digest) = new_token();
    store::mark_rotated(&mut tx, &digest, &next_digest, &seal(token, &next_bytes)).await?;
    store::insert_token(&mut tx, &next_digest, presented.family_id, expiry(ttl)).await?;
    tx.commit().await?;
    Ok(Rotated {
        token: next,
        again: false,
        user_id: presented.user_id,
        role: presented.role,
    })
}

/// The successor of an already rotated `token`, unsealed and checked
/// against its digest.
fn successor_again(token: &str, presented: &store::Presented) -> Option<String> {
    let sealed = presented.successor_sealed.as_deref()?;
    let expected = presented.successor_hash.as_deref()?;
    let successor = URL_SAFE_NO_PAD.encode(seal(token, sealed));
    (Sha256::digest(successor.as_bytes())[..] == *expected).then_some(successor)
}

/// Logout: revokes the family `token` belongs to. Unknown tokens are not an
/// error (logging out twice is fine).
pub(crate) async fn revoke(pool: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    let Some(digest) = digest_of(token) else {
        return Ok(());
    };
    let mut tx = db::begin(pool).await?;
    if let Some(family) = store::family_of(&mut tx, &digest).await? {
        store::revoke_family(&mut tx, family, "logout").await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_digests_match() {
        let (_, a, digest_a) = new_token();
        let (_, b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(digest_of(&a), Some(digest_a));
        assert_eq!(digest_of("short"), None);
        assert_eq!(digest_of("!!!not base64!!!"), None);
    }

    #[test]
    fn a_sealed_successor_opens_only_with_the_presented_token() {
        let (_, presented, _) = new_token();
        let (bytes, _, _) = new_token();
        let sealed = seal(&presented, &bytes);
        assert_ne!(sealed, bytes);
        assert_eq!(seal(&presented, &sealed), bytes);
        let (_, other, _) = new_token();
        assert_ne!(seal(&other, &sealed), bytes);
    }
}
