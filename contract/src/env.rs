//! The environment variables the services read. Every service starts on a
//! developer machine with none of them set (localhost defaults); in a
//! cluster the operator sets them. [`VARIABLES`] documents each one and is
//! the source of the table in `docs/architecture.md`.

use crate::ShopService;

/// Address the API listens on.
pub const HOST: &str = "HOST";
/// Public API port.
pub const PORT: &str = "PORT";
/// Admin port (`/healthz`, `/readyz`, `/metrics`).
pub const ADMIN_PORT: &str = "ADMIN_PORT";
/// PostgreSQL URL of the service's own database.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// Password put into [`DATABASE_URL`], which then carries none (so the
/// password can be a file while the URL stays a plain value).
pub const DATABASE_PASSWORD: &str = "DATABASE_PASSWORD";
/// Upper bound of the service's PostgreSQL pool.
pub const DATABASE_MAX_CONNECTIONS: &str = "DATABASE_MAX_CONNECTIONS";
/// Whether serving applies the service's migrations first (`true`) or only
/// checks that they were applied (`false`: in a cluster, the Store's
/// migration Job applies them once per rollout, not every replica).
pub const DATABASE_MIGRATE_ON_START: &str = "DATABASE_MIGRATE_ON_START";
/// Redis URL.
pub const REDIS_URL: &str = "REDIS_URL";
/// Password put into [`REDIS_URL`].
pub const REDIS_PASSWORD: &str = "REDIS_PASSWORD";
/// Prefix of every Redis key the service writes.
pub const REDIS_PREFIX: &str = "REDIS_PREFIX";
/// RabbitMQ URL.
pub const AMQP_URL: &str = "AMQP_URL";
/// Password put into [`AMQP_URL`].
pub const AMQP_PASSWORD: &str = "AMQP_PASSWORD";
/// Topic exchange the events travel on.
pub const EVENTS_EXCHANGE: &str = "EVENTS_EXCHANGE";
/// Prepended to every queue name (tests isolate themselves with it).
pub const EVENTS_QUEUE_PREFIX: &str = "EVENTS_QUEUE_PREFIX";
/// Deliveries of one event before it is dead-lettered.
pub const EVENTS_MAX_ATTEMPTS: &str = "EVENTS_MAX_ATTEMPTS";
/// First retry delay; doubles with each attempt.
pub const EVENTS_RETRY_BASE_MS: &str = "EVENTS_RETRY_BASE_MS";
/// Seconds an order may stay open (not `PAID` or `CANCELLED`) before the
/// reaper cancels it and releases its stock.
pub const ORDER_DEADLINE_SECS: &str = "ORDER_DEADLINE_SECS";
/// Unacknowledged deliveries a consumer holds at once.
pub const EVENTS_PREFETCH: &str = "EVENTS_PREFETCH";
/// How often the outbox relay polls when no notification arrives.
pub const OUTBOX_POLL_MS: &str = "OUTBOX_POLL_MS";
/// Log filter (`tracing` directives).
pub const RUST_LOG: &str = "RUST_LOG";
/// Log format: `json` in clusters, `pretty` locally.
pub const LOG_FORMAT: &str = "LOG_FORMAT";
/// Base URL of an OTLP/HTTP collector (`http://collector:4318`) spans are
/// exported to; unset: none are (trace context still propagates).
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Full OTLP/HTTP URL log records are exported to (Loki's
/// `http://loki:3100/otlp/v1/logs`); unset: logs only go to stdout.
pub const OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT";
/// Fraction (0 to 1) of new traces sampled; a trace started upstream keeps
/// its parent's decision, so a checkout is sampled whole or not at all.
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
/// `key=value` pairs, comma-separated, added to the resource of exported
/// spans and log records (the operator names the Store and its namespace).
pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// Appended to a secret variable's name ([`Variable::secret`]) to give the
/// path of a file holding its value instead (`TOKEN_PRIVATE_KEY_FILE`), so
/// keys and passwords can be mounted rather than put in the environment.
pub const FILE_SUFFIX: &str = "_FILE";
/// The [`LOG_FORMAT`] value clusters use (one JSON object per line, for Loki).
pub const LOG_FORMAT_JSON: &str = "json";
/// Ed25519 public key (PEM) that verifies access tokens.
pub const TOKEN_PUBLIC_KEY: &str = "TOKEN_PUBLIC_KEY";
/// Ed25519 private key (PEM) that signs access tokens.
pub const TOKEN_PRIVATE_KEY: &str = "TOKEN_PRIVATE_KEY";
/// The `iss` user-service signs into access tokens and every service
/// checks when a token carries one (unset: neither), so a token from
/// another Store is refused.
pub const TOKEN_ISSUER: &str = "TOKEN_ISSUER";
/// The `aud` user-service signs into access tokens and every service
/// checks when a token carries one (unset: neither).
pub const TOKEN_AUDIENCE: &str = "TOKEN_AUDIENCE";
/// `true`: tokens without the configured issuer/audience claims are
/// refused too (the last step of introducing them, once every token in
/// circulation carries them).
pub const TOKEN_CLAIMS_REQUIRED: &str = "TOKEN_CLAIMS_REQUIRED";
/// The admin account created at start.
pub const ADMIN_EMAIL: &str = "ADMIN_EMAIL";
/// Its password (generated into a Secret by the operator; no default anywhere).
pub const ADMIN_PASSWORD: &str = "ADMIN_PASSWORD";
/// The storefront's cookie key: base64 of 64 random bytes.
pub const SESSION_KEY: &str = "SESSION_KEY";
/// `true` behind TLS: the session cookie is sent over HTTPS only.
pub const COOKIE_SECURE: &str = "COOKIE_SECURE";
/// Reverse proxies trusted to append to `X-Forwarded-For`.
pub const TRUSTED_PROXY_HOPS: &str = "TRUSTED_PROXY_HOPS";
/// Largest accepted request body.
pub const BODY_LIMIT_BYTES: &str = "BODY_LIMIT_BYTES";
/// Longest a request may run before it is answered 503.
pub const REQUEST_TIMEOUT_SECS: &str = "REQUEST_TIMEOUT_SECS";
/// Longest in-flight requests may finish after SIGTERM.
pub const SHUTDOWN_TIMEOUT_SECS: &str = "SHUTDOWN_TIMEOUT_SECS";
/// Failed logins per account within the window before 429.
pub const LOGIN_MAX_FAILURES_PER_ACCOUNT: &str = "LOGIN_MAX_FAILURES_PER_ACCOUNT";
/// Failed logins per client address within the window before 429.
pub const LOGIN_MAX_FAILURES_PER_IP: &str = "LOGIN_MAX_FAILURES_PER_IP";
/// The login throttle's window.
pub const LOGIN_THROTTLE_WINDOW_SECS: &str = "LOGIN_THROTTLE_WINDOW_SECS";
/// Lifetime of a refresh token.
pub const REFRESH_TOKEN_TTL_DAYS: &str = "REFRESH_TOKEN_TTL_DAYS";

/// Which services read a variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBy {
    /// All five services.
    Every,
    /// The services that own a database.
    WithDatabase,
    /// The services that use Redis ([`ShopService::uses_redis`]).
    WithRedis,
    /// The services on the broker ([`ShopService::uses_broker`]).
    WithBroker,
    /// One service only.
    Only(ShopService),
}

