//! Typed configuration from environment variables.
//!
//! Every service starts on a developer machine with no configuration at all,
//! so each setting has a localhost default; in a cluster the operator sets the
//! real values. A missing or malformed required value stops the service at
//! start-up with one line naming the variable, e.g.
//! `invalid PORT="abc": invalid digit found in string`.

use std::{collections::HashMap, fmt::Display, net::IpAddr, str::FromStr, time::Duration};

use crate::{client_ip::TrustedProxyHops, telemetry::LogFormat};

/// Why a configuration value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("missing required environment variable {name}")]
    Missing {
        /// The variable's name.
        name: String,
    },
    /// A variable is set but does not parse as the expected type.
    #[error("invalid {name}={value:?}: {reason}")]
    Invalid {
        /// The variable's name.
        name: String,
        /// The raw value (never a secret: secrets are reported without it).
        value: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// Reports a malformed value whose content must not be echoed (keys, passwords).
    pub fn invalid_secret(name: &str, reason: impl Display) -> Self {
        Self::Invalid {
            name: name.to_owned(),
            value: "<redacted>".to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Where variables come from: the process environment, or a map in tests
/// (the 2024 edition makes `std::env::set_var` unsafe, so tests never touch
/// the real environment).
pub trait Source {
    /// Returns the raw value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<H: std::hash::BuildHasher> Source for HashMap<String, String, H> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl<H: std::hash::BuildHasher> Source for HashMap<&str, &str, H> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|v| (*v).to_owned())
    }
}

/// Typed reads from a [`Source`]. An empty value counts as unset, so
/// `PORT=` in a manifest behaves like no `PORT` at all.
#[derive(Debug, Clone, Copy)]
pub struct Vars<S>(pub S);

impl<S: Source> Vars<S> {
    /// Reads `name`, or `None` when unset; malformed values are an error.
    pub fn optional<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.0.get(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(raw) => raw
                .trim()
                .parse()
                .map(Some)
                .map_err(|err: T::Err| ConfigError::Invalid {
                    name: name.to_owned(),
                    value: raw.clone(),
                    reason: err.to_string(),
                }),
        }
    }

    /// Reads `name`, falling back to `default` when unset.
    pub fn or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.optional(name)?.unwrap_or(default))
    }

    /// Reads `name`, which must be set.
    pub fn required<T>(&self, name: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.optional(name)?.ok_or_else(|| ConfigError::Missing {
            name: name.to_owned(),
        })
    }

    /// Reads a secret (a PEM key, a password) without trimming it and without
    /// ever echoing it in an error.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.trim().is_empty())
    }
}

/// Reads `name` from the process environment, or `default` when unset.
pub fn env_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    Vars(ProcessEnv).or(name, default)
}

/// Reads `name` from the process environment; it must be set.
pub fn env_required<T>(name: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    Vars(ProcessEnv).required(name)
}

/// Reads `name` from the process environment, `None` when unset.
pub fn env_optional<T>(name: &str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    Vars(ProcessEnv).optional(name)
}

