//! Accounts: `POST /api/users` (register), `GET /api/users/me` and
//! `PUT /api/users/me/password`.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post, put},
};
use serde::Deserialize;
use storekeeper_kit::{
    ApiError, ApiResult, AuthUser, FieldError, client_ip::ClientIp, extract::Json, problem::Problem,
};

use super::{
    hash_error,
    secret::Secret,
    sessions::{TokenResponse, client_or_unspecified, issue_tokens},
};
use crate::{
    password::{HashError, Purpose},
    state::AppState,
    store::{self, User},
    throttle::Verdict,
    tokens,
    users::{self, RegisterError},
    validate::check_password,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", post(register))
        .route("/api/users/me", get(me))
        .route("/api/users/me/password", put(change_password))
}

/// `POST /api/users` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct RegisterRequest {
    /// Email address; trimmed and lower-cased, must be unique.
    #[schema(example = "ann@example.com")]
    email: String,
    /// 10 to 128 characters, at least two kinds (lower, upper, digits,
    /// symbols), not containing the email.
    #[schema(value_type = String, format = Password, example = "correct-horse-7")]
    password: Secret,
    /// Display name, 1 to 100 characters.
    #[schema(example = "Ann Lee")]
    name: String,
}

impl From<RegisterError> for ApiError {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::Invalid(errors) => ApiError::validation(errors),
            RegisterError::EmailTaken => ApiError::conflict(err.to_string()),
            RegisterError::Hash(err) => hash_error(err),
            RegisterError::Database(err) => err.into(),
        }
    }
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
        (status = 429, description = "Too many registrations from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many passwords being hashed; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let account = users::check(&request.email, request.password.expose(), &request.name)?;
    let ip = client_or_unspecified(ip);
    if let Verdict::Blocked { retry_after, .. } = state.throttle.registration_attempt(ip).await {
        state.metrics.registrations_throttled.inc();
        tracing::warn!(%ip, retry_after, "registration throttled");
        return Err(ApiError::too_many_requests(
            retry_after,
            format!("too many new accounts from this address; try again in {retry_after} seconds"),
        ));
    }
    let created = users::create(
        &state.db,
        &state.passwords,
        &account,
        request.password.into_inner(),
    )
    .await;
    if matches!(created, Err(RegisterError::Hash(HashError::Busy))) {
        state.throttle.registration_unhashed(ip).await;
    }
    let user = created?;
    state.metrics.registrations.inc();
    tracing::info!(user_id = %user.id, "account registered");
    Ok((StatusCode::CREATED, Json(user)))
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
pub(super) async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<User>> {
    store::find_user(&state.db, user.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("this account no longer exists"))
}

/// `PUT /api/users/me/password` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct ChangePasswordRequest {
    /// The password in use now (a stolen access token alone cannot change it).
    #[schema(value_type = String, format = Password)]
    current_password: Secret,
    /// The new password: the registration rules, and not the current one.
    #[schema(value_type = String, format = Password)]
    new_password: Secret,
}

/// Change the caller's password. Every login of the account ends (their
/// refresh tokens are revoked; access tokens already issued run out within
/// 15 minutes) and the caller gets a fresh login in the answer.
#[utoipa::path(
    put, path = "/api/users/me/password", tag = "users",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; the caller's new tokens", body = TokenResponse),
        (status = 401, description = "Missing, invalid or expired access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The account no longer exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong current password or an unacceptable new one, by field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords for this account; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many passwords being hashed; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    user: AuthUser,
    Json(request): Json<ChangePasswordRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let ip = client_or_unspecified(ip);
    let account = store::find_user(&state.db, user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("this account no longer exists"))?;
    let current = request.current_password.into_inner();
    let new = request.new_password.into_inner();
    let mut errors = Vec::new();
    if current.is_empty() {
        errors.push(FieldError::new("current_password", "is required"));
    }
    if let Err(message) = check_password(&new, &account.email) {
        errors.push(FieldError::new("new_password", message));
    } else if new == current {
        errors.push(FieldError::new(
            "new_password",
            "must differ from the current password",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // The current password is guessed like a login's: same throttle.
    if let Verdict::Blocked { retry_after, scope } =
        state.throttle.login_attempt(&account.email, ip).await
    {
        tracing::warn!(%ip, scope, retry_after, "password change throttled");
        return Err(ApiError::too_many_requests(
            retry_after,
            format!("too many wrong passwords; try again in {retry_after} seconds"),
        ));
    }
    let stored = store::credentials(&state.db, &account.email)
        .await?
        .map(|credentials| credentials.password_hash);
    let valid = state
        .passwords
        .verify(Purpose::Login, current, stored)
        .await
        .map_err(hash_error)?;
    if !valid {
        return Err(ApiError::validation(vec![FieldError::new(
            "current_password",
            "is not your current password",
        )]));
    }
    state.throttle.login_succeeded(&account.email, ip).await;
    let hash = state
        .passwords
        .hash(Purpose::Account, new)
        .await
        .map_err(hash_error)?;
    let refresh =
        tokens::restart_after_password_change(&state.db, user.id, &hash, state.refresh_ttl).await?;
    state.metrics.password_changes.inc();
    tracing::info!(user_id = %user.id, "password changed; every other login ended");
    issue_tokens(&state, user.id, account.role, refresh).map(Json)
}
