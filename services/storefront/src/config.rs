//! The storefront's settings: the common service settings plus where the four
//! APIs live and how the session cookie is protected.

use axum_extra::extract::cookie::Key;
use base64::{Engine, engine::general_purpose};
use storekeeper_contract::ShopService;
use storekeeper_kit::{
    ServiceConfig,
    config::{ConfigError, ProcessEnv, Source, Vars},
};
use url::Url;

use crate::backend::BackendUrls;

/// Port the storefront listens on by default (DESIGN.md).
pub const DEFAULT_PORT: u16 = 3000;

/// Everything the storefront reads at start.
#[derive(Clone)]
pub struct Config {
    /// Port, admin port, log format, timeouts.
    pub service: ServiceConfig,
    /// `USER_URL`, `PRODUCT_URL`, `ORDER_URL`, `PAYMENT_URL`.
    pub urls: BackendUrls,
    /// `SESSION_KEY`: base64 of at least 64 random bytes; encrypts the cookie.
    pub session_key: Key,
    /// True when `SESSION_KEY` was unset and a random key was made (sessions
    /// then end when the process restarts: fine locally, not in a cluster).
    pub session_key_generated: bool,
    /// `COOKIE_SECURE=true` behind TLS: the cookie is sent over HTTPS only.
    pub cookie_secure: bool,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Vars(ProcessEnv))
    }

    /// Reads any [`Source`] (tests).
    pub fn from_source<S: Source>(vars: &Vars<S>) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_source(vars, ShopService::Storefront)?;
        let urls = BackendUrls::from([
            (ShopService::User, vars.or("USER_URL", local(3001))?),
            (ShopService::Product, vars.or("PRODUCT_URL", local(3002))?),
            (ShopService::Order, vars.or("ORDER_URL", local(8001))?),
            (ShopService::Payment, vars.or("PAYMENT_URL", local(8002))?),
        ]);
        let (session_key, session_key_generated) = match vars.secret("SESSION_KEY") {
            Some(encoded) => (decode_key(&encoded)?, false),
            None => (Key::generate(), true),
        };
        Ok(Self {
            service,
            urls,
            session_key,
            session_key_generated,
            cookie_secure: vars.or("COOKIE_SECURE", false)?,
        })
    }
}

fn local(port: u16) -> Url {
    // A literal address with a port always parses.
    Url::parse(&format!("http://127.0.0.1:{port}")).unwrap_or_else(|_| unreachable!())
}

fn decode_key(encoded: &str) -> Result<Key, ConfigError> {
    let bytes = general_purpose::STANDARD
        .decode(encoded.trim())
        .or_else(|_| general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim()))
        .map_err(|err| ConfigError::invalid_secret("SESSION_KEY", format!("not base64: {err}")))?;
    Key::try_from(bytes.as_slice()).map_err(|_| {
        ConfigError::invalid_secret(
            "SESSION_KEY",
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
        assert_eq!(config.service.port, 3000);
        assert_eq!(
            config.urls[&ShopService::Product].as_str(),
            "http://127.0.0.1:3002/"
        );
        assert_eq!(
            config.urls[&ShopService::Order].as_str(),
            "http://127.0.0.1:8001/"
        );
        assert!(config.session_key_generated);
        assert!(!config.cookie_secure);
    }

    #[test]
    fn session_key_must_be_long_enough() {
        let short = general_purpose::STANDARD.encode([7_u8; 16]);
        let vars = Vars(HashMap::from([("SESSION_KEY", short.as_str())]));
        let err = Config::from_source(&vars).err().unwrap();
        assert!(err.to_string().contains("SESSION_KEY"), "{err}");
        assert!(!err.to_string().contains(&short), "the key is never echoed");

        let good = general_purpose::STANDARD.encode([7_u8; 64]);
        let vars = Vars(HashMap::from([("SESSION_KEY", good.as_str())]));
        assert!(!Config::from_source(&vars).unwrap().session_key_generated);
    }

    #[test]
    fn malformed_urls_name_the_variable() {
        let vars = Vars(HashMap::from([("ORDER_URL", "not a url")]));
        let err = Config::from_source(&vars).err().unwrap();
        assert!(err.to_string().contains("ORDER_URL"), "{err}");
    }
}