/// The settings every service shares (DESIGN.md, "Every service").
#[derive(Clone)]
pub struct ServiceConfig {
    /// Service name, used in logs and metrics (e.g. `user-service`).
    pub name: &'static str,
    /// Address both listeners bind to (`HOST`, default `0.0.0.0`).
    pub host: IpAddr,
    /// Public API port (`PORT`).
    pub port: u16,
    /// Admin port for health, readiness and metrics (`ADMIN_PORT`, default 9000).
    pub admin_port: u16,
    /// PostgreSQL URL (`DATABASE_URL`).
    pub database_url: String,
    /// Redis URL (`REDIS_URL`).
    pub redis_url: String,
    /// Namespace for every Redis key this service writes (`REDIS_PREFIX`,
    /// default `<database>:`), so services sharing one Redis, and tests
    /// sharing one server, never collide.
    pub redis_prefix: String,
    /// Most PostgreSQL connections this replica opens
    /// (`DATABASE_MAX_CONNECTIONS`, default 10); see [`crate::db::connect_with`].
    pub database_max_connections: u32,
    /// RabbitMQ URL (`AMQP_URL`).
    pub amqp_url: String,
    /// Log output format (`LOG_FORMAT`: `json` or `pretty`).
    pub log_format: LogFormat,
    /// Ed25519 public key PEM that verifies access tokens (`TOKEN_PUBLIC_KEY`).
    /// Optional here; [`ServiceConfig::token_verifier`] turns its absence
    /// into a start-up error for services that need it.
    pub token_public_key: Option<String>,
    /// Largest request body accepted, in bytes (`BODY_LIMIT_BYTES`, default 64 KiB).
    pub body_limit: usize,
    /// Longest a request may run before a 503 (`REQUEST_TIMEOUT_SECS`, default 15).
    pub request_timeout: Duration,
    /// Longest graceful shutdown waits for in-flight requests
    /// (`SHUTDOWN_TIMEOUT_SECS`, default 25, under Kubernetes' 30 s grace).
    pub shutdown_timeout: Duration,
    /// Reverse proxies in front of this service trusted to append to
    /// `X-Forwarded-For` (`TRUSTED_PROXY_HOPS`, default 0: believe only the
    /// socket); see [`crate::client_ip`].
    pub trusted_proxy_hops: TrustedProxyHops,
}

impl std::fmt::Debug for ServiceConfig {
    // Hand-written so URLs with passwords and keys never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("admin_port", &self.admin_port)
            .field("redis_prefix", &self.redis_prefix)
            .field("log_format", &self.log_format)
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("trusted_proxy_hops", &self.trusted_proxy_hops)
            .finish_non_exhaustive()
    }
}

/// Default admin port (DESIGN.md).
pub const DEFAULT_ADMIN_PORT: u16 = 9000;
/// Default request body limit: JSON APIs need far less than axum's 2 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

impl ServiceConfig {
    /// Reads the common settings from the process environment.
    /// `default_database` is the database name used in the localhost default
    /// `DATABASE_URL` and as the default Redis key prefix.
    pub fn from_env(
        name: &'static str,
        default_port: u16,
        default_database: &str,
    ) -> Result<Self, ConfigError> {
        Self::from_source(&Vars(ProcessEnv), name, default_port, default_database)
    }

