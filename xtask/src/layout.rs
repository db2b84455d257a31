//! What only a developer machine has: the local servers the services need,
//! where the repository and the local state live, and how to reach
//! PostgreSQL as its administrator. The services themselves (names,
//! packages, ports, local admin ports, databases, start order) come from
//! `storekeeper_contract::ShopService`.

use std::path::PathBuf;

/// A server the services depend on, with the command that starts it.
pub struct Dependency {
    /// What to call it in messages.
    pub name: &'static str,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// PostgreSQL, Redis and RabbitMQ on their standard local ports.
pub const DEPENDENCIES: [Dependency; 3] = [
    Dependency {
        name: "PostgreSQL",
        port: 5432,
    },
    Dependency {
        name: "Redis",
        port: 6379,
    },
    Dependency {
        name: "RabbitMQ",
        port: 5672,
    },
];

/// Connection string for creating databases and roles.
pub fn postgres_admin_url() -> String {
    std::env::var("POSTGRES_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The repository root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

/// The local state folder: generated keys and passwords, logs. Git-ignored.
pub fn state_dir() -> PathBuf {
    root().join(".local")
}