impl ReadBy {
    /// Whether `service` reads a variable with this scope.
    pub fn includes(self, service: ShopService) -> bool {
        match self {
            ReadBy::Every => true,
            ReadBy::WithDatabase => service.database().is_some(),
            ReadBy::WithRedis => service.uses_redis(),
            ReadBy::WithBroker => service.uses_broker(),
            ReadBy::Only(only) => only == service,
        }
    }
}

/// One documented variable.
#[derive(Clone, Copy, Debug)]
pub struct Variable {
    /// Its name.
    pub name: &'static str,
    /// Who reads it.
    pub read_by: ReadBy,
    /// The value used when it is unset, as a person would write it.
    pub default: &'static str,
    /// What it is for.
    pub meaning: &'static str,
    /// Whether it holds a secret (a key, a password, a URL with one): such
    /// a variable may instead name a file with [`FILE_SUFFIX`].
    pub secret: bool,
}

impl Variable {
    /// The variable naming the file this secret's value may be read from
    /// (`None` for a variable that is not secret).
    pub fn file_variable(&self) -> Option<String> {
        self.secret.then(|| format!("{}{FILE_SUFFIX}", self.name))
    }
}

/// The documented variables holding secrets, each of which may instead be
/// given as a file ([`FILE_SUFFIX`]).
pub fn secrets() -> impl Iterator<Item = &'static Variable> {
    VARIABLES.iter().filter(|v| v.secret)
}

const fn var(
    name: &'static str,
    read_by: ReadBy,
    default: &'static str,
    meaning: &'static str,
) -> Variable {
    Variable {
        name,
        read_by,
        default,
        meaning,
        secret: false,
    }
}

/// [`var`] for a secret: it may also be read from `<name>_FILE`.
const fn secret(
    name: &'static str,
    read_by: ReadBy,
    default: &'static str,
    meaning: &'static str,
) -> Variable {
    Variable {
        secret: true,
        ..var(name, read_by, default, meaning)
    }
}

