//! The dead-letter endpoints of the admin port, so an operator can see and
//! fix what the consumers gave up on without broker credentials:
//!
//! - `GET /admin/dead-letters` → `{"queues":[{"consumer","queue","depth"}]}`;
//! - `GET /admin/dead-letters/{consumer}?limit=50` → `{"consumer","depth",
//!   "messages":[{event_id, event_type, cause, reason, attempts,
//!   dead_lettered_at, body}]}`, left in place;
//! - `POST /admin/dead-letters/{consumer}/replay`, with no body (everything)
//!   or `{"event_ids":[…]}` → `{"consumer","replayed","event_ids","remaining"}`.
//!
//! Errors are problem+json: 404 for an unknown consumer, 400/422 for a bad
//! body or query, 503 while the broker is unreachable.

use std::collections::HashSet;

use axum::{
    Router,
    body::Bytes,
    extract::State,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::dead_letters::{DeadLetter, DeadLetterError, DeadLetters, Replayed, Selection};
use crate::{
    ApiError, ApiResult,
    extract::{Json, Path, Query, parse_json},
};

/// Where the endpoints live on the admin port.
pub const DEAD_LETTERS_PATH: &str = "/admin/dead-letters";

/// Messages listed when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;

/// The admin routes over `dead_letters`; merge them into the admin router.
pub fn router(dead_letters: DeadLetters) -> Router {
    Router::new()
        .route(DEAD_LETTERS_PATH, get(overview))
        .route(&format!("{DEAD_LETTERS_PATH}/{{consumer}}"), get(list))
        .route(
            &format!("{DEAD_LETTERS_PATH}/{{consumer}}/replay"),
            post(replay),
        )
        .with_state(dead_letters)
}

/// One dead-letter queue in the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// The consumer (`order.saga`).
    pub consumer: String,
    /// Its dead-letter queue (`order.saga.dlq`).
    pub queue: String,
    /// Messages waiting there.
    pub depth: u32,
}

/// `GET /admin/dead-letters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    /// Every consumer's dead-letter queue.
    pub queues: Vec<QueueDepth>,
}

/// `GET /admin/dead-letters/{consumer}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The consumer.
    pub consumer: String,
    /// Messages waiting in its dead-letter queue.
    pub depth: u32,
    /// The oldest of them, up to `limit`.
    pub messages: Vec<DeadLetter>,
}

/// The query of a listing.
#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

/// The body of a replay; absent means every dead letter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    event_ids: Vec<Uuid>,
}

async fn overview(State(dead_letters): State<DeadLetters>) -> ApiResult<Json<Overview>> {
    let depths = dead_letters.depths().await.map_err(problem)?;
    Ok(Json(Overview {
        queues: depths
            .into_iter()
            .map(|(consumer, depth)| QueueDepth {
                queue: super::topology::dead_letter_queue(&consumer),
                consumer,
                depth,
            })
            .collect(),
    }))
}

async fn list(
    State(dead_letters): State<DeadLetters>,
    Path(consumer): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Listing>> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let (depth, messages) = dead_letters.list(&consumer, limit).await.map_err(problem)?;
    Ok(Json(Listing {
        consumer,
        depth,
        messages,
    }))
}

async fn replay(
    State(dead_letters): State<DeadLetters>,
    Path(consumer): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Replayed>> {
    let selection = if body.iter().all(u8::is_ascii_whitespace) {
        Selection::All
    } else {
        let request: ReplayRequest = parse_json(&body)?;
        Selection::Events(request.event_ids.into_iter().collect::<HashSet<_>>())
    };
    let replayed = dead_letters
        .replay(&consumer, &selection)
        .await
        .map_err(problem)?;
    Ok(Json(replayed))
}

fn problem(err: DeadLetterError) -> ApiError {
    match err {
        DeadLetterError::UnknownConsumer(_) => ApiError::not_found(err.to_string()),
        DeadLetterError::Events(err) => ApiError::unavailable(err),
    }
}
