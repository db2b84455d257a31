//! Password hashing with Argon2id at OWASP's recommended minimum
//! (m = 19 MiB, t = 2, p = 1).
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on a few
//! dedicated threads (at most one per core, at most four) fed through a
//! semaphore. Each hash borrows its 19 MiB of Argon2 memory from a pool
//! ([`Memory`]): jobs following each other in a busy queue reuse it, and
//! the last job to leave the queue hands all of it back to the kernel. So
//! an idle service holds none, and a flood holds at most one buffer per
//! hashing thread.
//!
//! The queue in front of the threads is bounded per [`Purpose`]: a job that
//! finds its purpose's places all taken is refused at once
//! ([`HashError::Busy`], a 503 with `Retry-After`) rather than waiting
//! behind a flood until the request times out. Logins have places of their
//! own, so a registration flood fills only the account places and a login
//! waits behind at most that many jobs.
//! Measured under a login load: on Tokio's blocking pool with Argon2
//! allocating per hash, RSS reached 900 MiB (the freed blocks were split by
//! small allocations, so every hash touched fresh pages); with fixed threads
//! each keeping its memory for good it stayed at a few tens of MiB, but an
//! idle service kept 19 MiB per thread that had ever hashed (28 MiB idle
//! after the admin bootstrap's check). Unknown emails are
//! verified against a dummy hash so "no such account" takes as long as
//! "wrong password".

use std::sync::{Arc, Mutex, PoisonError, mpsc};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, SaltString, rand_core::OsRng},
};
use prometheus_client::metrics::{counter::Counter, family::Family};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::JobLabels;

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

/// glibc's malloc gives an allocation a mapping of its own, unmapped when
/// freed, only above its mmap threshold, and it raises that threshold to
/// the size of each mapped block freed, up to 32 MiB on 64-bit
/// (`DEFAULT_MMAP_THRESHOLD_MAX`, mallopt(3)). A freed 19 MiB buffer would
/// make the next one come from the heap, where freeing returns nothing to
/// the kernel. Reserving just above the ceiling keeps every buffer a
/// mapping of its own; only the pages a hash writes become resident.
const OWN_MAPPING_BLOCKS: usize = 32 * 1024 * 1024 / Block::SIZE + 1;

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
    /// Every place in the queue for this purpose is taken; retry shortly.
    #[error("too many passwords are being checked right now")]
    Busy,
}

/// What a password job is for: each purpose has its own places in the
/// queue, so a flood of one kind cannot starve the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Checking a password at login (and upgrading its stored hash).
    Login,
    /// Hashing a chosen password: registration, password change, and the
    /// admin bootstrap.
    Account,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Account => "account",
        }
    }
}

/// How many password jobs of each [`Purpose`] may be running or waiting at
/// once; beyond that a job is refused with [`HashError::Busy`] instead of
/// queueing without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashQueue {
    /// Places for logins (32: about a second of work on one core).
    pub login: usize,
    /// Places for registrations and password changes (8).
    pub account: usize,
}

