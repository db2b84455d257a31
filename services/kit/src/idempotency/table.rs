//! The SQL of a service's key table. Every service keeps its keys in a
//! table of its own with the same columns:
//!
//! ```sql
//! CREATE TABLE <name> (
//!     user_id uuid NOT NULL, key text NOT NULL, request_hash text NOT NULL,
//!     response_status integer, response_body text,
//!     created_at timestamptz NOT NULL DEFAULT now(),
//!     PRIMARY KEY (user_id, key)
//! );
//! CREATE INDEX <name>_created_idx ON <name> (created_at);
//! ```

use std::time::Duration;

use axum::http::StatusCode;
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, postgres::PgArguments, query::Query};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Answer, RETENTION_HOURS};
use crate::problem::ApiError;

/// The key came back with another request than the one it was first used
/// for: 422 `idempotency-key-reused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this Idempotency-Key was already used with a different request; use a new key")]
pub struct KeyReused;

impl From<KeyReused> for ApiError {
    fn from(err: KeyReused) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
        )
        .with_detail(err.to_string())
    }
}

/// A stored key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    /// Hash of the canonical request ([`super::request_hash`]).
    pub request_hash: String,
    /// The first response's status, once there is one.
    pub response_status: Option<i32>,
    /// The first response's body.
    pub response_body: Option<String>,
}

impl StoredKey {
    /// What a request hashing to `hash` gets from this key: the first
    /// answer again, `None` while the first request is still in progress,
    /// or [`KeyReused`] when the request differs.
    pub fn replay(self, hash: &str) -> Result<Option<Answer>, KeyReused> {
        if self.request_hash != hash {
            return Err(KeyReused);
        }
        let status = self
            .response_status
            .and_then(|status| u16::try_from(status).ok())
            .and_then(|status| StatusCode::from_u16(status).ok());
        Ok(match (status, self.response_body) {
            (Some(status), Some(body)) => Some(Answer {
                status,
                body,
                replayed: true,
            }),
            _ => None,
        })
    }
}

/// A claim of `user`'s `key` for a request hashing to `hash` that stores
/// `answer` with it, written by the caller's statement
/// ([`KeyTable::claim_from`]).
#[derive(Debug, Clone, Copy)]
pub struct AnsweredClaim<'a> {
    /// The caller.
    pub user: Uuid,
    /// The client's `Idempotency-Key`.
    pub key: &'a str,
    /// [`super::request_hash`] of the request.
    pub hash: &'a str,
    /// What the request answers, replayed to a retry.
    pub answer: &'a Answer,
}

impl<'a> AnsweredClaim<'a> {
    /// Binds the claim's five values as the next parameters of `query`, in
    /// the order [`KeyTable::claim_from`] names them.
    pub fn bind(self, query: Query<'a, Postgres, PgArguments>) -> Query<'a, Postgres, PgArguments> {
        query
            .bind(self.user)
            .bind(self.key)
            .bind(self.hash)
            .bind(i32::from(self.answer.status.as_u16()))
            .bind(self.answer.body.as_str())
    }
}

/// A service's key table, by name (a constant of the service, never input).
#[derive(Debug, Clone, Copy)]
pub struct KeyTable {
    name: &'static str,
}

impl KeyTable {
    /// The table called `name`.
    pub const fn new(name: &'static str) -> Self {
        Self { name }
    }

    /// Looks `user`'s `key` up.
    pub async fn find<'e>(
        self,
        db: impl PgExecutor<'e>,
        user: Uuid,
        key: &str,
    ) -> Result<Option<StoredKey>, sqlx::Error> {
        let sql = format!(
            "SELECT request_hash, response_status, response_body FROM {} \
             WHERE user_id = $1 AND key = $2",
            self.name
        );
        sqlx::query_as(&sql)
            .bind(user)
            .bind(key)
            .fetch_optional(db)
            .await
    }

    /// Claims `user`'s `key` for a request hashing to `hash`, on the
    /// transaction that does the work; false when another request holds it.
    /// A concurrent claim of the same key waits here until the first
    /// transaction ends.
    pub async fn claim(
        self,
        conn: &mut PgConnection,
        user: Uuid,
        key: &str,
        hash: &str,
    ) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "INSERT INTO {} (user_id, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            self.name
        );
        let done = sqlx::query(&sql)
            .bind(user)
            .bind(key)
            .bind(hash)
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The statement part that claims a key together with its answer, for
    /// a request whose answer is known before its writes: a data-modifying
    /// CTE of the caller's statement that inserts the claim if `from`
    /// returned a row and returns a row only when it took the key, so the
    /// statement's writes can follow from it (claim, work and answer in one
    /// round trip, where a claim, the work and [`KeyTable::store_response`]
    /// are three). Its values are bound as parameters `$first` to
    /// `$first + 4` by [`AnsweredClaim::bind`]. A concurrent claim of the
    /// same key waits on it until its transaction ends, then takes nothing.
    pub fn claim_from(self, from: &str, first: usize) -> String {
        format!(
            "INSERT INTO {} (user_id, key, request_hash, response_status, response_body) \
             SELECT ${first}, ${}, ${}, ${}, ${} FROM {from} ON CONFLICT DO NOTHING RETURNING user_id",
            self.name,
            first + 1,
            first + 2,
            first + 3,
            first + 4
        )
    }

    /// Stores the answer to replay, on the claiming transaction.
    pub async fn store_response(
        self,
        conn: &mut PgConnection,
        user: Uuid,
        key: &str,
        status: StatusCode,
        body: &str,
    ) -> Result<(), sqlx::Error> {
        let sql = format!(
            "UPDATE {} SET response_status = $3, response_body = $4 WHERE user_id = $1 AND key = $2",
            self.name
        );
        sqlx::query(&sql)
            .bind(user)
            .bind(key)
            .bind(i32::from(status.as_u16()))
            .bind(body)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Deletes keys older than [`RETENTION_HOURS`]; returns how many.
    pub async fn prune(self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "DELETE FROM {} WHERE created_at < now() - make_interval(hours => $1)",
            self.name
        );
        let done = sqlx::query(&sql)
            .bind(RETENTION_HOURS)
            .execute(pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Prunes once an hour until `shutdown` fires (a background task of
    /// the service's event workers; a failed pass is logged and retried).
    pub async fn prune_hourly(self, pool: PgPool, shutdown: CancellationToken) {
        loop {
            match self.prune(&pool).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(
                    table = self.name,
                    pruned,
                    "expired idempotency keys removed"
                ),
                Err(err) => {
                    tracing::warn!(table = self.name, error = %err, "pruning idempotency keys failed");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_hours(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(hash: &str, status: Option<i32>, body: Option<&str>) -> StoredKey {
        StoredKey {
            request_hash: hash.into(),
            response_status: status,
            response_body: body.map(str::to_owned),
        }
    }

    #[test]
    fn the_same_request_replays_the_first_answer() {
        let answer = stored("h", Some(201), Some("{}")).replay("h").unwrap();
        assert_eq!(
            answer,
            Some(Answer {
                status: StatusCode::CREATED,
                body: "{}".into(),
                replayed: true
            })
        );
        assert_eq!(stored("h", None, None).replay("h"), Ok(None));
    }

    #[test]
    fn another_request_is_refused() {
        assert_eq!(
            stored("h", Some(201), Some("{}")).replay("other"),
            Err(KeyReused)
        );
        assert_eq!(ApiError::from(KeyReused).kind(), "idempotency-key-reused");
    }
}
