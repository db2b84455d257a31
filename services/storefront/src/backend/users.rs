//! user-service: register, log in, refresh and revoke tokens, who am I.

use std::net::IpAddr;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use storekeeper_contract::ShopService;

use super::{Backend, BackendResult};

/// A pair of tokens from login or refresh.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Tokens {
    /// Short-lived bearer token for the APIs.
    pub(crate) access_token: String,
    /// Long-lived token that buys a new pair (rotated on each use).
    pub(crate) refresh_token: String,
    /// Seconds until `access_token` expires.
    pub(crate) expires_in: i64,
}

/// The logged-in account, as `GET /api/users/me` describes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Me {
    /// The login e-mail (the account page shows it).
    #[serde(default)]
    pub(crate) email: String,
    pub(crate) name: String,
    /// `customer` or `admin`.
    pub(crate) role: String,
}

/// What the registration form sends.
#[derive(Debug, Serialize)]
pub(crate) struct NewAccount<'a> {
    pub(crate) email: &'a str,
    /// Chosen password (checked by user-service).
    pub(crate) password: &'a str,
    pub(crate) name: &'a str,
}

#[derive(Serialize)]
struct Credentials<'a> {
    email: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
struct PasswordChange<'a> {
    current_password: &'a str,
    new_password: &'a str,
}

#[derive(Serialize)]
struct RefreshBody<'a> {
    refresh_token: &'a str,
}

impl Backend {
    /// `POST /api/users`: creates a customer account. `shopper` is passed
    /// on like at login, for user-service's per-IP registration limit.
    pub(crate) async fn register(
        &self,
        account: &NewAccount<'_>,
        shopper: Option<IpAddr>,
    ) -> BackendResult<()> {
        let mut call = self
            .request(ShopService::User, Method::POST, "/api/users")
            .json(account);
        if let Some(ip) = shopper {
            call = call.header("x-forwarded-for", &ip.to_string());
        }
        call.execute().await
    }

    /// `POST /api/users/login`; `shopper` is the shopper's address, passed
    /// on in `X-Forwarded-For` for user-service's per-IP limit (the
    /// storefront is the one proxy user-service trusts on this path).
    pub(crate) async fn login(
        &self,
        email: &str,
        password: &str,
        shopper: Option<IpAddr>,
    ) -> BackendResult<Tokens> {
        let mut call = self
            .request(ShopService::User, Method::POST, "/api/users/login")
            .json(&Credentials { email, password });
        if let Some(ip) = shopper {
            call = call.header("x-forwarded-for", &ip.to_string());
        }
        call.fetch().await
    }

    /// `POST /api/users/refresh`: trades a refresh token for a new pair.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> BackendResult<Tokens> {
        self.request(ShopService::User, Method::POST, "/api/users/refresh")
            .json(&RefreshBody { refresh_token })
            .fetch()
            .await
    }

    /// `POST /api/users/logout`: revokes the refresh token.
    pub(crate) async fn logout(
        &self,
        access_token: &str,
        refresh_token: &str,
    ) -> BackendResult<()> {
        self.request(ShopService::User, Method::POST, "/api/users/logout")
            .bearer(access_token)
            .json(&RefreshBody { refresh_token })
            .execute()
            .await
    }

    /// `PUT /api/users/me/password`: user-service ends every login of the
    /// account and answers with a fresh one for this session.
    pub(crate) async fn change_password(
        &self,
        access_token: &str,
        current_password: &str,
        new_password: &str,
    ) -> BackendResult<Tokens> {
        self.request(ShopService::User, Method::PUT, "/api/users/me/password")
            .bearer(access_token)
            .json(&PasswordChange {
                current_password,
                new_password,
            })
            .fetch()
            .await
    }

    /// `GET /api/users/me`.
    pub(crate) async fn me(&self, access_token: &str) -> BackendResult<Me> {
        self.request(ShopService::User, Method::GET, "/api/users/me")
            .bearer(access_token)
            .fetch()
            .await
    }
}
