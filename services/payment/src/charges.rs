//! Charging orders, and never keeping money for a cancelled one: the
//! `payment.charges` consumer (`payment.requested`, `order.cancelled`).
//!
//! Runs inside the consumer's transaction, so the payment row, the
//! `payment.succeeded`/`payment.failed` event and the processed-event record
//! commit together. The unique order id on `payments` makes a second charge
//! for the same order impossible, however often the request is delivered.
//!
//! An order order-service cancelled (its deadline passed while the charge
//! was on its way) is recorded: a `payment.requested` arriving after that
//! charges nothing, and a charge that landed before it is refunded in full
//! (`payment.refunded`). Both take the order's advisory lock first, so
//! whichever comes second sees the first. Counters move after the commit.

use std::{future::Future, pin::Pin};

use sqlx::PgConnection;
use storekeeper_kit::{
    db,
    events::{
        AfterCommit, Envelope, Event, Handler, HandlerError,
        consumer::HandlerFuture,
        enqueue,
        envelope::{OrderCancelled, PaymentFailed, PaymentRequested, PaymentSucceeded},
    },
};
use uuid::Uuid;

use crate::{
    card::not_expired,
    metrics::PaymentMetrics,
    provider::{self, Decline},
    refunds::{RefundError, refund_locked},
    store::{self, NewPayment},
};

/// The consumer's name: its queue and its key in `processed_events`.
pub(crate) const CONSUMER: &str = "payment.charges";
/// The events it handles.
pub(crate) const ROUTING_KEYS: &[&str] = &[PaymentRequested::TYPE, OrderCancelled::TYPE];

/// What one event did, counted once it committed.
#[derive(Debug, Clone, Copy)]
enum Effect {
    /// A charge was captured, of this many minor units.
    Captured(i64),
    /// A charge was declined with this code.
    Declined(&'static str),
    /// A cancelled order's charge was refunded.
    Refunded,
}

/// Charges each requested order once; refunds cancelled orders.
#[derive(Clone, Debug)]
pub struct Charger {
    metrics: PaymentMetrics,
    effects: AfterCommit<Effect>,
}

impl Charger {
    /// A charger counting into `metrics`.
    pub fn new(metrics: PaymentMetrics) -> Self {
        Self {
            metrics,
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
                self.charge(conn, &request, event).await?
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
            Some(Effect::Captured(amount)) => {
                self.metrics.succeeded.inc();
                self.metrics
                    .captured_cents
                    .inc_by(u64::try_from(amount).unwrap_or(0));
            }
            Some(Effect::Declined(code)) => self.metrics.failed(code),
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

const METHOD_NOT_FOUND: Decline = Decline {
    code: "payment_method_not_found",
    message: "the payment method does not exist or is not yours",
};
const EXPIRED: Decline = Decline {
    code: "expired_card",
    message: "the card has expired",
};

impl Charger {
    async fn charge(
        &self,
        conn: &mut PgConnection,
        request: &PaymentRequested,
        event: &Envelope,
    ) -> Result<Option<Effect>, HandlerError> {
        let method = store::method_of(conn, request.payment_method_id, request.user_id).await?;
        // The slow test card's provider answer, waited for before the
        // order's lock: a cancellation meanwhile is recorded and wins.
        if let Some(delay) = method
            .as_ref()
            .and_then(|stored| provider::answer_delay(&stored.provider_token))
        {
            tokio::time::sleep(delay).await;
        }
        db::lock_for_transaction(conn, request.order_id).await?;
        if store::is_cancelled(conn, request.order_id).await? {
            tracing::info!(order_id = %request.order_id, "order cancelled before its charge; not charging");
            return Ok(None);
        }
        if store::order_has_payment(conn, request.order_id).await? {
            tracing::info!(order_id = %request.order_id, "order already charged; ignoring");
            return Ok(None);
        }
        let today = chrono::Utc::now().date_naive();
        let outcome = match &method {
            None => Err(METHOD_NOT_FOUND),
            Some(stored) => {
                let (month, year) = (stored.method.exp_month, stored.method.exp_year);
                if not_expired(
                    u32::try_from(month).unwrap_or(0),
                    u32::try_from(year).unwrap_or(0),
                    today,
                ) {
                    provider::charge(
                        &stored.provider_token,
                        request.amount_cents,
                        request.order_id,
                    )
                } else {
                    Err(EXPIRED)
                }
            }
        };
        let new = NewPayment {
            order_id: request.order_id,
            user_id: request.user_id,
            payment_method_id: request.payment_method_id,
            amount_cents: request.amount_cents,
            currency: &request.currency,
            failure: outcome.as_ref().err().map(|d| (d.code, d.message)),
            card: method
                .as_ref()
                .map(|m| (m.method.brand.as_str(), m.method.last4.as_str())),
        };
        let Some(payment) = store::insert_payment(conn, &new).await? else {
            return Ok(None);
        };
        Ok(Some(match outcome {
            Ok(()) => {
                let data = PaymentSucceeded {
                    order_id: payment.order_id,
                    payment_id: payment.id,
                    amount_cents: payment.amount_cents,
                    currency: payment.currency.clone(),
                };
                enqueue(conn, &data, event.correlation_id).await?;
                tracing::info!(order_id = %payment.order_id, payment_id = %payment.id, "payment captured");
                Effect::Captured(payment.amount_cents)
            }
            Err(decline) => {
                let data = PaymentFailed {
                    order_id: payment.order_id,
                    payment_id: payment.id,
                    code: decline.code.to_owned(),
                    reason: decline.message.to_owned(),
                };
                enqueue(conn, &data, event.correlation_id).await?;
                tracing::info!(order_id = %payment.order_id, code = decline.code, "payment failed");
                Effect::Declined(decline.code)
            }
        }))
    }
}
