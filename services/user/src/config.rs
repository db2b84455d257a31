//! user-service's own settings, beyond the kit's common ones: the signing
//! key, the login throttle, the refresh-token lifetime and the admin
//! bootstrap account.

use std::time::Duration;

use storekeeper_contract::env;
use storekeeper_kit::{
    ServiceConfig,
    auth::TokenSigner,
    client_ip::TrustedProxyHops,
    config::{ConfigError, Source, Vars},
};

pub use crate::password::HashQueue;

/// Login and registration throttling limits (fixed windows), so password
/// guessing and account-creation floods stay cheap to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed logins allowed per account per window (`LOGIN_MAX_FAILURES_PER_ACCOUNT`, 5).
    pub max_failures_per_account: u32,
    /// Failed logins allowed per client IP per window (`LOGIN_MAX_FAILURES_PER_IP`, 20).
    pub max_failures_per_ip: u32,
    /// Window length (`LOGIN_THROTTLE_WINDOW_SECS`, 900 = 15 min).
    pub window: Duration,
    /// Registrations allowed per client IP per registration window (20):
    /// enough for many shoppers behind one NAT, too few for a scripted flood.
    pub max_registrations_per_ip: u32,
    /// The registration window (10 minutes).
    pub registration_window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures_per_account: 5,
            max_failures_per_ip: 20,
            window: Duration::from_mins(15),
            max_registrations_per_ip: 20,
            registration_window: Duration::from_mins(10),
        }
    }
}

/// Settings the handlers need beyond the connections.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Login and registration throttle limits.
    pub throttle: ThrottleConfig,
    /// How many password jobs may run or wait, per purpose.
    pub hash_queue: HashQueue,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// How long after a rotation the rotated refresh token still buys the
    /// same successor (two tabs refreshing at once), instead of counting as
    /// reuse (10 s).
    pub refresh_reuse_grace: Duration,
    /// Reverse proxies trusted to set `X-Forwarded-For`.
    pub trusted_proxy_hops: TrustedProxyHops,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            throttle: ThrottleConfig::default(),
            hash_queue: HashQueue::default(),
            refresh_ttl: Duration::from_hours(24 * 30),
            refresh_reuse_grace: Duration::from_secs(10),
            trusted_proxy_hops: TrustedProxyHops::default(),
        }
    }
}

/// The admin account created at start (`ADMIN_EMAIL` + `ADMIN_PASSWORD`).
#[derive(Clone)]
pub struct AdminBootstrap {
    /// The admin's email.
    pub email: String,
    /// The admin's password (never logged).
    pub password: String,
}

impl std::fmt::Debug for AdminBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminBootstrap")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// What user-service reads at start besides [`ServiceConfig`].
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// Signs access tokens (`TOKEN_PRIVATE_KEY`, required), with the
    /// Store's issuer and audience when `TOKEN_ISSUER`/`TOKEN_AUDIENCE` are set.
    pub signer: TokenSigner,
    /// The login throttle (`LOGIN_*`), the refresh-token lifetime
    /// (`REFRESH_TOKEN_TTL_DAYS`, 30) and the shared `TRUSTED_PROXY_HOPS`.
    pub settings: Settings,
    /// Admin account to ensure at start, if configured.
    pub admin: Option<AdminBootstrap>,
}

