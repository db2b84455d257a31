//! The saga's deadline: an order that is not paid or cancelled within
//! `ORDER_DEADLINE_SECS` of being placed (a lost or dead-lettered event, a
//! payment that never came back) is cancelled here, through the same step
//! as any cancellation, so `order.cancelled` releases its stock and
//! payment-service refunds a charge that lands after it.
//!
//! Every replica runs a reaper. Each pass locks expired orders with
//! `FOR UPDATE SKIP LOCKED`, so replicas share the work without waiting on
//! or cancelling the same order twice, and an order the saga is moving at
//! that moment is left to the saga.
//!
//! Each pass also counts the open orders older than the stuck threshold
//! (`orders_stuck{status}`): a fraction of the deadline, so an alert hears
//! of orders that stopped moving well before the reaper cancels them, and
//! of orders it fails to cancel.

use std::time::Duration;

use sqlx::PgPool;
use storekeeper_kit::db;
use tokio_util::sync::CancellationToken;

use crate::{
    advance::{AdvanceError, advance},
    metrics::OrderMetrics,
    status::{OrderStatus, SagaStep},
    store,
};

/// Orders cancelled per transaction (a backlog is worked off in batches).
const BATCH: i64 = 100;

/// How often a reaper with `deadline` looks: often enough that an order is
/// cancelled soon after its deadline, rarely enough to cost nothing.
fn interval(deadline: Duration) -> Duration {
    (deadline / 30).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// How long an order may stay open before it counts as stuck: a quarter
/// of the deadline, at most 2 min (a healthy saga takes well under a
/// second; the payment provider a few).
fn stuck_threshold(deadline: Duration) -> Duration {
    (deadline / 4).min(Duration::from_mins(2))
}

/// The cancellation reason shoppers read.
fn reason(deadline: Duration) -> String {
    let secs = deadline.as_secs();
    let within = if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    };
    format!("expired: not completed within {within}")
}

/// Why a pass of the reaper failed (the next pass tries again).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ReapError(#[from] AdvanceError);

/// Cancels orders that outlived their deadline.
#[derive(Debug, Clone)]
pub struct Reaper {
    pool: PgPool,
    deadline: Duration,
    metrics: OrderMetrics,
}

impl Reaper {
    /// A reaper for orders older than `deadline` in `pool`.
    pub fn new(pool: PgPool, deadline: Duration, metrics: OrderMetrics) -> Self {
        metrics.set_stuck_threshold(stuck_threshold(deadline));
        Self {
            pool,
            deadline,
            metrics,
        }
    }

    /// Cancels up to one batch of expired orders; returns how many.
    pub async fn reap_once(&self) -> Result<usize, ReapError> {
        Ok(self.reap_batch().await?)
    }

    /// Counts the open orders older than the stuck threshold into
    /// `orders_stuck`.
    async fn measure_stuck(&self) -> Result<(), ReapError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM orders WHERE status IN ('PENDING', 'AWAITING_PAYMENT') \
             AND created_at < now() - make_interval(secs => $1) GROUP BY status",
        )
        .bind(stuck_threshold(self.deadline).as_secs_f64())
        .fetch_all(&self.pool)
        .await
        .map_err(AdvanceError::from)?;
        let counts: Vec<(OrderStatus, i64)> = rows
            .iter()
            .filter_map(|(status, n)| OrderStatus::parse(status).map(|s| (s, *n)))
            .collect();
        self.metrics.set_stuck(&counts);
        Ok(())
    }

    async fn reap_batch(&self) -> Result<usize, AdvanceError> {
        let reason = reason(self.deadline);
        let mut tx = db::begin(&self.pool).await?;
        let expired = store::lock_expired(&mut tx, self.deadline, BATCH).await?;
        let mut moved = Vec::with_capacity(expired.len());
        for order in &expired {
            moved.push(advance(&mut tx, order, SagaStep::Expired, Some(&reason)).await?);
            tracing::warn!(order_id = %order.id, from = order.status.as_str(), "order expired; cancelled");
        }
        tx.commit().await?;
        for step in &moved {
            self.metrics.moved(step);
        }
        Ok(moved.len())
    }

    /// Reaps until `shutdown` fires; a full batch is followed at once by
    /// the next.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let pause = match self.reap_once().await {
                Ok(n) if n == usize::try_from(BATCH).unwrap_or(usize::MAX) => Duration::ZERO,
                Ok(_) => interval(self.deadline),
                Err(err) => {
                    tracing::warn!(error = %err, "reaping expired orders failed");
                    interval(self.deadline)
                }
            };
            if let Err(err) = self.measure_stuck().await {
                tracing::warn!(error = %err, "counting stuck orders failed");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_and_the_pace_follow_the_deadline() {
        let default = Duration::from_mins(15);
        assert_eq!(reason(default), "expired: not completed within 15 min");
        assert_eq!(interval(default), Duration::from_secs(30));
        let short = Duration::from_secs(2);
        assert_eq!(reason(short), "expired: not completed within 2 s");
        assert_eq!(interval(short), Duration::from_secs(1));
        assert_eq!(stuck_threshold(default), Duration::from_mins(2));
        assert_eq!(stuck_threshold(short), Duration::from_millis(500));
    }
}
