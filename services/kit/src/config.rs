//! Typed configuration from environment variables.
//!
//! Every service starts on a developer machine with no configuration at all,
//! so each setting has a localhost default; in a cluster the operator sets the
//! real values. A missing or malformed required value stops the service at
//! start-up with one line naming the variable, e.g.
//! `invalid PORT="abc": invalid digit found in string`. The variable names
//! and defaults are the ones `storekeeper_contract::env::VARIABLES` documents.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use storekeeper_contract::{ShopService, admin, env};
use url::Url;

use crate::{
    auth::TokenScope,
    client_ip::TrustedProxyHops,
    events::EventsConfig,
    telemetry::{self, LogFormat, ResourceAttributes, SampleRatio},
};

pub use crate::vars::{ConfigError, ProcessEnv, Source, Vars};

/// The settings every service shares. Which parts a service has, and their
/// localhost defaults, follow [`ShopService`]: a database for the services
/// that own one, Redis for its users, the broker for the services on it, a
/// `*_URL` for each service it calls.
#[derive(Clone)]
pub struct ServiceConfig {
    /// Package name, used in logs and metrics (e.g. `user-service`).
    pub name: &'static str,
    /// Address both listeners bind to (`HOST`, default `0.0.0.0`).
    pub host: IpAddr,
    /// Public API port (`PORT`, default [`ShopService::port`]).
    pub port: u16,
    /// Admin port for health, readiness and metrics (`ADMIN_PORT`, default 9000).
    pub admin_port: u16,
    /// The service's own PostgreSQL database, if it owns one.
    pub database: Option<DatabaseConfig>,
    /// Redis, if the service uses it.
    pub redis: Option<RedisConfig>,
    /// The broker and the event workers' behaviour, if the service is on it.
    pub events: Option<EventsConfig>,
    /// Log output format (`LOG_FORMAT`: `json` or `pretty`).
    pub log_format: LogFormat,
    /// Where spans are exported over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `/v1/traces` appended); unset: no export, while trace context still
    /// propagates and log lines still carry trace ids.
    pub otlp_endpoint: Option<Url>,
    /// Where log records are also exported over OTLP/HTTP
    /// (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, the full URL); unset: standard
    /// output only.
    pub otlp_logs_endpoint: Option<Url>,
    /// Fraction of new traces sampled (`OTEL_TRACES_SAMPLER_ARG`, default 1);
    /// a continued trace keeps its parent's decision.
    pub traces_sample_ratio: SampleRatio,
    /// Added to exported spans and log records (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource_attributes: ResourceAttributes,
    /// Ed25519 public key PEM that verifies access tokens (`TOKEN_PUBLIC_KEY`).
    /// Optional here; [`ServiceConfig::token_verifier`] turns its absence
    /// into a start-up error for services that need it.
    pub token_public_key: Option<String>,
    /// The issuer and audience access tokens carry in this Store
    /// (`TOKEN_ISSUER`, `TOKEN_AUDIENCE`, `TOKEN_CLAIMS_REQUIRED`): unset
    /// parts are neither signed nor checked, so they can be switched on
    /// during a rolling upgrade (docs/architecture.md, "Auth").
    pub token_scope: TokenScope,
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
    /// Base URL of each service this one calls ([`ShopService::calls`]).
    urls: BTreeMap<ShopService, Url>,
}

impl std::fmt::Debug for ServiceConfig {
    // Hand-written so URLs with passwords and keys never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("admin_port", &self.admin_port)
            .field("database", &self.database)
            .field("redis", &self.redis)
            .field("events", &self.events)
            .field("log_format", &self.log_format)
            .field("traces_exported", &self.otlp_endpoint.is_some())
            .field("logs_exported", &self.otlp_logs_endpoint.is_some())
            .field("traces_sample_ratio", &self.traces_sample_ratio)
            .field("token_scope", &self.token_scope)
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("trusted_proxy_hops", &self.trusted_proxy_hops)
            .finish_non_exhaustive()
    }
}

/// Where a service's own database is and how many connections it may hold.
#[derive(Clone)]
pub struct DatabaseConfig {
    /// PostgreSQL URL (`DATABASE_URL`, default
    /// `postgres://postgres@127.0.0.1:5432/<database>`).
    pub url: String,
    /// Size of this replica's connection pool (`DATABASE_MAX_CONNECTIONS`,
    /// default 10); an event-publishing service opens two more of its own,
    /// the relay's LISTEN connection and the one holding its relay lock.
    pub max_connections: u32,
}