impl UserConfig {
    /// Reads the variables only user-service has; `service` is the common
    /// configuration, whose `TOKEN_PUBLIC_KEY` must match the private key.
    pub fn from_source<S: Source>(
        vars: &Vars<S>,
        service: &ServiceConfig,
    ) -> Result<Self, ConfigError> {
        let private_key =
            vars.secret(env::TOKEN_PRIVATE_KEY)
                .ok_or_else(|| ConfigError::Missing {
                    name: env::TOKEN_PRIVATE_KEY.to_owned(),
                })?;
        // Issuer and audience are signed only when set, so a Store turns
        // them on after every verifier knows them (docs/architecture.md, "Auth").
        let signer = TokenSigner::from_pem(&private_key)
            .map_err(|err| ConfigError::invalid_secret(env::TOKEN_PRIVATE_KEY, err))?
            .with_scope(service.token_scope.clone());
        if let Some(public) = &service.token_public_key {
            let matches = storekeeper_kit::auth::TokenVerifier::from_pem(public)
                .ok()
                .zip(
                    signer
                        .sign(uuid::Uuid::nil(), storekeeper_kit::Role::Customer)
                        .ok(),
                )
                .is_some_and(|(verifier, token)| verifier.verify(&token.token).is_ok());
            if !matches {
                return Err(ConfigError::invalid_secret(
                    env::TOKEN_PUBLIC_KEY,
                    "does not match TOKEN_PRIVATE_KEY",
                ));
            }
        }
        let defaults = ThrottleConfig::default();
        let throttle = ThrottleConfig {
            max_failures_per_account: vars.or(
                env::LOGIN_MAX_FAILURES_PER_ACCOUNT,
                defaults.max_failures_per_account,
            )?,
            max_failures_per_ip: vars
                .or(env::LOGIN_MAX_FAILURES_PER_IP, defaults.max_failures_per_ip)?,
            window: Duration::from_secs(
                vars.or(env::LOGIN_THROTTLE_WINDOW_SECS, defaults.window.as_secs())?,
            ),
            ..defaults
        };
        let admin = match (
            vars.optional::<String>(env::ADMIN_EMAIL)?,
            vars.secret(env::ADMIN_PASSWORD),
        ) {
            (Some(email), Some(password)) => Some(AdminBootstrap { email, password }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: "ADMIN_PASSWORD (ADMIN_EMAIL is set)".to_owned(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: "ADMIN_EMAIL (ADMIN_PASSWORD is set)".to_owned(),
                });
            }
        };
        let refresh_ttl_days: u64 = vars.or(env::REFRESH_TOKEN_TTL_DAYS, 30)?;
        Ok(Self {
            signer,
            settings: Settings {
                throttle,
                refresh_ttl: Duration::from_hours(24 * refresh_ttl_days),
                trusted_proxy_hops: service.trusted_proxy_hops,
                ..Settings::default()
            },
            admin,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use storekeeper_contract::ShopService;
    use storekeeper_kit::auth::KeyPair;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<UserConfig, ConfigError> {
        let vars = Vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<String, String>>(),
        );
        let service = ServiceConfig::from_source(&vars, ShopService::User)?;
        UserConfig::from_source(&vars, &service)
    }

    #[test]
    fn the_private_key_is_required() {
        let err = read(&[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing required environment variable TOKEN_PRIVATE_KEY"
        );
        let err = read(&[("TOKEN_PRIVATE_KEY", "nope")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid TOKEN_PRIVATE_KEY=\"<redacted>\""),
            "{err}"
        );
    }

    #[test]
    fn defaults_and_overrides() {
        let keys = KeyPair::generate().unwrap();
        let config = read(&[("TOKEN_PRIVATE_KEY", &keys.private_pem)]).unwrap();
        assert_eq!(config.settings.throttle, ThrottleConfig::default());
        assert!(config.admin.is_none());
        let config = read(&[
            ("TOKEN_PRIVATE_KEY", &keys.private_pem),
            ("TOKEN_PUBLIC_KEY", &keys.public_pem),
            ("LOGIN_THROTTLE_WINDOW_SECS", "2"),
            ("ADMIN_EMAIL", "root@example.com"),
            ("ADMIN_PASSWORD", "correct horse battery"),
        ])
        .unwrap();
        assert_eq!(config.settings.throttle.window, Duration::from_secs(2));
        assert_eq!(config.admin.unwrap().email, "root@example.com");
    }

    #[test]
    fn tokens_carry_the_issuer_and_audience_only_when_set() {
        let keys = KeyPair::generate().unwrap();
        let user = uuid::Uuid::new_v4();
        let plain = read(&[("TOKEN_PRIVATE_KEY", &keys.private_pem)]).unwrap();
        let token = plain.signer.sign(user, storekeeper_kit::Role::Customer);
        let claims = plain
            .signer
            .verifier()
            .unwrap()
            .verify(&token.unwrap().token)
            .unwrap();
        assert_eq!((claims.iss, claims.aud), (None, None));

        let scoped = read(&[
            ("TOKEN_PRIVATE_KEY", &keys.private_pem),
            ("TOKEN_PUBLIC_KEY", &keys.public_pem),
            ("TOKEN_ISSUER", "storekeeper:shop/main"),
            ("TOKEN_AUDIENCE", "storekeeper:shop/main"),
        ])
        .unwrap();
        let token = scoped.signer.sign(user, storekeeper_kit::Role::Customer);
        let claims = scoped
            .signer
            .verifier()
            .unwrap()
            .verify(&token.unwrap().token)
            .unwrap();
        assert_eq!(claims.iss.as_deref(), Some("storekeeper:shop/main"));
        assert_eq!(claims.aud.as_deref(), Some("storekeeper:shop/main"));
    }

    #[test]
    fn mismatched_public_key_is_refused() {
        let keys = KeyPair::generate().unwrap();
        let other = KeyPair::generate().unwrap();
        let err = read(&[
            ("TOKEN_PRIVATE_KEY", &keys.private_pem),
            ("TOKEN_PUBLIC_KEY", &other.public_pem),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("does not match TOKEN_PRIVATE_KEY"),
            "{err}"
        );
    }

    #[test]
    fn half_an_admin_is_an_error() {
        let keys = KeyPair::generate().unwrap();
        let err = read(&[
            ("TOKEN_PRIVATE_KEY", &keys.private_pem),
            ("ADMIN_EMAIL", "a@b.c"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("ADMIN_PASSWORD"), "{err}");
    }
}
