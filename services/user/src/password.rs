//! Password hashing with Argon2id at OWASP's recommended minimum
//! (m = 19 MiB, t = 2, p = 1).
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on the
//! blocking pool behind a small semaphore: a burst of logins queues instead
//! of multiplying 19 MiB allocations. Unknown emails are verified against a
//! dummy hash so "no such account" takes as long as "wrong password".

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

/// Memory cost in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19_456;
/// Iterations.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;
/// Hashes computed at once.
const CONCURRENT_HASHES: usize = 4;

/// Why hashing failed (never the password's fault: these are internal).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The Argon2 implementation refused.
    #[error("argon2: {0}")]
    Argon2(String),
    /// The blocking task died.
    #[error("hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The semaphore was closed (shutdown).
    #[error("hasher is shutting down")]
    Closed,
}

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
}

fn argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|err| HashError::Argon2(err.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| HashError::Argon2(err.to_string()))
}

fn verify_blocking(password: &str, hash: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(hash).map_err(|err| HashError::Argon2(err.to_string()))?;
    match argon2()?.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(err) => Err(HashError::Argon2(err.to_string())),
    }
}

impl Passwords {
    /// Prepares the hasher (computes the dummy hash once).
    pub async fn new() -> Result<Self, HashError> {
        let dummy_hash: Arc<str> =
            tokio::task::spawn_blocking(|| hash_blocking("dummy password for unknown accounts"))
                .await??
                .into();
        Ok(Self {
            permits: Arc::new(Semaphore::new(CONCURRENT_HASHES)),
            dummy_hash,
        })
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Closed)?;
        tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
    }

    /// Checks a password against a stored hash; `None` (unknown account)
    /// checks against the dummy hash and always fails, taking as long.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Closed)?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches =
            tokio::task::spawn_blocking(move || verify_blocking(&password, &hash)).await??;
        Ok(known && matches)
    }

    /// True when a stored hash uses weaker or different parameters than the
    /// current ones, so a successful login should re-hash it.
    pub fn needs_rehash(hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return true;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return true;
        };
        parsed.algorithm != Algorithm::Argon2id.ident()
            || params.m_cost() != MEMORY_KIB
            || params.t_cost() != ITERATIONS
            || params.p_cost() != PARALLELISM
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_owasp_parameters() {
        let passwords = Passwords::new().await.unwrap();
        let hash = passwords.hash("correct-horse-7".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("correct-horse-7"));
        assert!(!Passwords::needs_rehash(&hash));
        assert!(
            passwords
                .verify("correct-horse-7".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("wrong-horse-7".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("correct-horse-7".into(), None)
                .await
                .unwrap()
        );
    }

    #[test]
    fn weaker_hashes_need_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert!(Passwords::needs_rehash(&weak));
        assert!(Passwords::needs_rehash("not a hash"));
    }
}