impl std::fmt::Debug for DatabaseConfig {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// Where Redis is and the namespace of this service's keys.
#[derive(Clone)]
pub struct RedisConfig {
    /// Redis URL (`REDIS_URL`, default `redis://127.0.0.1:6379`).
    pub url: String,
    /// Prefix of every key this service writes (`REDIS_PREFIX`, default
    /// `<database>:`), so services sharing one Redis, and tests sharing one
    /// server, never collide.
    pub prefix: String,
}

impl std::fmt::Debug for RedisConfig {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Default request body limit: JSON APIs need far less than axum's 2 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

impl ServiceConfig {
    /// Reads `service`'s settings from `vars` (the runner reads the process
    /// environment through [`ProcessEnv`]; tests pass a map).
    pub fn from_source<S: Source>(
        vars: &Vars<S>,
        service: ShopService,
    ) -> Result<Self, ConfigError> {
        let database = service
            .database()
            .map(|database| read_database(vars, database))
            .transpose()?;
        let redis = service
            .uses_redis()
            .then(|| read_redis(vars, service))
            .transpose()?;
        let events = service
            .uses_broker()
            .then(|| {
                let amqp_url = vars
                    .secret(env::AMQP_URL)
                    .unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned());
                let amqp_url = with_password(vars, env::AMQP_URL, amqp_url, env::AMQP_PASSWORD)?;
                EventsConfig::from_source(vars, &amqp_url)
            })
            .transpose()?;
        let urls = service
            .calls()
            .iter()
            .map(|&callee| Ok((callee, read_url(vars, callee)?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self {
            name: service.package(),
            host: vars.or(env::HOST, IpAddr::from([0, 0, 0, 0]))?,
            port: vars.or(env::PORT, service.port())?,
            admin_port: vars.or(env::ADMIN_PORT, admin::PORT)?,
            database,
            redis,
            events,
            log_format: vars.or(env::LOG_FORMAT, LogFormat::Pretty)?,
            otlp_endpoint: vars.optional(env::OTEL_EXPORTER_OTLP_ENDPOINT)?,
            otlp_logs_endpoint: vars.optional(env::OTEL_EXPORTER_OTLP_LOGS_ENDPOINT)?,
            traces_sample_ratio: vars.or(env::OTEL_TRACES_SAMPLER_ARG, SampleRatio::ALL)?,
            resource_attributes: vars
                .or(env::OTEL_RESOURCE_ATTRIBUTES, ResourceAttributes::default())?,
            token_public_key: vars.secret(env::TOKEN_PUBLIC_KEY),
            token_scope: read_token_scope(vars)?,
            body_limit: vars.or(env::BODY_LIMIT_BYTES, DEFAULT_BODY_LIMIT)?,
            request_timeout: Duration::from_secs(vars.or(env::REQUEST_TIMEOUT_SECS, 15)?),
            shutdown_timeout: Duration::from_secs(vars.or(env::SHUTDOWN_TIMEOUT_SECS, 25)?),
            trusted_proxy_hops: TrustedProxyHops(vars.or(env::TRUSTED_PROXY_HOPS, 0)?),
            urls,
        })
    }

    /// `service`'s localhost defaults on ports the OS picks (0), so tests
    /// never collide with a service running on the machine.
    #[cfg(any(test, feature = "testing"))]
    pub fn for_tests(service: ShopService) -> Self {
        let empty: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        // The empty source has no malformed values, so this cannot fail.
        let config = Self::from_source(&Vars(empty), service).unwrap_or_else(|_| unreachable!());
        Self {
            port: 0,
            admin_port: 0,
            ..config
        }
    }

    /// How the service logs and traces, from these settings.
    pub fn telemetry(&self) -> telemetry::Settings {
        telemetry::Settings {
            traces_endpoint: self.otlp_endpoint.clone(),
            logs_endpoint: self.otlp_logs_endpoint.clone(),
            sample_ratio: self.traces_sample_ratio,
            resource_attributes: self.resource_attributes.clone(),
            ..telemetry::Settings::new(self.name, self.log_format)
        }
    }

    /// The base URL of `callee` (its `*_URL`, default its localhost port).
    /// Only the services this one calls have one: asking for another is an
    /// error naming the variable it would need.
    pub fn url_of(&self, callee: ShopService) -> Result<&Url, ConfigError> {
        self.urls.get(&callee).ok_or_else(|| ConfigError::Missing {
            name: format!(
                "{} ({} does not call {callee})",
                callee.url_env().unwrap_or("a URL"),
                self.name
            ),
        })
    }

    /// Builds the access-token verifier from `TOKEN_PUBLIC_KEY`, checking
    /// [`token_scope`](Self::token_scope); missing or malformed is a
    /// start-up error naming the variable.
    pub fn token_verifier(&self) -> Result<crate::auth::TokenVerifier, ConfigError> {
        let pem = self
            .token_public_key
            .as_deref()
            .ok_or_else(|| ConfigError::Missing {
                name: env::TOKEN_PUBLIC_KEY.to_owned(),
            })?;
        crate::auth::TokenVerifier::from_pem_scoped(pem, &self.token_scope)
            .map_err(|err| ConfigError::invalid_secret(env::TOKEN_PUBLIC_KEY, err))
    }
}

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn read_database<S: Source>(vars: &Vars<S>, database: &str) -> Result<DatabaseConfig, ConfigError> {
    let url = vars
        .secret(env::DATABASE_URL)
        .unwrap_or_else(|| format!("postgres://postgres@127.0.0.1:5432/{database}"));
    Ok(DatabaseConfig {
        url: with_password(vars, env::DATABASE_URL, url, env::DATABASE_PASSWORD)?,
        max_connections: vars.or(env::DATABASE_MAX_CONNECTIONS, 10)?,
    })
}

fn read_redis<S: Source>(vars: &Vars<S>, service: ShopService) -> Result<RedisConfig, ConfigError> {
    let namespace = service.database().unwrap_or(service.name());
    let url = vars
        .secret(env::REDIS_URL)
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
    Ok(RedisConfig {
        url: with_password(vars, env::REDIS_URL, url, env::REDIS_PASSWORD)?,
        prefix: vars.or(env::REDIS_PREFIX, format!("{namespace}:"))?,
    })
}

/// `url` (the value of `url_var`) with the password of `password_var` in
/// it, when that is set: the operator passes a managed store's password as
/// a file and its URL without one. The password is percent-encoded, so any
/// byte is safe.
fn with_password<S: Source>(
    vars: &Vars<S>,
    url_var: &str,
    url: String,
    password_var: &str,
) -> Result<String, ConfigError> {
    let Some(password) = vars.secret(password_var) else {
        return Ok(url);
    };
    let mut parsed = Url::parse(&url).map_err(|err| ConfigError::invalid_secret(url_var, err))?;
    parsed.set_password(Some(&password)).map_err(|()| {
        ConfigError::invalid_secret(url_var, format!("has no host to give {password_var} to"))
    })?;
    Ok(parsed.into())
}

fn read_token_scope<S: Source>(vars: &Vars<S>) -> Result<TokenScope, ConfigError> {
    let scope = TokenScope {
        issuer: vars.optional(env::TOKEN_ISSUER)?,
        audience: vars.optional(env::TOKEN_AUDIENCE)?,
        required: vars.or(env::TOKEN_CLAIMS_REQUIRED, false)?,
    };
    if scope.required && scope.issuer.is_none() && scope.audience.is_none() {
        return Err(ConfigError::Invalid {
            name: env::TOKEN_CLAIMS_REQUIRED.to_owned(),
            value: "true".to_owned(),
            reason: format!(
                "requires {} or {} to be set",
                env::TOKEN_ISSUER,
                env::TOKEN_AUDIENCE
            ),
        });
    }
    Ok(scope)
}

fn read_url<S: Source>(vars: &Vars<S>, callee: ShopService) -> Result<Url, ConfigError> {
    let name = callee.url_env().unwrap_or_default();
    if let Some(url) = vars.optional(name)? {
        return Ok(url);
    }
    let local = callee.local_url();
    Url::parse(&local).map_err(|err| ConfigError::Invalid {
        name: name.to_owned(),
        value: local,
        reason: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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
        let config = ServiceConfig::from_source(&vars(&[]), ShopService::User).unwrap();
        assert_eq!(config.name, "user-service");
        assert_eq!(config.port, 3001);
        assert_eq!(config.admin_port, 9000);
        let database = config.database.unwrap();
        assert_eq!(database.url, "postgres://postgres@127.0.0.1:5432/users");
        assert_eq!(database.max_connections, 10);
        let redis = config.redis.unwrap();
        assert_eq!(redis.url, "redis://127.0.0.1:6379");
        assert_eq!(redis.prefix, "users:");
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert!(config.token_public_key.is_none());
        assert_eq!(config.body_limit, 64 * 1024);
        assert_eq!(config.request_timeout, Duration::from_secs(15));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(25));
        assert_eq!(
            config.trusted_proxy_hops,
            TrustedProxyHops(0),
            "only the socket is believed"
        );
    }

    #[test]
    fn each_service_reads_what_the_contract_says_it_uses() {
        for service in ShopService::ALL {
            let config = ServiceConfig::from_source(&vars(&[]), service).unwrap();
            assert_eq!(config.port, service.port(), "{service}");
            assert_eq!(
                config.database.is_some(),
                service.database().is_some(),
                "{service}"
            );
            assert_eq!(config.redis.is_some(), service.uses_redis(), "{service}");
            assert_eq!(config.events.is_some(), service.uses_broker(), "{service}");
            for callee in ShopService::ALL {
                assert_eq!(
                    config.url_of(callee).is_ok(),
                    service.calls().contains(&callee),
                    "{service} -> {callee}"
                );
            }
        }
        let events = ServiceConfig::from_source(&vars(&[]), ShopService::Order)
            .unwrap()
            .events
            .unwrap();
        assert_eq!(events.amqp_url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(events.exchange, "store.events");
    }

    #[test]
    fn callee_urls_default_to_localhost_and_others_are_refused() {
        let config = ServiceConfig::from_source(&vars(&[]), ShopService::Order).unwrap();
        assert_eq!(
            config.url_of(ShopService::Product).unwrap().as_str(),
            "http://127.0.0.1:3002/"
        );
        assert_eq!(
            config.url_of(ShopService::Payment).unwrap_err().to_string(),
            "missing required environment variable PAYMENT_URL (order-service does not call payment-service)"
        );
        let config = ServiceConfig::from_source(
            &vars(&[("PRODUCT_URL", "http://product:3002")]),
            ShopService::Order,
        )
        .unwrap();
        assert_eq!(
            config.url_of(ShopService::Product).unwrap().as_str(),
            "http://product:3002/"
        );
        let err =
            ServiceConfig::from_source(&vars(&[("PRODUCT_URL", "not a url")]), ShopService::Order)
                .unwrap_err();
        assert!(err.to_string().starts_with("invalid PRODUCT_URL="), "{err}");
    }

    #[test]
    fn environment_overrides_defaults() {
        let config = ServiceConfig::from_source(
            &vars(&[
                ("PORT", "8080"),
                ("ADMIN_PORT", "9100"),
                ("LOG_FORMAT", "json"),
                ("TRUSTED_PROXY_HOPS", "1"),
                ("DATABASE_URL", "postgres://db/products"),
                ("DATABASE_MAX_CONNECTIONS", "3"),
                ("REDIS_PREFIX", "p1:"),
                ("EVENTS_EXCHANGE", "t1"),
            ]),
            ShopService::Product,
        )
        .unwrap();
        assert_eq!((config.port, config.admin_port), (8080, 9100));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.trusted_proxy_hops, TrustedProxyHops(1));
        let database = config.database.unwrap();
        assert_eq!(
            (database.url.as_str(), database.max_connections),
            ("postgres://db/products", 3)
        );
        assert_eq!(config.redis.unwrap().prefix, "p1:");
        assert_eq!(config.events.unwrap().exchange, "t1");
    }

    #[test]
    fn bad_values_are_rejected_with_the_reason() {
        let err = ServiceConfig::from_source(&vars(&[("LOG_FORMAT", "xml")]), ShopService::User)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            r#"invalid LOG_FORMAT="xml": expected `json` or `pretty`"#
        );
        let err = ServiceConfig::from_source(
            &vars(&[("DATABASE_MAX_CONNECTIONS", "many")]),
            ShopService::Payment,
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .starts_with(r#"invalid DATABASE_MAX_CONNECTIONS="many""#),
            "{err}"
        );
    }

    #[test]
    fn telemetry_settings_are_read_and_checked() {
        let config = ServiceConfig::from_source(&vars(&[]), ShopService::Order).unwrap();
        let settings = config.telemetry();
        assert_eq!(settings.service_name, "order-service");
        assert_eq!(settings.sample_ratio, SampleRatio::ALL);
        assert!(settings.logs_endpoint.is_none() && settings.traces_endpoint.is_none());
        let config = ServiceConfig::from_source(
            &vars(&[
                (
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    "http://main-loki:3100/otlp/v1/logs",
                ),
                ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "k8s.namespace.name=shop,service.namespace=main",
                ),
            ]),
            ShopService::Order,
        )
        .unwrap();
        let settings = config.telemetry();
        assert_eq!(
            settings.logs_endpoint.unwrap().as_str(),
            "http://main-loki:3100/otlp/v1/logs"
        );
        assert_eq!(settings.sample_ratio, "0.1".parse().unwrap());
        assert_eq!(
            settings.resource_attributes,
            "k8s.namespace.name=shop,service.namespace=main"
                .parse()
                .unwrap()
        );
        let err = ServiceConfig::from_source(
            &vars(&[("OTEL_TRACES_SAMPLER_ARG", "2")]),
            ShopService::Order,
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            r#"invalid OTEL_TRACES_SAMPLER_ARG="2": expected a number from 0 to 1"#
        );
    }

