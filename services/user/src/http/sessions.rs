//! Sessions: `POST /api/users/login`, `/refresh` (rotates the refresh
//! token) and `/logout`.

use std::net::{IpAddr, Ipv4Addr};

use axum::{Router, extract::State, http::StatusCode, routing::post};
use serde::Serialize;
use storekeeper_kit::{
    ApiError, ApiResult, FieldError, Role, client_ip::ClientIp, extract::Json, problem::Problem,
};
use uuid::Uuid;

use super::{hash_error, secret::Secret};
use crate::{
    password::{HashError, Passwords, Purpose},
    state::AppState,
    store,
    throttle::Verdict,
    tokens::{self, RotateError},
    validate::normalize_email,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/login", post(login))
        .route("/api/users/refresh", post(refresh))
        .route("/api/users/logout", post(logout))
}

/// `POST /api/users/login` body.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub(super) struct LoginRequest {
    /// Email address (any case).
    email: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    password: Secret,
}

/// `POST /api/users/refresh` and `/logout` body.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub(super) struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    #[schema(value_type = String)]
    refresh_token: Secret,
}

/// Tokens issued by login and refresh.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct TokenResponse {
    /// Ed25519-signed JWT for `Authorization: Bearer`.
    access_token: String,
    /// Opaque, single-use token for `POST /api/users/refresh`.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: u64,
}

/// Signs an access token for `user` and pairs it with `refresh`.
pub(super) fn issue_tokens(
    state: &AppState,
    user: Uuid,
    role: Role,
    refresh: String,
) -> ApiResult<TokenResponse> {
    let access = state.signer.sign(user, role).map_err(ApiError::internal)?;
    Ok(TokenResponse {
        access_token: access.token,
        refresh_token: refresh,
        token_type: "Bearer".to_owned(),
        expires_in: access.expires_in,
    })
}

/// The address a request is throttled by. Only a request that came over no
/// socket (a router test) has none; such requests share one bucket.
pub(super) fn client_or_unspecified(ip: Option<IpAddr>) -> IpAddr {
    ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid-credentials",
        "Invalid credentials",
    )
    .with_detail("the email or password is incorrect")
}

/// Log in with email and password.
#[utoipa::path(
    post, path = "/api/users/login", tag = "users",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many passwords being checked; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let ip = client_or_unspecified(ip);
    let email = normalize_email(&request.email);
    let mut missing = Vec::new();
    if email.is_empty() {
        missing.push(FieldError::new("email", "is required"));
    }
    if request.password.expose().is_empty() {
        missing.push(FieldError::new("password", "is required"));
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(missing));
    }
    // Counted before the password is checked, atomically: of a burst of
    // parallel guesses only the first `limit` reach Argon2.
    if let Verdict::Blocked { retry_after, scope } = state.throttle.login_attempt(&email, ip).await
    {
        state.metrics.login("throttled");
        tracing::warn!(%ip, scope, retry_after, "login throttled");
        return Err(ApiError::too_many_requests(
            retry_after,
            format!("too many failed logins; try again in {retry_after} seconds"),
        ));
    }
    let credentials = store::credentials(&state.db, &email).await?;
    let stored = credentials.as_ref().map(|c| c.password_hash.clone());
    let password = request.password.into_inner();
    let valid = match state
        .passwords
        .verify(Purpose::Login, password.clone(), stored)
        .await
    {
        Ok(valid) => valid,
        Err(err) => {
            if matches!(err, HashError::Busy) {
                state.throttle.login_unchecked(&email, ip).await;
            }
            return Err(hash_error(err));
        }
    };
    let Some(credentials) = credentials.filter(|_| valid) else {
        state.metrics.login("failed");
        tracing::info!(%ip, "login failed");
        return Err(invalid_credentials());
    };
    state.throttle.login_succeeded(&email, ip).await;
    if Passwords::needs_rehash(&credentials.password_hash) {
        match state.passwords.hash(Purpose::Login, password).await {
            Ok(hash) => store::set_password_hash(&state.db, credentials.id, &hash).await?,
            // The upgrade waits for a quieter login.
            Err(HashError::Busy) => {}
            Err(err) => return Err(ApiError::internal(err)),
        }
    }
    let refresh = tokens::issue(&state.db, credentials.id, state.refresh_ttl).await?;
    state.metrics.login("succeeded");
    tracing::info!(user_id = %credentials.id, "logged in");
    issue_tokens(&state, credentials.id, credentials.role, refresh).map(Json)
}

/// Exchange a refresh token for new tokens (the old one stops working).
#[utoipa::path(
    post, path = "/api/users/refresh", tag = "users",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn refresh(
    State(state): State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let rotation = tokens::rotate(
        &state.db,
        request.refresh_token.expose(),
        state.refresh_ttl,
        state.refresh_reuse_grace,
    )
    .await;
    match rotation {
        Ok(rotated) => {
            state
                .metrics
                .refresh(if rotated.again { "grace" } else { "succeeded" });
            issue_tokens(&state, rotated.user_id, rotated.role, rotated.token).map(Json)
        }
        Err(RotateError::Database(err)) => Err(err.into()),
        Err(err) => {
            state
                .metrics
                .refresh(if matches!(err, RotateError::Reused) {
                    "reused"
                } else {
                    "invalid"
                });
            Err(ApiError::unauthorized(err.to_string()))
        }
    }
}

/// Log out: revoke the refresh token and every token rotated from the same login.
#[utoipa::path(
    post, path = "/api/users/logout", tag = "users",
    request_body = RefreshRequest,
    responses((status = 204, description = "Logged out (also for unknown tokens)"))
)]
pub(super) async fn logout(
    State(state): State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    tokens::revoke(&state.db, request.refresh_token.expose()).await?;
    Ok(StatusCode::NO_CONTENT)
}
