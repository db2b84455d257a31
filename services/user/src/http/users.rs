//! Accounts: `POST /api/users` (register) and `GET /api/users/me`.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use serde::Deserialize;
use storekeeper_kit::{ApiError, ApiResult, AuthUser, extract::Json, problem::Problem};

use super::secret::Secret;
use crate::{
    state::AppState,
    store::{self, User},
    users::{self, RegisterError},
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", post(register))
        .route("/api/users/me", get(me))
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
            RegisterError::Hash(err) => ApiError::internal(err),
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
    )
)]
pub(super) async fn register(
    State(state): State<AppState>,
    Json(request): Json<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = users::register(
        &state.db,
        &state.passwords,
        &request.email,
        request.password.into_inner(),
        &request.name,
    )
    .await?;
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
