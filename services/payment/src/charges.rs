//! Charging orders, and never keeping money for a cancelled one: the
//! `payment.charges` consumer (`payment.requested`, `order.cancelled`).
//!
//! Runs inside the consumer's transaction, which never waits on the card
//! provider: a `payment.requested` commits a charge intent with the
//! processed-event record, and after the commit the intent goes to this
//! replica's capture worker (`crate::capture`), which calls the provider
//! outside any transaction. The unique order id on `charge_intents` and on
//! `payments` makes a second charge for the same order impossible, however
//! often the request is delivered.
//!
//! An order order-service cancelled (its deadline passed while the charge
//! was on its way) is recorded: a `payment.requested` arriving after that
//! charges nothing, a charge that landed before it is refunded in full
//! (`payment.refunded`), and one still with the provider is refunded by the
//! capture worker when it lands. All take the order's advisory lock first,
//! so whichever comes second sees the first. Counters move after the
//! commit.

use std::{future::Future, pin::Pin};

use sqlx::PgConnection;
use storekeeper_kit::{
    db,
    events::{
        AfterCommit, Envelope, Event, Handler, HandlerError,
        consumer::HandlerFuture,
        envelope::{OrderCancelled, PaymentRequested},
    },
    telemetry::{self, RequestId},
};
use uuid::Uuid;

use crate::{
    capture::{self, Captures},
    intents::{self, Decision, Intent},
    metrics::PaymentMetrics,
    refunds::{RefundError, refund_locked},
    store,
};

/// The consumer's name: its queue and its key in `processed_events`.
pub(crate) const CONSUMER: &str = "payment.charges";
/// The events it handles.
pub(crate) const ROUTING_KEYS: &[&str] = &[PaymentRequested::TYPE, OrderCancelled::TYPE];

/// What one event did, acted on once it committed.
#[derive(Debug)]
enum Effect {
    /// A charge was decided: the capture worker makes it.
    Intended(Intent),
    /// A cancelled order's charge was refunded.
    Refunded,
}

/// Decides each requested order's charge once; refunds cancelled orders.
#[derive(Clone, Debug)]
pub struct Charger {
    metrics: PaymentMetrics,
    captures: Captures,
    effects: AfterCommit<Effect>,
}

impl Charger {
    /// A charger counting into `metrics` and handing its charges to the
    /// worker behind `captures`.
    pub fn new(metrics: PaymentMetrics, captures: Captures) -> Self {
        Self {
            metrics,
            captures,
            effects: AfterCommit::default(),
        }
    }
}

impl Handler for Charger {
    fn handle<'a>(&'a self, conn: &'a mut PgConnection, event: &'a Envelope) -> HandlerFuture<'a> {
        Box::pin(async move {
            let effect = if event.event_type == OrderCancelled::TYPE {
                let cancelled: OrderCancelled = event.decode().map_err(HandlerError::Permanent)?;
                refund_cancelled(conn, cancelled.order_id).await?
            } else {
                let request: PaymentRequested = event.decode().map_err(HandlerError::Permanent)?;
                self.intend(conn, &request, event).await?
            };
            if let Some(effect) = effect {
                self.effects.hold(event.id, effect);
            }
            Ok(())
        })
    }

    fn committed<'a>(
        &'a self,
        event: &'a Envelope,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        match self.effects.take(event.id) {
            Some(Effect::Intended(intent)) => self.captures.send(intent),
            Some(Effect::Refunded) => {
                self.metrics.refunds.inc();
            }
            None => {}
        }
        Box::pin(std::future::ready(()))
    }
}

/// Records the cancellation and refunds whatever the order's charge has
/// left, if it was captured.
async fn refund_cancelled(
    conn: &mut PgConnection,
    order: Uuid,
) -> Result<Option<Effect>, HandlerError> {
    db::lock_for_transaction(conn, order).await?;
    store::record_cancelled(conn, order).await?;
    let Some(payment) = store::lock_by_order(conn, order).await? else {
        return Ok(None);
    };
    let payment_id = payment.id;
    match refund_locked(conn, payment, None).await {
        Ok(refund) => {
            tracing::warn!(order_id = %order, %payment_id, amount = refund.amount_cents, "order cancelled after its charge; refunded");
            Ok(Some(Effect::Refunded))
        }
        // Declined, or already refunded in full: nothing is kept.
        Err(RefundError::NotCaptured { .. } | RefundError::Amount { .. }) => Ok(None),
        Err(RefundError::Database(err)) => Err(err.into()),
        Err(RefundError::Outbox(err)) => Err(err.into()),
        Err(other) => Err(HandlerError::Transient(other.to_string())),
    }
}

impl Charger {
    /// Decides on a charge: records its intent, claimed by this replica, on
    /// the consumer's transaction, unless the order was cancelled or has
    /// its charge already. Nothing here waits on the provider.
    async fn intend(
        &self,
        conn: &mut PgConnection,
        request: &PaymentRequested,
        event: &Envelope,
    ) -> Result<Option<Effect>, HandlerError> {
        db::lock_for_transaction(conn, request.order_id).await?;
        let request_id = RequestId::current();
        let trace = telemetry::current_trace_context();
        let trace = (request_id.as_ref().map(RequestId::as_str), &trace);
        let order_id = request.order_id;
        Ok(
            match intents::decide(conn, request, event.correlation_id, trace, capture::HANDOFF)
                .await?
            {
                Decision::Charge(intent) => Some(Effect::Intended(intent)),
                Decision::Cancelled => {
                    tracing::info!(%order_id, "order cancelled before its charge; not charging");
                    None
                }
                Decision::Charged => {
                    tracing::info!(%order_id, "order already charged; ignoring");
                    None
                }
                Decision::Pending => None,
            },
        )
    }
}
