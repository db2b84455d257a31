//! The `users` table: create, look up, re-hash, and the admin bootstrap.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use storekeeper_kit::{ApiError, ResultExt, Role};
use uuid::Uuid;

use crate::{
    config::AdminBootstrap,
    password::Passwords,
    validate::{NewAccount, check_email, normalize_email},
};

/// A user as the API shows it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// Normalized email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `customer` or `admin`.
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// What login needs to know about an account.
#[derive(sqlx::FromRow)]
pub struct Credentials {
    /// User id.
    pub id: Uuid,
    /// Role for the token.
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// Inserts a new account; a taken email is a 409.
pub async fn insert(
    pool: &PgPool,
    account: &NewAccount,
    password_hash: &str,
    role: Role,
) -> Result<User, ApiError> {
    sqlx::query_as(
        "INSERT INTO users (id, email, password_hash, name, role)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, email, name, role, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(&account.email)
    .bind(password_hash)
    .bind(&account.name)
    .bind(role)
    .fetch_one(pool)
    .await
    .on_constraint("users_email_key", |_| {
        ApiError::conflict("an account with this email already exists")
    })
}

/// Looks up login credentials by normalized email.
pub async fn credentials(pool: &PgPool, email: &str) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as("SELECT id, role, password_hash FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(pool)
        .await
}

/// Looks up a user by id.
pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as("SELECT id, email, name, role, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Replaces a password hash (parameter upgrades, admin bootstrap).
pub async fn set_password_hash(pool: &PgPool, id: Uuid, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Why the admin account could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// `ADMIN_EMAIL` is not an email address.
    #[error("invalid ADMIN_EMAIL: {0}")]
    Email(String),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] crate::password::HashError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Makes sure the configured admin exists, has the admin role and the
/// configured password. Safe to run at every start, and from several
/// replicas at once.
pub async fn ensure_admin(
    pool: &PgPool,
    passwords: &Passwords,
    admin: &AdminBootstrap,
) -> Result<Uuid, BootstrapError> {
    let email = normalize_email(&admin.email);
    check_email(&email).map_err(BootstrapError::Email)?;
    if let Some(existing) = credentials(pool, &email).await? {
        let password_ok = passwords
            .verify(admin.password.clone(), Some(existing.password_hash.clone()))
            .await?;
        if !password_ok || Passwords::needs_rehash(&existing.password_hash) {
            let hash = passwords.hash(admin.password.clone()).await?;
            set_password_hash(pool, existing.id, &hash).await?;
        }
        if existing.role != Role::Admin {
            sqlx::query("UPDATE users SET role = 'admin', updated_at = now() WHERE id = $1")
                .bind(existing.id)
                .execute(pool)
                .await?;
        }
        tracing::info!(%email, "admin account ready");
        return Ok(existing.id);
    }
    let hash = passwords.hash(admin.password.clone()).await?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (id, email, password_hash, name, role)
         VALUES ($1, $2, $3, 'Administrator', 'admin')
         ON CONFLICT (email) DO UPDATE SET role = 'admin', updated_at = now()
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(&email)
    .bind(&hash)
    .fetch_one(pool)
    .await?;
    tracing::info!(%email, "admin account created");
    Ok(id)
}
