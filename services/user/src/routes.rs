//! The HTTP handlers under `/api/users`.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

use storekeeper_kit::{
    ApiError, ApiResult, AuthUser, FieldError, Role, client_ip::ClientIp, extract::Json,
    problem::Problem,
};
use uuid::Uuid;

use crate::{
    AppState,
    password::Passwords,
    throttle::Verdict,
    tokens::{self, RotateError},
    users::{self, User},
    validate::{check_registration, normalize_email},
};

/// A secret string from a request: deserializes like a `String`, never
/// prints (so a `Debug` of a request can reach a log safely).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// `POST /api/users` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RegisterRequest {
    /// Email address; trimmed and lower-cased, must be unique.
    #[schema(example = "ann@example.com")]
    pub email: String,
    /// 10 to 128 characters, at least two kinds (lower, upper, digits,
    /// symbols), not containing the email.
    #[schema(value_type = String, format = Password, example = "correct-horse-7")]
    pub password: Secret,
    /// Display name, 1 to 100 characters.
    #[schema(example = "Ann Lee")]
    pub name: String,
}

/// `POST /api/users/login` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    /// Email address (any case).
    pub email: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: Secret,
}

/// `POST /api/users/refresh` and `/logout` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    #[schema(value_type = String)]
    pub refresh_token: Secret,
}

/// Tokens issued by login and refresh.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// Ed25519-signed JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque, single-use token for `POST /api/users/refresh`.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

fn issue_tokens(
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

/// Register an account.
#[utoipa::path(
    post, path = "/api/users", tag = "users",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = User),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    Json(request): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let account = check_registration(&request.email, &request.password.0, &request.name)
        .map_err(ApiError::validation)?;
    let hash = state
        .passwords
        .hash(request.password.0)
        .await
        .map_err(ApiError::internal)?;
    let user = users::insert(&state.db, &account, &hash, Role::Customer).await?;
    state.metrics.registrations.inc();
    tracing::info!(user_id = %user.id, "account registered");
    Ok((StatusCode::CREATED, Json(user)))
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
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    // Only a request that came over no socket (a router test) has no
    // address; such requests share one throttle bucket.
    let ip = ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let email = normalize_email(&request.email);
    let mut missing = Vec::new();
    if email.is_empty() {
        missing.push(FieldError::new("email", "is required"));
    }
    if request.password.0.is_empty() {
        missing.push(FieldError::new("password", "is required"));
    }
    if !missing.is_empty() {
        return Err(ApiError::validation(missing));
    }
    if let Verdict::Blocked { retry_after, scope } = state.throttle.check(&email, ip).await {
        state.metrics.login("throttled");
        tracing::warn!(%ip, scope, retry_after, "login throttled");
        return Err(ApiError::too_many_requests(
            retry_after,
            format!("too many failed logins; try again in {retry_after} seconds"),
        ));
    }
    let credentials = users::credentials(&state.db, &email).await?;
    let stored = credentials.as_ref().map(|c| c.password_hash.clone());
    let valid = state
        .passwords
        .verify(request.password.0.clone(), stored)
        .await
        .map_err(ApiError::internal)?;
    let Some(credentials) = credentials.filter(|_| valid) else {
        state.throttle.record_failure(&email, ip).await;
        state.metrics.login("failed");
        tracing::info!(%ip, "login failed");
        return Err(invalid_credentials());
    };
    state.throttle.reset_account(&email).await;
    if Passwords::needs_rehash(&credentials.password_hash) {
        let hash = state
            .passwords
            .hash(request.password.0)
            .await
            .map_err(ApiError::internal)?;
        users::set_password_hash(&state.db, credentials.id, &hash).await?;
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
pub async fn refresh(
    State(state): State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    match tokens::rotate(&state.db, &request.refresh_token.0, state.refresh_ttl).await {
        Ok(rotated) => {
            state.metrics.refresh("succeeded");
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
pub async fn logout(
    State(state): State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    tokens::revoke(&state.db, &request.refresh_token.0).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account.
#[utoipa::path(
    get, path = "/api/users/me", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account no longer exists", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<User>> {
    users::find(&state.db, user.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("this account no longer exists"))
}