    #[test]
    fn passwords_are_put_into_their_urls() {
        let config = ServiceConfig::from_source(
            &vars(&[
                ("DATABASE_URL", "postgres://products@db:5432/products"),
                ("DATABASE_PASSWORD", "p@ss/word"),
                ("REDIS_URL", "redis://cache:6379"),
                ("REDIS_PASSWORD", "r3dis"),
                ("AMQP_URL", "amqp://storekeeper@mq:5672/%2f"),
                ("AMQP_PASSWORD", "rabbit"),
            ]),
            ShopService::Product,
        )
        .unwrap();
        assert_eq!(
            config.database.unwrap().url,
            "postgres://products:p%40ss%2Fword@db:5432/products"
        );
        assert_eq!(config.redis.unwrap().url, "redis://:r3dis@cache:6379");
        assert_eq!(
            config.events.unwrap().amqp_url,
            "amqp://storekeeper:rabbit@mq:5672/%2f"
        );
        let err = ServiceConfig::from_source(
            &vars(&[("DATABASE_URL", "not a url"), ("DATABASE_PASSWORD", "x")]),
            ShopService::Product,
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .starts_with(r#"invalid DATABASE_URL="<redacted>": "#),
            "{err}"
        );
    }

    #[test]
    fn debug_output_carries_no_urls() {
        let config = ServiceConfig::from_source(
            &vars(&[
                ("DATABASE_URL", "postgres://u:s3cret@db/products"),
                ("REDIS_URL", "redis://:s3cret@redis"),
                ("AMQP_URL", "amqp://u:s3cret@mq"),
            ]),
            ShopService::Product,
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn token_scope_is_unset_by_default_and_read_when_given() {
        let config = ServiceConfig::from_source(&vars(&[]), ShopService::Payment).unwrap();
        assert_eq!(config.token_scope, TokenScope::default());
        let config = ServiceConfig::from_source(
            &vars(&[
                ("TOKEN_ISSUER", "storekeeper:shop/main"),
                ("TOKEN_AUDIENCE", "storekeeper:shop/main"),
                ("TOKEN_CLAIMS_REQUIRED", "true"),
            ]),
            ShopService::Payment,
        )
        .unwrap();
        assert_eq!(
            config.token_scope,
            TokenScope {
                issuer: Some("storekeeper:shop/main".into()),
                audience: Some("storekeeper:shop/main".into()),
                required: true,
            }
        );
        let err = ServiceConfig::from_source(
            &vars(&[("TOKEN_CLAIMS_REQUIRED", "true")]),
            ShopService::Payment,
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            r#"invalid TOKEN_CLAIMS_REQUIRED="true": requires TOKEN_ISSUER or TOKEN_AUDIENCE to be set"#
        );
    }

    #[test]
    fn the_verifier_checks_the_configured_scope() {
        use crate::auth::{KeyPair, Role, TokenError, TokenSigner};

        let keys = KeyPair::generate().unwrap();
        let config = ServiceConfig {
            token_public_key: Some(keys.public_pem.clone()),
            token_scope: TokenScope {
                issuer: Some("storekeeper:shop/main".into()),
                audience: Some("storekeeper:shop/main".into()),
                required: false,
            },
            ..ServiceConfig::for_tests(ShopService::Order)
        };
        let verifier = config.token_verifier().unwrap();
        let signer = TokenSigner::from_pem(&keys.private_pem).unwrap();
        let other = signer.clone().with_scope(TokenScope {
            issuer: Some("storekeeper:other/main".into()),
            ..config.token_scope.clone()
        });
        let token = other.sign(uuid::Uuid::new_v4(), Role::Customer).unwrap();
        assert_eq!(verifier.verify(&token.token), Err(TokenError::WrongShop));
        let unscoped = signer.sign(uuid::Uuid::new_v4(), Role::Customer).unwrap();
        assert!(verifier.verify(&unscoped.token).is_ok());
    }

    #[test]
    fn token_verifier_requires_the_key() {
        let config = ServiceConfig::for_tests(ShopService::Storefront);
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