impl Default for HashQueue {
    fn default() -> Self {
        Self {
            login: 32,
            account: 8,
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Argon2 working memory, lent to one hash at a time: a buffer handed back
/// waits for the next job, until the queue empties and [`Memory::release`]
/// frees them all.
#[derive(Debug, Default)]
struct Memory {
    idle: Mutex<Vec<Vec<Block>>>,
}

impl Memory {
    /// A buffer of at least `blocks` blocks: an idle one, else a new one.
    fn take(&self, blocks: usize) -> Vec<Block> {
        let mut buffer = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        if buffer.capacity() < blocks {
            buffer = Vec::with_capacity(blocks.max(OWN_MAPPING_BLOCKS));
        }
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        buffer
    }

    fn give_back(&self, buffer: Vec<Block>) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(buffer);
    }

    /// Frees every idle buffer (after letting go of the lock).
    fn release(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        drop(idle);
    }
}

/// The bounded queue in front of the hashing threads, and the memory its
/// jobs share.
#[derive(Debug)]
struct Queue {
    /// Places for logins.
    login: Arc<Semaphore>,
    /// Places for everything else.
    account: Arc<Semaphore>,
    sizes: HashQueue,
    memory: Memory,
}

impl Queue {
    fn new(sizes: HashQueue) -> Self {
        Self {
            login: Arc::new(Semaphore::new(sizes.login)),
            account: Arc::new(Semaphore::new(sizes.account)),
            sizes,
            memory: Memory::default(),
        }
    }

    /// A place for a `purpose` job, if one is free.
    fn admit(self: &Arc<Self>, purpose: Purpose) -> Option<Place> {
        let places = match purpose {
            Purpose::Login => &self.login,
            Purpose::Account => &self.account,
        };
        let permit = Arc::clone(places).try_acquire_owned().ok()?;
        Some(Place {
            permit: Some(permit),
            queue: Arc::clone(self),
        })
    }

    /// No job is running or waiting.
    fn is_empty(&self) -> bool {
        self.login.available_permits() == self.sizes.login
            && self.account.available_permits() == self.sizes.account
    }
}

/// A job's place in the queue, held until its work is done or its caller
/// gives up waiting. The last place let go hands the memory back.
struct Place {
    permit: Option<OwnedSemaphorePermit>,
    queue: Arc<Queue>,
}

impl Drop for Place {
    fn drop(&mut self) {
        drop(self.permit.take());
        if self.queue.is_empty() {
            self.queue.memory.release();
        }
    }
}

/// Hashes and verifies passwords. Cheap to clone; the threads stop when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Passwords {
    /// One per hashing thread: jobs wait here, in arrival order.
    permits: Arc<Semaphore>,
    queue: Arc<Queue>,
    jobs: mpsc::Sender<Job>,
    /// `user_password_jobs_total{purpose, outcome}`.
    counts: Family<JobLabels, Counter>,
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

fn phc_error(err: impl std::fmt::Display) -> HashError {
    HashError::Argon2(err.to_string())
}

fn current_argon2() -> Result<Argon2<'static>, HashError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).map_err(phc_error)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Runs Argon2 into `out` with a buffer borrowed from `memory`.
fn compute(
    argon2: &Argon2<'_>,
    memory: &Memory,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), HashError> {
    let blocks = argon2.params().block_count();
    let mut buffer = memory.take(blocks);
    let computed =
        argon2.hash_password_into_with_memory(password, salt, out, &mut buffer[..blocks]);
    memory.give_back(buffer);
    computed.map_err(phc_error)
}

fn hash_blocking(password: &str, memory: &Memory) -> Result<String, HashError> {
    let argon2 = current_argon2()?;
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buffer = [0_u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buffer)
        .map_err(phc_error)?;
    let mut out = [0_u8; Params::DEFAULT_OUTPUT_LEN];
    compute(&argon2, memory, password.as_bytes(), salt_bytes, &mut out)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(phc_error)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(phc_error)?),
    };
    Ok(hash.to_string())
}

fn verify_blocking(password: &str, hash: &str, memory: &Memory) -> Result<bool, HashError> {
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
    compute(&argon2, memory, password.as_bytes(), salt_bytes, &mut out)?;
    // `Output` compares in constant time.
    Ok(Output::new(&out).map_err(phc_error)? == expected)
}

