//! SQL for accounts and refresh-token families.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use storekeeper_kit::{Role, db};
use uuid::Uuid;

use crate::validate::NewAccount;

/// A user as the API shows it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct User {
    /// User id.
    pub(crate) id: Uuid,
    /// Normalized email.
    pub(crate) email: String,
    /// Display name.
    pub(crate) name: String,
    /// `customer` or `admin`.
    pub(crate) role: Role,
    /// When the account was created.
    pub(crate) created_at: DateTime<Utc>,
}

/// What login needs to know about an account.
#[derive(sqlx::FromRow)]
pub(crate) struct Credentials {
    pub(crate) id: Uuid,
    /// Role for the token.
    pub(crate) role: Role,
    /// Argon2id PHC string.
    pub(crate) password_hash: String,
}

// --- accounts --------------------------------------------------------------

/// Inserts a new account; `None` when the email is taken.
pub(crate) async fn insert_user(
    pool: &PgPool,
    account: &NewAccount,
    password_hash: &str,
    role: Role,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO users (id, email, password_hash, name, role)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (email) DO NOTHING
         RETURNING id, email, name, role, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(&account.email)
    .bind(password_hash)
    .bind(&account.name)
    .bind(role)
    .fetch_optional(pool)
    .await
}

/// Login credentials by normalized email.
pub(crate) async fn credentials(
    pool: &PgPool,
    email: &str,
) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as("SELECT id, role, password_hash FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub(crate) async fn find_user(pool: &PgPool, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as("SELECT id, email, name, role, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Replaces a password hash (parameter upgrades, admin bootstrap).
pub(crate) async fn set_password_hash(
    pool: &PgPool,
    id: Uuid,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(pool)
        .await
        .map(|_| ())
}

pub(crate) async fn make_admin(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET role = 'admin', updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Creates the admin account; an account that appeared meanwhile (another
/// replica starting) is made admin instead.
pub(crate) async fn insert_admin(
    pool: &PgPool,
    email: &str,
    password_hash: &str,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO users (id, email, password_hash, name, role)
         VALUES ($1, $2, $3, 'Administrator', 'admin')
         ON CONFLICT (email) DO UPDATE SET role = 'admin', updated_at = now()
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(password_hash)
    .fetch_one(pool)
    .await
}

/// Sets a new password hash and ends every login of the user, then starts
/// one new family whose first token has `digest`: all in one transaction,
/// so no session outlives the old password.
pub(crate) async fn replace_password(
    pool: &PgPool,
    id: Uuid,
    hash: &str,
    digest: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut tx = db::begin(pool).await?;
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE refresh_families SET revoked_at = now(), revoked_reason = 'password-change'
         WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let family = Uuid::now_v7();
    sqlx::query("INSERT INTO refresh_families (id, user_id) VALUES ($1, $2)")
        .bind(family)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    insert_token(&mut tx, digest, family, expires_at).await?;
    tx.commit().await
}

// --- refresh-token families ------------------------------------------------

/// A presented refresh token, its family and its owner.
#[derive(sqlx::FromRow)]
pub(crate) struct Presented {
    pub(crate) family_id: Uuid,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) rotated_at: Option<DateTime<Utc>>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
    pub(crate) user_id: Uuid,
    /// The owner's current role (read fresh, so a promotion shows up on refresh).
    pub(crate) role: Role,
    /// Digest of the token this one was rotated into.
    pub(crate) successor_hash: Option<Vec<u8>>,
    /// That successor, sealed with a key derived from this token.
    pub(crate) successor_sealed: Option<Vec<u8>>,
}

/// Starts a new family for `user_id` whose first token has `digest`.
pub(crate) async fn start_family(
    pool: &PgPool,
    user_id: Uuid,
    digest: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let family = Uuid::now_v7();
    let mut tx = db::begin(pool).await?;
    // Keep the tables bounded: a family whose tokens have all expired, or
    // that was revoked over a week ago, can go (its tokens then count as
    // unknown, which is refused just the same).
    sqlx::query(
        "DELETE FROM refresh_families f
         WHERE f.user_id = $1
           AND (f.revoked_at < now() - interval '7 days'
                OR NOT EXISTS (SELECT 1 FROM refresh_tokens t
                               WHERE t.family_id = f.id AND t.expires_at > now()))",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO refresh_families (id, user_id) VALUES ($1, $2)")
        .bind(family)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    insert_token(&mut tx, digest, family, expires_at).await?;
    tx.commit().await
}

/// Adds a token to a family.
pub(crate) async fn insert_token(
    conn: &mut PgConnection,
    digest: &[u8],
    family: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(digest)
    .bind(family)
    .bind(expires_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The token with `digest`, its family, owner and successor, locked for
/// rotation.
pub(crate) async fn lock_presented(
    conn: &mut PgConnection,
    digest: &[u8],
) -> Result<Option<Presented>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.family_id, t.expires_at, t.rotated_at, f.revoked_at, f.user_id, u.role,
                t.successor_hash, t.successor_sealed
         FROM refresh_tokens t
         JOIN refresh_families f ON f.id = t.family_id
         JOIN users u ON u.id = f.user_id
         WHERE t.token_hash = $1
         FOR UPDATE OF t, f",
    )
    .bind(digest)
    .fetch_optional(conn)
    .await
}

/// Whether the rotated token with `digest` was rotated no longer than
/// `grace` ago (database clock) into a successor that is still the
/// family's live token. A statement of its own, after the lock: it must
/// see the successor a concurrent rotation just committed, which the
/// locking statement's snapshot may predate.
pub(crate) async fn successor_live_within(
    conn: &mut PgConnection,
    digest: &[u8],
    grace: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT t.rotated_at > now() - make_interval(secs => $2)
                AND s.rotated_at IS NULL AND s.expires_at > now()
         FROM refresh_tokens t
         JOIN refresh_tokens s ON s.token_hash = t.successor_hash
         WHERE t.token_hash = $1",
    )
    .bind(digest)
    .bind(grace.as_secs_f64())
    .fetch_optional(conn)
    .await
    .map(|live: Option<Option<bool>>| live.flatten().unwrap_or(false))
}

/// Marks a token rotated into the token with `successor` digest, keeping
/// the sealed successor for the grace window.
pub(crate) async fn mark_rotated(
    conn: &mut PgConnection,
    digest: &[u8],
    successor: &[u8],
    sealed: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens
         SET rotated_at = now(), successor_hash = $2, successor_sealed = $3
         WHERE token_hash = $1",
    )
    .bind(digest)
    .bind(successor)
    .bind(sealed)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The family of the token with `digest`, if there is one.
pub(crate) async fn family_of(
    conn: &mut PgConnection,
    digest: &[u8],
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(digest)
        .fetch_optional(conn)
        .await
}

/// Revokes every token of a family (once: the first reason stays).
pub(crate) async fn revoke_family(
    conn: &mut PgConnection,
    family: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(reason)
    .execute(conn)
    .await
    .map(|_| ())
}