/// Every variable a service reads, besides the `*_URL` of the services it
/// calls ([`ShopService::url_env`]).
pub const VARIABLES: &[Variable] = &[
    var(
        HOST,
        ReadBy::Every,
        "`0.0.0.0`",
        "address the API listens on",
    ),
    var(PORT, ReadBy::Every, "the service's port", "public API port"),
    var(
        ADMIN_PORT,
        ReadBy::Every,
        "`9000`",
        "`/healthz`, `/readyz`, `/metrics`; never routed by the edge",
    ),
    secret(
        DATABASE_URL,
        ReadBy::WithDatabase,
        "`postgres://postgres@127.0.0.1:5432/<database>`",
        "the service's own database",
    ),
    secret(
        DATABASE_PASSWORD,
        ReadBy::WithDatabase,
        "none (the URL's own, if any)",
        "password put into `DATABASE_URL` (the operator gives it as a file and the URL without it)",
    ),
    var(
        DATABASE_MIGRATE_ON_START,
        ReadBy::WithDatabase,
        "`true`",
        "apply migrations before serving; `false` only checks they were applied (the operator sets it and runs `<service> migrate` as a Job)",
    ),
    var(
        DATABASE_MAX_CONNECTIONS,
        ReadBy::WithDatabase,
        "`10`",
        "upper bound of the connection pool; services that publish events (product, payment, order) open two more outside it: the relay's LISTEN connection and the one holding the relay lock",
    ),
    secret(
        REDIS_URL,
        ReadBy::WithRedis,
        "`redis://127.0.0.1:6379`",
        "catalog cache and login throttling",
    ),
    secret(
        REDIS_PASSWORD,
        ReadBy::WithRedis,
        "none (the URL's own, if any)",
        "password put into `REDIS_URL`",
    ),
    var(
        REDIS_PREFIX,
        ReadBy::WithRedis,
        "`<database>:`",
        "prefix of every key the service writes",
    ),
    secret(
        AMQP_URL,
        ReadBy::WithBroker,
        "`amqp://guest:guest@127.0.0.1:5672/%2f`",
        "RabbitMQ; events wait in the outbox while it is down",
    ),
    secret(
        AMQP_PASSWORD,
        ReadBy::WithBroker,
        "none (the URL's own, if any)",
        "password put into `AMQP_URL`",
    ),
    var(
        EVENTS_EXCHANGE,
        ReadBy::WithBroker,
        "`store.events`",
        "topic exchange the events travel on",
    ),
    var(
        EVENTS_QUEUE_PREFIX,
        ReadBy::WithBroker,
        "empty",
        "prepended to every queue name (tests isolate themselves with it)",
    ),
    var(
        EVENTS_MAX_ATTEMPTS,
        ReadBy::WithBroker,
        "`8`",
        "deliveries of one event before it goes to the dead-letter queue",
    ),
    var(
        EVENTS_RETRY_BASE_MS,
        ReadBy::WithBroker,
        "`5000`",
        "first retry delay; doubles with each attempt, at most 10 min (about 10.5 min over 8 attempts)",
    ),
    var(
        EVENTS_PREFETCH,
        ReadBy::WithBroker,
        "`32`",
        "unacknowledged deliveries a consumer holds at once; never more than half of `DATABASE_MAX_CONNECTIONS`",
    ),
    var(
        OUTBOX_POLL_MS,
        ReadBy::WithBroker,
        "`1000`",
        "outbox relay poll interval when no notification arrives",
    ),
    var(
        RUST_LOG,
        ReadBy::Every,
        "`info,sqlx=warn,tower_http=info`",
        "log filter (`tracing` directives)",
    ),
    var(
        LOG_FORMAT,
        ReadBy::Every,
        "`pretty`",
        "`json` in clusters: one object per line, for Loki",
    ),
    var(
        OTEL_EXPORTER_OTLP_ENDPOINT,
        ReadBy::Every,
        "none (no export)",
        "OTLP/HTTP (protobuf) collector base URL, e.g. `http://collector:4318`; spans go to `/v1/traces`",
    ),
    var(
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
        ReadBy::Every,
        "none (stdout only)",
        "full OTLP/HTTP URL log records also go to, e.g. Loki's `http://loki:3100/otlp/v1/logs`",
    ),
    var(
        OTEL_TRACES_SAMPLER_ARG,
        ReadBy::Every,
        "`1` (every trace)",
        "fraction of new traces sampled (0 to 1); a trace started upstream keeps its parent's decision",
    ),
    var(
        OTEL_RESOURCE_ATTRIBUTES,
        ReadBy::Every,
        "none",
        "`key=value,...` added to exported spans and log records (the operator sets `k8s.namespace.name` and `service.namespace`, the Store)",
    ),
    secret(
        TOKEN_PUBLIC_KEY,
        ReadBy::Every,
        "none (required by the API services)",
        "Ed25519 public key (PEM) that verifies access tokens",
    ),
    secret(
        TOKEN_PRIVATE_KEY,
        ReadBy::Only(ShopService::User),
        "none (required)",
        "Ed25519 private key (PEM) that signs access tokens",
    ),
    var(
        TOKEN_ISSUER,
        ReadBy::Every,
        "unset: not signed, not checked",
        "`iss` of access tokens: user-service signs it; every service refuses a token with another one",
    ),
    var(
        TOKEN_AUDIENCE,
        ReadBy::Every,
        "unset: not signed, not checked",
        "`aud` of access tokens: user-service signs it; every service refuses a token with another one",
    ),
    var(
        TOKEN_CLAIMS_REQUIRED,
        ReadBy::Every,
        "`false`",
        "`true`: a token without the configured `iss`/`aud` is refused too (the last rollout step; see Auth)",
    ),
    var(
        ORDER_DEADLINE_SECS,
        ReadBy::Only(ShopService::Order),
        "`900`",
        "an order not `PAID` or `CANCELLED` this long after it was placed is cancelled by the reaper (its stock released, a late payment refunded)",
    ),
    var(
        ADMIN_EMAIL,
        ReadBy::Only(ShopService::User),
        "none",
        "admin account created at start, with `ADMIN_PASSWORD`",
    ),
    secret(
        ADMIN_PASSWORD,
        ReadBy::Only(ShopService::User),
        "none",
        "its password; there is no default password anywhere",
    ),
    var(
        LOGIN_MAX_FAILURES_PER_ACCOUNT,
        ReadBy::Only(ShopService::User),
        "`5`",
        "failed logins per account within the window before 429",
    ),
    var(
        LOGIN_MAX_FAILURES_PER_IP,
        ReadBy::Only(ShopService::User),
        "`20`",
        "failed logins per client address within the window before 429",
    ),
    var(
        LOGIN_THROTTLE_WINDOW_SECS,
        ReadBy::Only(ShopService::User),
        "`900`",
        "the login throttle's window",
    ),
    var(
        REFRESH_TOKEN_TTL_DAYS,
        ReadBy::Only(ShopService::User),
        "`30`",
        "lifetime of a refresh token",
    ),
    secret(
        SESSION_KEY,
        ReadBy::Only(ShopService::Storefront),
        "random per process",
        "cookie key, base64 of 64 random bytes; set it or shoppers are logged out on restart",
    ),
    var(
        COOKIE_SECURE,
        ReadBy::Only(ShopService::Storefront),
        "`false`",
        "`true` behind TLS: the session cookie is HTTPS-only",
    ),
    var(
        TRUSTED_PROXY_HOPS,
        ReadBy::Every,
        "`0`",
        "reverse proxies trusted to append to `X-Forwarded-For` (the operator sets 1)",
    ),
    var(
        BODY_LIMIT_BYTES,
        ReadBy::Every,
        "`65536`",
        "largest accepted request body (413 beyond it)",
    ),
    var(
        REQUEST_TIMEOUT_SECS,
        ReadBy::Every,
        "`15`",
        "longest a request may run before a 503",
    ),
    var(
        SHUTDOWN_TIMEOUT_SECS,
        ReadBy::Every,
        "`25`",
        "how long in-flight requests may finish after SIGTERM",
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn each_variable_is_documented_once() {
        let names: HashSet<_> = VARIABLES.iter().map(|v| v.name).collect();
        assert_eq!(names.len(), VARIABLES.len());
    }

    #[test]
    fn keys_passwords_and_urls_with_passwords_are_secret() {
        let names: Vec<_> = secrets().map(|v| v.name).collect();
        for name in [
            DATABASE_URL,
            DATABASE_PASSWORD,
            REDIS_URL,
            REDIS_PASSWORD,
            AMQP_URL,
            AMQP_PASSWORD,
            TOKEN_PUBLIC_KEY,
            TOKEN_PRIVATE_KEY,
            ADMIN_PASSWORD,
            SESSION_KEY,
        ] {
            assert!(names.contains(&name), "{name}");
        }
        assert_eq!(names.len(), 10, "{names:?}");
        let port = VARIABLES.iter().find(|v| v.name == PORT).unwrap();
        assert_eq!(port.file_variable(), None);
        let key = secrets().find(|v| v.name == SESSION_KEY).unwrap();
        assert_eq!(key.file_variable().as_deref(), Some("SESSION_KEY_FILE"));
    }

    #[test]
    fn scopes_follow_the_topology() {
        assert!(ReadBy::WithRedis.includes(ShopService::Product));
        assert!(!ReadBy::WithRedis.includes(ShopService::Order));
        assert!(ReadBy::WithBroker.includes(ShopService::Payment));
        assert!(!ReadBy::WithBroker.includes(ShopService::Storefront));
        assert!(!ReadBy::WithDatabase.includes(ShopService::Storefront));
        assert!(ReadBy::Only(ShopService::User).includes(ShopService::User));
    }
}
