//! The images the operator runs itself, pinned (official images; bump
//! deliberately, never `latest`), and the UIDs every pod runs as. The shop
//! services' images come from the Store (`imageRegistry`, `version`).

/// PostgreSQL server.
pub const POSTGRES: &str = "docker.io/library/postgres:17.6-bookworm";
/// Redis server.
pub const REDIS: &str = "docker.io/library/redis:8.2.1-bookworm";
/// RabbitMQ broker.
pub const RABBITMQ: &str = "docker.io/library/rabbitmq:4.1.4";
/// UID the official Debian-based data images run as.
pub const DATA_UID: i64 = 999;
/// UID the shop's service images run as (distroless `nonroot`).
pub const SERVICE_UID: i64 = 65532;
