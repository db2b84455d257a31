//! Charging orders: the `payment.requested` consumer.
//!
//! Runs inside the consumer's transaction, so the payment row, the
//! `payment.succeeded`/`payment.failed` event and the processed-event record
//! commit together. The unique order id on `payments` makes a second charge
//! for the same order impossible, however often the request is delivered.

use sqlx::PgConnection;
use storekeeper_kit::events::{
    Envelope, Event, Handler, HandlerError,
    consumer::HandlerFuture,
    enqueue,
    envelope::{PaymentFailed, PaymentRequested, PaymentSucceeded},
};

use crate::{
    card::not_expired,
    metrics::PaymentMetrics,
    provider::{self, Decline},
    store::{self, NewPayment},
};

/// The consumer's name: its queue and its key in `processed_events`.
pub(crate) const CONSUMER: &str = "payment.charges";
/// The events it handles.
pub(crate) const ROUTING_KEYS: &[&str] = &[PaymentRequested::TYPE];

/// Charges each requested order once.
#[derive(Clone, Debug)]
pub struct Charger {
    /// Business counters.
    pub metrics: PaymentMetrics,
}

impl Handler for Charger {
    fn handle<'a>(&'a self, conn: &'a mut PgConnection, event: &'a Envelope) -> HandlerFuture<'a> {
        Box::pin(async move {
            let request: PaymentRequested = event.decode().map_err(HandlerError::Permanent)?;
            self.charge(conn, &request, event).await
        })
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
    ) -> Result<(), HandlerError> {
        if store::order_has_payment(conn, request.order_id).await? {
            tracing::info!(order_id = %request.order_id, "order already charged; ignoring");
            return Ok(());
        }
        let method = store::method_of(conn, request.payment_method_id, request.user_id).await?;
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
            return Ok(());
        };
        match outcome {
            Ok(()) => {
                let data = PaymentSucceeded {
                    order_id: payment.order_id,
                    payment_id: payment.id,
                    amount_cents: payment.amount_cents,
                    currency: payment.currency.clone(),
                };
                enqueue(conn, &data, event.correlation_id).await?;
                self.metrics.succeeded.inc();
                self.metrics
                    .captured_cents
                    .inc_by(u64::try_from(payment.amount_cents).unwrap_or(0));
                tracing::info!(order_id = %payment.order_id, payment_id = %payment.id, "payment captured");
            }
            Err(decline) => {
                let data = PaymentFailed {
                    order_id: payment.order_id,
                    payment_id: payment.id,
                    code: decline.code.to_owned(),
                    reason: decline.message.to_owned(),
                };
                enqueue(conn, &data, event.correlation_id).await?;
                self.metrics.failed(decline.code);
                tracing::info!(order_id = %payment.order_id, code = decline.code, "payment failed");
            }
        }
        Ok(())
    }
}
