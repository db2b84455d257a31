//! Accounts: registration and the admin bootstrap.

use sqlx::PgPool;
use storekeeper_kit::{FieldError, Role};
use uuid::Uuid;

use crate::{
    config::AdminBootstrap,
    password::{HashError, Passwords, Purpose},
    store::{self, User},
    validate::{NewAccount, check_email, check_registration, normalize_email},
};

/// Why an account was not registered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegisterError {
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Checks a registration, collecting every field's problem at once; cheap,
/// so it runs before the throttle and the hashing.
pub(crate) fn check(email: &str, password: &str, name: &str) -> Result<NewAccount, RegisterError> {
    check_registration(email, password, name).map_err(RegisterError::Invalid)
}

/// Creates a customer account from a checked registration.
pub(crate) async fn create(
    pool: &PgPool,
    passwords: &Passwords,
    account: &NewAccount,
    password: String,
) -> Result<User, RegisterError> {
    let hash = passwords.hash(Purpose::Account, password).await?;
    store::insert_user(pool, account, &hash, Role::Customer)
        .await?
        .ok_or(RegisterError::EmailTaken)
}

/// Why the admin account could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// `ADMIN_EMAIL` is not an email address.
    #[error("invalid ADMIN_EMAIL: {0}")]
    Email(String),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
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
    if let Some(existing) = store::credentials(pool, &email).await? {
        let password_ok = passwords
            .verify(
                Purpose::Account,
                admin.password.clone(),
                Some(existing.password_hash.clone()),
            )
            .await?;
        if !password_ok || Passwords::needs_rehash(&existing.password_hash) {
            let hash = passwords
                .hash(Purpose::Account, admin.password.clone())
                .await?;
            store::set_password_hash(pool, existing.id, &hash).await?;
        }
        if existing.role != Role::Admin {
            store::make_admin(pool, existing.id).await?;
        }
        tracing::info!(%email, "admin account ready");
        return Ok(existing.id);
    }
    let hash = passwords
        .hash(Purpose::Account, admin.password.clone())
        .await?;
    let id = store::insert_admin(pool, &email, &hash).await?;
    tracing::info!(%email, "admin account created");
    Ok(id)
}
