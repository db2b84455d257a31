//! The names and ports of the data stores' components, in a module that
//! imports no other render module: the services, the NetworkPolicies, the
//! backup, the delegated stores and the data stores themselves all need
//! them, and keeping them here lets those modules depend on each other in
//! one direction only.

/// PostgreSQL's component name (its workload, Service and pod label).
pub const POSTGRES: &str = "postgres";
/// The port PostgreSQL clients connect to (the image's default).
pub const POSTGRES_PORT: i32 = 5432;
/// RabbitMQ's component name.
pub const RABBITMQ: &str = "rabbitmq";
/// The AMQP port RabbitMQ clients connect to (the image's default).
pub const RABBITMQ_PORT: i32 = 5672;
/// Redis's component name.
pub const REDIS: &str = "redis";
/// The port Redis clients connect to (the image's default).
pub const REDIS_PORT: i32 = 6379;
