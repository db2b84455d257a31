//! Where things are on a developer machine: the five services with their
//! ports and databases, and the local servers they need. The ports are the
//! ones DESIGN.md fixes; admin ports are made distinct here because all five
//! services share one host.

use std::path::PathBuf;

/// One shop service as the local stack runs it.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// Short name used in logs and state (`user`, `product`, ...).
    pub name: &'static str,
    /// Cargo package (and binary) name.
    pub package: &'static str,
    /// Public HTTP port.
    pub port: u16,
    /// Admin port (`/healthz`, `/readyz`, `/metrics`).
    pub admin_port: u16,
    /// PostgreSQL database and role, for services that own data.
    pub database: Option<&'static str>,
}

/// The services in start order: dependencies before their callers.
pub const SERVICES: [Service; 5] = [
    Service {
        name: "user",
        package: "user-service",
        port: 3001,
        admin_port: 9001,
        database: Some("users"),
    },
    Service {
        name: "product",
        package: "product-service",
        port: 3002,
        admin_port: 9002,
        database: Some("products"),
    },
    Service {
        name: "payment",
        package: "payment-service",
        port: 8002,
        admin_port: 9004,
        database: Some("payments"),
    },
    Service {
        name: "order",
        package: "order-service",
        port: 8001,
        admin_port: 9003,
        database: Some("orders"),
    },
    Service {
        name: "storefront",
        package: "storefront",
        port: 3000,
        admin_port: 9000,
        database: None,
    },
];

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
