//! Password hashing with Argon2id at OWASP's recommended minimum
//! (m = 19 MiB, t = 2, p = 1).
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on a few
//! dedicated threads (at most one per core, at most four) fed through a
//! semaphore, and each thread keeps its 19 MiB of Argon2 memory for good.
//! Measured under a login load: on Tokio's blocking pool with Argon2
//! allocating per hash, RSS reached 900 MiB (the freed blocks were split by
//! small allocations, so every hash touched fresh pages); with fixed threads
//! and reused memory it stays at a few tens of MiB. Unknown emails are
//! verified against a dummy hash so "no such account" takes as long as
//! "wrong password".

use std::sync::{Arc, Mutex, PoisonError, mpsc};

use std::cell::RefCell;

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

// The current Argon2id parameters: OWASP's minimum. A stored hash with
// others is re-hashed at the next login.
const MEMORY_KIB: u32 = 19_456;
const ITERATIONS: u32 = 2;
const PARALLELISM: u32 = 1;
/// What unknown accounts are verified against: current parameters, random
/// salt and output, matching no password. Verifying costs exactly what a
/// real check costs, and nothing is computed at start (no 19 MiB at idle).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Sm75sFvas2olRXfdQkSYAA$WRb8dQ6Um62bEtRaZVUrv5LCDVk1dAKvZTQlIaJcCSk";

/// Most hashing threads, whatever the core count.
const MAX_HASHERS: usize = 4;

/// Why hashing failed (never the password's fault: these are internal).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The Argon2 implementation refused.
    #[error("argon2: {0}")]
    Argon2(String),
    /// A hashing thread could not be started.
    #[error("cannot start a hashing thread: {0}")]
    Spawn(#[from] std::io::Error),
    /// The hashing threads are gone (shutdown).
    #[error("hasher is shutting down")]
    Closed,
}

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords. Cheap to clone; the threads stop when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
}

/// Starts `count` threads taking jobs from one queue.
fn start_threads(count: usize) -> Result<mpsc::Sender<Job>, HashError> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for index in 0..count {
        let receiver = Arc::clone(&receiver);
        std::thread::Builder::new()
            .name(format!("argon2-{index}"))
            .spawn(move || {
                loop {
                    let next = receiver
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    match next {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                }
            })?;
    }
    Ok(sender)
}

thread_local! {
    /// This thread's Argon2 working memory, kept for every hash it computes:
    /// handing 19 MiB back to the allocator after each hash let small
    /// allocations split it, and RSS grew by the next 19 MiB each time.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

fn phc_error(err: impl std::fmt::Display) -> HashError {
    HashError::Argon2(err.to_string())
}

fn current_argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).map_err(phc_error)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Runs Argon2 into `out` using this thread's reusable memory.
fn compute(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), HashError> {
    let blocks = argon2.params().block_count();
    MEMORY
        .with(|cell| {
            let mut memory = cell.borrow_mut();
            if memory.len() < blocks {
                memory.resize(blocks, Block::default());
            }
            argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
        })
        .map_err(phc_error)
}

fn hash_blocking(password: &str) -> Result<String, HashError> {
    let argon2 = current_argon2()?;
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buffer = [0_u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buffer)
        .map_err(phc_error)?;
    let mut out = [0_u8; Params::DEFAULT_OUTPUT_LEN];
    compute(&argon2, password.as_bytes(), salt_bytes, &mut out)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(phc_error)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(phc_error)?),
    };
    Ok(hash.to_string())
}

fn verify_blocking(password: &str, hash: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(hash).map_err(phc_error)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(HashError::Argon2(
            "stored hash has no salt or output".to_owned(),
        ));
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(phc_error)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(phc_error)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(phc_error)?;
    let argon2 = Argon2::new(algorithm, version, params);
    let mut salt_buffer = [0_u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buffer).map_err(phc_error)?;
    let mut out = vec![0_u8; expected.len()];
    compute(&argon2, password.as_bytes(), salt_bytes, &mut out)?;
    // `Output` compares in constant time.
    Ok(Output::new(&out).map_err(phc_error)? == expected)
}

impl Passwords {
    /// Starts the hashing threads.
    pub(crate) fn new() -> Result<Self, HashError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_HASHERS);
        Ok(Self {
            permits: Arc::new(Semaphore::new(threads)),
            jobs: start_threads(threads)?,
        })
    }

    /// Runs `work` on a hashing thread once one is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Closed)?;
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                // The caller may have gone (request timeout): nothing to tell.
                let _ = done.send(work());
            }))
            .map_err(|_| HashError::Closed)?;
        result.await.map_err(|_| HashError::Closed)
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub(crate) async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move || hash_blocking(&password)).await?
    }

    /// Checks a password against a stored hash; `None` (unknown account)
    /// checks against the dummy hash and always fails, taking as long.
    pub(crate) async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let matches = self
            .run(move || verify_blocking(&password, &hash))
            .await??;
        Ok(known && matches)
    }

    /// True when a stored hash uses weaker or different parameters than the
    /// current ones, so a successful login should re-hash it.
    pub(crate) fn needs_rehash(hash: &str) -> bool {
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
        let passwords = Passwords::new().unwrap();
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
    fn our_hashes_interoperate_with_the_argon2_crate() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let ours = hash_blocking("correct-horse-7").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            current_argon2()
                .unwrap()
                .verify_password(b"correct-horse-7", &parsed)
                .is_ok()
        );
        let theirs = current_argon2()
            .unwrap()
            .hash_password(b"correct-horse-7", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_blocking("correct-horse-7", &theirs).unwrap());
        assert!(!verify_blocking("correct-horse-8", &theirs).unwrap());
        // The same thread's memory serves a smaller and then a larger cost.
        let small = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert!(verify_blocking("pw", &small).unwrap());
        assert!(verify_blocking("correct-horse-7", &ours).unwrap());
        assert!(verify_blocking("pw", "$argon2id$v=19$m=19456,t=2,p=1$bm9zYWx0").is_err());
    }

    #[test]
    fn the_dummy_hash_has_the_current_parameters() {
        assert!(!Passwords::needs_rehash(DUMMY_HASH));
        assert!(!verify_blocking("dummy", DUMMY_HASH).unwrap());
    }

    #[test]
    fn weaker_hashes_need_rehash() {
        use argon2::PasswordHasher as _;
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