    /// Like [`ServiceConfig::from_env`], from any [`Source`] (tests).
    pub fn from_source<S: Source>(
        vars: &Vars<S>,
        name: &'static str,
        default_port: u16,
        default_database: &str,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            name,
            host: vars.or("HOST", IpAddr::from([0, 0, 0, 0]))?,
            port: vars.or("PORT", default_port)?,
            admin_port: vars.or("ADMIN_PORT", DEFAULT_ADMIN_PORT)?,
            database_url: vars.secret("DATABASE_URL").unwrap_or_else(|| {
                format!("postgres://postgres@127.0.0.1:5432/{default_database}")
            }),
            database_max_connections: vars.or("DATABASE_MAX_CONNECTIONS", 10)?,
            redis_url: vars
                .secret("REDIS_URL")
                .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
            redis_prefix: vars.or("REDIS_PREFIX", format!("{default_database}:"))?,
            amqp_url: vars
                .secret("AMQP_URL")
                .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()),
            log_format: vars.or("LOG_FORMAT", LogFormat::Pretty)?,
            token_public_key: vars.secret("TOKEN_PUBLIC_KEY"),
            body_limit: vars.or("BODY_LIMIT_BYTES", DEFAULT_BODY_LIMIT)?,
            request_timeout: Duration::from_secs(vars.or("REQUEST_TIMEOUT_SECS", 15)?),
            shutdown_timeout: Duration::from_secs(vars.or("SHUTDOWN_TIMEOUT_SECS", 25)?),
            trusted_proxy_hops: TrustedProxyHops(vars.or("TRUSTED_PROXY_HOPS", 0)?),
        })
    }

    /// A configuration for tests: localhost everywhere, no token key.
    #[cfg(any(test, feature = "testing"))]
    pub fn for_tests(name: &'static str) -> Self {
        let empty: HashMap<String, String> = HashMap::new();
        // The empty source has no malformed values, so this cannot fail.
        Self::from_source(&Vars(empty), name, 0, "test").unwrap_or_else(|_| unreachable!())
    }

    /// Builds the access-token verifier from `TOKEN_PUBLIC_KEY`; missing or
    /// malformed is a start-up error naming the variable.
    pub fn token_verifier(&self) -> Result<crate::auth::TokenVerifier, ConfigError> {
        let pem = self
            .token_public_key
            .as_deref()
            .ok_or_else(|| ConfigError::Missing {
                name: "TOKEN_PUBLIC_KEY".to_owned(),
            })?;
        crate::auth::TokenVerifier::from_pem(pem)
            .map_err(|err| ConfigError::invalid_secret("TOKEN_PUBLIC_KEY", err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&'static str, &'static str)]) -> Vars<HashMap<&'static str, &'static str>> {
        Vars(pairs.iter().copied().collect())
    }

    #[test]
    fn malformed_value_names_the_variable_and_the_reason() {
        let err = vars(&[("PORT", "abc")]).or("PORT", 3000_u16).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid PORT="abc": invalid digit found in string"#
        );
    }

    #[test]
    fn missing_required_value_names_the_variable() {
        let err = vars(&[])
            .required::<String>("TOKEN_PUBLIC_KEY")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required environment variable TOKEN_PUBLIC_KEY"
        );
    }

    #[test]
    fn empty_value_counts_as_unset() {
        assert_eq!(vars(&[("PORT", " ")]).or("PORT", 7_u16).unwrap(), 7);
        assert!(vars(&[("X", "")]).required::<u16>("X").is_err());
    }

    #[test]
    fn defaults_give_a_localhost_service() {
        let config = ServiceConfig::from_source(&vars(&[]), "user-service", 3001, "users").unwrap();
        assert_eq!(config.port, 3001);
        assert_eq!(config.admin_port, 9000);
        assert_eq!(
            config.database_url,
            "postgres://postgres@127.0.0.1:5432/users"
        );
        assert_eq!(config.redis_prefix, "users:");
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert!(config.token_public_key.is_none());
        assert_eq!(
            config.trusted_proxy_hops,
            TrustedProxyHops(0),
            "only the socket is believed"
        );
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = ServiceConfig::from_source(
            &vars(&[
                ("PORT", "8080"),
                ("ADMIN_PORT", "9100"),
                ("LOG_FORMAT", "json"),
                ("TRUSTED_PROXY_HOPS", "1"),
            ]),
            "svc",
            1,
            "db",
        )
        .unwrap();
        assert_eq!((config.port, config.admin_port), (8080, 9100));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.trusted_proxy_hops, TrustedProxyHops(1));
    }

    #[test]
    fn bad_log_format_is_rejected_with_the_choices() {
        let err = ServiceConfig::from_source(&vars(&[("LOG_FORMAT", "xml")]), "s", 1, "d")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            r#"invalid LOG_FORMAT="xml": expected `json` or `pretty`"#
        );
    }

    #[test]
    fn token_verifier_requires_the_key() {
        let config = ServiceConfig::for_tests("s");
        assert_eq!(
            config.token_verifier().err().unwrap().to_string(),
            "missing required environment variable TOKEN_PUBLIC_KEY"
        );
        let bad = ServiceConfig {
            token_public_key: Some("not a pem".into()),
            ..config
        };
        let message = bad.token_verifier().err().unwrap().to_string();
        assert!(
            message.starts_with("invalid TOKEN_PUBLIC_KEY=\"<redacted>\""),
            "{message}"
        );
    }
}
