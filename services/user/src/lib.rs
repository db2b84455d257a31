//! user-service: accounts, login, and the tokens every other service trusts.
//!
//! Routes: `POST /api/users` (register), `POST /api/users/login`,
//! `POST /api/users/refresh` (rotates), `POST /api/users/logout`,
//! `GET /api/users/me`, `PUT /api/users/me/password` (ends every other
//! login), and `GET /openapi.json`. Passwords are Argon2id
//! hashes; access tokens are 15-minute Ed25519 JWTs; refresh tokens are
//! opaque, stored hashed, rotated on use, and a reused one revokes its
//! login's whole family (after a 10 s grace window for concurrent tabs).
//! Login attempts are throttled per account and per IP, registrations per
//! IP, and password hashing runs behind a queue bounded per purpose.
//!
//! Modules: `validate` (input rules, pure), `password` (Argon2id),
//! `users` (registration, the admin bootstrap), `tokens` (refresh-token
//! families), `throttle` (failed logins, in Redis), `store` (SQL), `state`
//! (what handlers reach), `http` (handlers, OpenAPI), `config`, `metrics`.

pub mod config;
mod http;
mod metrics;
pub mod password;
mod state;
mod store;
mod throttle;
mod tokens;
pub mod users;
mod validate;

use axum::Router;
use sqlx::migrate::Migrator;

pub use config::Settings;
pub use state::{AppState, StateError};

/// The embedded schema migrations, applied at start.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// The public API router (the kit adds the common layers when serving).
pub fn app(state: AppState) -> Router {
    http::router(state)
}
