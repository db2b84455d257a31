//! Credentials the local stack generates once and reuses: the token signing
//! key pair, the admin account and each database role's password. They live
//! in `.local/state.json` (mode 0600, git-ignored) so a second `cargo xtask
//! up` finds the same admin and the same sessions still valid.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use rand::distributions::Alphanumeric;
use rand::{Rng, thread_rng};
use serde::{Deserialize, Serialize};

/// Everything generated for one local stack.
#[derive(Debug, Serialize, Deserialize)]
pub struct LocalState {
    /// Ed25519 private key (PKCS#8 PEM) user-service signs tokens with.
    pub token_private_key: String,
    /// The matching public key (SPKI PEM) every service verifies with.
    pub token_public_key: String,
    /// Admin account e-mail.
    pub admin_email: String,
    /// Admin account password.
    pub admin_password: String,
    /// Password of each database role, by database name.
    pub database_passwords: BTreeMap<String, String>,
    /// Storefront cookie key (base64 of 64 random bytes), kept so a restart
    /// does not log every shopper out.
    #[serde(default = "random_session_key")]
    pub session_key: String,
}

impl LocalState {
    /// Reads the state in `dir`, creating it on first use. `ADMIN_EMAIL` and
    /// `ADMIN_PASSWORD` from the environment win over stored values.
    pub fn load_or_create(dir: &Path, databases: &[&str]) -> Result<Self> {
        let path = dir.join("state.json");
        let mut state = if path.exists() {
            let text =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!("{} is not valid; delete it to start afresh", path.display())
            })?
        } else {
            Self::generate()?
        };
        for db in databases {
            state
                .database_passwords
                .entry((*db).to_owned())
                .or_insert_with(random_secret);
        }
        if let Ok(email) = std::env::var("ADMIN_EMAIL") {
            state.admin_email = email;
        }
        if let Ok(password) = std::env::var("ADMIN_PASSWORD") {
            state.admin_password = password;
        }
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_private(&path, &serde_json::to_string_pretty(&state)?)?;
        Ok(state)
    }

    fn generate() -> Result<Self> {
        let keys =
            storekeeper_kit::auth::KeyPair::generate().context("generating the token key pair")?;
        Ok(Self {
            token_private_key: keys.private_pem,
            token_public_key: keys.public_pem,
            admin_email: "admin@storekeeper.local".to_owned(),
            admin_password: random_secret(),
            database_passwords: BTreeMap::new(),
            session_key: random_session_key(),
        })
    }
}

fn random_secret() -> String {
    thread_rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

fn random_session_key() -> String {
    let mut bytes = [0_u8; 64];
    thread_rng().fill(&mut bytes[..]);
    BASE64_STANDARD.encode(bytes)
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
