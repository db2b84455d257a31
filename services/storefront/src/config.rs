//! The storefront's settings: the common service settings (which carry the
//! base URL of every service the storefront calls) plus how the session
//! cookie is protected.

use axum_extra::extract::cookie::Key;
use base64::{Engine, engine::general_purpose};
use storekeeper_contract::{ShopService, env};
use storekeeper_kit::{
    ServiceConfig,
    config::{ConfigError, Source, Vars},
};

use crate::backend::BackendUrls;

/// Everything the storefront reads at start.
#[derive(Clone)]
pub struct Config {
    pub(crate) service: ServiceConfig,
    pub(crate) urls: BackendUrls,
    pub(crate) session_key: Key,
    /// True when `SESSION_KEY` was unset and a random key was made (sessions
    /// then end when the process restarts: fine locally, not in a cluster).
    pub session_key_generated: bool,
    /// Behind TLS the cookie is sent over HTTPS only.
    pub(crate) cookie_secure: bool,
}

impl Config {
    /// Reads the common settings and the storefront's own from `vars` (a
    /// map in tests).
    pub fn from_source<S: Source>(vars: &Vars<S>) -> Result<Self, ConfigError> {
        Self::new(
            ServiceConfig::from_source(vars, ShopService::Storefront)?,
            vars,
        )
    }

    /// The storefront's own settings from `vars` beside the common ones the
    /// runner already read (`Setup::config()` at start).
    pub fn new<S: Source>(service: ServiceConfig, vars: &Vars<S>) -> Result<Self, ConfigError> {
        let urls = ShopService::Storefront
            .calls()
            .iter()
            .map(|&callee| Ok((callee, service.url_of(callee)?.clone())))
            .collect::<Result<BackendUrls, ConfigError>>()?;
        let (session_key, session_key_generated) = match vars.secret(env::SESSION_KEY) {
            Some(encoded) => (decode_key(&encoded)?, false),
            None => (Key::generate(), true),
        };
        Ok(Self {
            service,
            urls,
            session_key,
            session_key_generated,
            cookie_secure: vars.or(env::COOKIE_SECURE, false)?,
        })
    }
}

/// `SESSION_KEY` is base64 of at least 64 random bytes; it encrypts the cookie.
fn decode_key(encoded: &str) -> Result<Key, ConfigError> {
    let bytes = general_purpose::STANDARD
        .decode(encoded.trim())
        .or_else(|_| general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim()))
        .map_err(|err| {
            ConfigError::invalid_secret(env::SESSION_KEY, format!("not base64: {err}"))
        })?;
    Key::try_from(bytes.as_slice()).map_err(|_| {
        ConfigError::invalid_secret(
            env::SESSION_KEY,
            "must be at least 64 random bytes, base64-encoded (e.g. `openssl rand -base64 64`)",
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn defaults_point_at_localhost() {
        let config = Config::from_source(&Vars(HashMap::<String, String>::new())).unwrap();
        assert_eq!(config.service.port, ShopService::Storefront.port());
        for callee in ShopService::Storefront.calls() {
            assert_eq!(
                config.urls[callee].as_str().trim_end_matches('/'),
                callee.local_url()
            );
        }
        assert!(config.session_key_generated);
        assert!(!config.cookie_secure);
    }

    #[test]
    fn every_backend_the_pages_call_has_a_url() {
        let config = Config::from_source(&Vars(HashMap::<String, String>::new())).unwrap();
        for backend in ShopService::BACKENDS {
            assert!(config.urls.contains_key(&backend), "{backend}");
        }
    }

    #[test]
    fn session_key_must_be_long_enough() {
        let short = general_purpose::STANDARD.encode([7_u8; 16]);
        let vars = Vars(HashMap::from([(env::SESSION_KEY, short.as_str())]));
        let err = Config::from_source(&vars).err().unwrap();
        assert!(err.to_string().contains(env::SESSION_KEY), "{err}");
        assert!(!err.to_string().contains(&short), "the key is never echoed");

        let good = general_purpose::STANDARD.encode([7_u8; 64]);
        let vars = Vars(HashMap::from([(env::SESSION_KEY, good.as_str())]));
        assert!(!Config::from_source(&vars).unwrap().session_key_generated);
    }

    #[test]
    fn malformed_urls_name_the_variable() {
        let order_url = ShopService::Order.url_env().unwrap();
        let vars = Vars(HashMap::from([(order_url, "not a url")]));
        let err = Config::from_source(&vars).err().unwrap();
        assert!(err.to_string().contains(order_url), "{err}");
    }
}