impl Passwords {
    /// Starts the hashing threads; `queue` bounds the jobs of each purpose
    /// and `counts` counts them by purpose and outcome.
    pub(crate) fn new(
        queue: HashQueue,
        counts: Family<JobLabels, Counter>,
    ) -> Result<Self, HashError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_HASHERS);
        Ok(Self {
            permits: Arc::new(Semaphore::new(threads)),
            queue: Arc::new(Queue::new(queue)),
            jobs: start_threads(threads)?,
            counts,
        })
    }

    fn count(&self, purpose: Purpose, outcome: &'static str) {
        self.counts
            .get_or_create(&JobLabels {
                purpose: purpose.as_str(),
                outcome,
            })
            .inc();
    }

    /// Runs `work` on a hashing thread once one is free, if `purpose` has a
    /// place left in the queue.
    async fn run<T: Send + 'static>(
        &self,
        purpose: Purpose,
        work: impl FnOnce(&Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let Some(place) = self.queue.admit(purpose) else {
            self.count(purpose, "busy");
            return Err(HashError::Busy);
        };
        self.count(purpose, "admitted");
        let thread = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| HashError::Closed)?;
        let (done, result) = tokio::sync::oneshot::channel();
        let queue = Arc::clone(&self.queue);
        self.jobs
            .send(Box::new(move || {
                // Held until the work is done, even if the caller has gone
                // (request timeout): the thread is busy until then.
                let output = work(&queue.memory);
                drop((place, thread));
                // The caller may have gone: nothing to tell.
                let _ = done.send(output);
            }))
            .map_err(|_| HashError::Closed)?;
        result.await.map_err(|_| HashError::Closed)
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub(crate) async fn hash(
        &self,
        purpose: Purpose,
        password: String,
    ) -> Result<String, HashError> {
        self.run(purpose, move |memory| hash_blocking(&password, memory))
            .await?
    }

    /// Checks a password against a stored hash; `None` (unknown account)
    /// checks against the dummy hash and always fails, taking as long.
    pub(crate) async fn verify(
        &self,
        purpose: Purpose,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let matches = self
            .run(purpose, move |memory| {
                verify_blocking(&password, &hash, memory)
            })
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

    fn passwords(queue: HashQueue) -> Passwords {
        Passwords::new(queue, Family::default()).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_use_owasp_parameters() {
        let passwords = passwords(HashQueue::default());
        let hash = passwords
            .hash(Purpose::Account, "correct-horse-7".into())
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("correct-horse-7"));
        assert!(!Passwords::needs_rehash(&hash));
        assert!(
            passwords
                .verify(Purpose::Login, "correct-horse-7".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify(Purpose::Login, "wrong-horse-7".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify(Purpose::Login, "correct-horse-7".into(), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_logins_keep_their_places() {
        let passwords = passwords(HashQueue {
            login: 1,
            account: 1,
        });
        // Hold every hashing thread, so admitted jobs wait in the queue.
        let threads = passwords.permits.available_permits();
        let held = passwords
            .permits
            .acquire_many(u32::try_from(threads).unwrap())
            .await
            .unwrap();
        let waiting = {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .hash(Purpose::Account, "first in line 1".into())
                    .await
            })
        };
        while passwords.queue.account.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            passwords
                .hash(Purpose::Account, "second in line 2".into())
                .await,
            Err(HashError::Busy)
        ));
        let login = {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .verify(Purpose::Login, "a login 3".into(), None)
                    .await
            })
        };
        while passwords.queue.login.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            passwords
                .verify(Purpose::Login, "a login 4".into(), None)
                .await,
            Err(HashError::Busy)
        ));
        drop(held);
        assert!(waiting.await.unwrap().is_ok());
        assert!(!login.await.unwrap().unwrap());
        assert!(
            passwords
                .hash(Purpose::Account, "room again 5".into())
                .await
                .is_ok()
        );
    }

    #[test]
    fn our_hashes_interoperate_with_the_argon2_crate() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let memory = Memory::default();
        let ours = hash_blocking("correct-horse-7", &memory).unwrap();
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
        assert!(verify_blocking("correct-horse-7", &theirs, &memory).unwrap());
        assert!(!verify_blocking("correct-horse-8", &theirs, &memory).unwrap());
        // The same memory serves a smaller and then a larger cost.
        let small = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x10,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert!(verify_blocking("pw", &small, &memory).unwrap());
        assert!(verify_blocking("correct-horse-7", &ours, &memory).unwrap());
        assert!(verify_blocking("pw", "$argon2id$v=19$m=19456,t=2,p=1$bm9zYWx0", &memory).is_err());
    }

    fn idle_buffers(queue: &Queue) -> usize {
        queue.memory.idle.lock().unwrap().len()
    }

    #[test]
    fn memory_is_reused_while_jobs_wait_and_freed_when_the_queue_empties() {
        let queue = Arc::new(Queue::new(HashQueue {
            login: 2,
            account: 1,
        }));
        let first = queue.admit(Purpose::Login).unwrap();
        let second = queue.admit(Purpose::Account).unwrap();
        let buffer = queue.memory.take(64);
        assert!(buffer.capacity() >= OWN_MAPPING_BLOCKS);
        let address = buffer.as_ptr();
        queue.memory.give_back(buffer);
        drop(first);
        assert_eq!(idle_buffers(&queue), 1, "a job still waits: kept");
        let again = queue.memory.take(64);
        assert_eq!(again.as_ptr(), address, "the next job reuses the buffer");
        queue.memory.give_back(again);
        drop(second);
        assert_eq!(idle_buffers(&queue), 0, "the queue is empty: freed");
    }

    #[tokio::test]
    async fn an_idle_hasher_holds_no_memory() {
        let passwords = passwords(HashQueue::default());
        let hash = passwords
            .hash(Purpose::Account, "correct-horse-7".into())
            .await
            .unwrap();
        assert_eq!(idle_buffers(&passwords.queue), 0);
        assert!(
            passwords
                .verify(Purpose::Login, "correct-horse-7".into(), Some(hash))
                .await
                .unwrap()
        );
        assert_eq!(idle_buffers(&passwords.queue), 0);
    }

    #[tokio::test]
    async fn a_caller_giving_up_in_the_queue_still_lets_the_memory_go() {
        let passwords = passwords(HashQueue::default());
        let threads = passwords.permits.available_permits();
        let held = passwords
            .permits
            .acquire_many(u32::try_from(threads).unwrap())
            .await
            .unwrap();
        // Left by a job that finished while this one waited.
        passwords.queue.memory.give_back(Vec::with_capacity(1));
        let waiting = {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .verify(Purpose::Login, "gives up 1".into(), None)
                    .await
            })
        };
        while passwords.queue.is_empty() {
            tokio::task::yield_now().await;
        }
        assert_eq!(idle_buffers(&passwords.queue), 1);
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        assert_eq!(idle_buffers(&passwords.queue), 0);
        drop(held);
    }

    #[test]
    fn the_dummy_hash_has_the_current_parameters() {
        assert!(!Passwords::needs_rehash(DUMMY_HASH));
        assert!(!verify_blocking("dummy", DUMMY_HASH, &Memory::default()).unwrap());
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
