//! Capturing charges without a transaction across the network.
//!
//! The `payment.charges` consumer only decides: it records a charge intent
//! (`crate::intents`) with the processed event and commits. This worker then
//! calls the card provider holding no database connection, and records the
//! answer — the payment, `payment.succeeded` or `payment.failed`, and the
//! intent's deletion — in one short transaction under the order's lock. A
//! slow provider therefore ties up neither the consumer nor the pool.
//!
//! The process that committed an intent captures it at once: the consumer
//! hands it over after the commit, and the worker begins it on the
//! consumer's claim while at least [`RENEW_MARGIN`] of that is left,
//! extending the claim to [`LEASE`] only if it begins later or the
//! provider call is still running at that point. An intent whose claim
//! ran out — the handover was lost (a crash, or a consumer cut off from
//! the broker in the middle of its commit) and [`HANDOFF`] passed, or the
//! worker crashed during the
//! call, or the provider did not answer within [`PROVIDER_TIMEOUT`] — is
//! claimed again by whichever replica looks first (every
//! [`RESUME_INTERVAL`]) and the provider is asked again under the same
//! idempotency key, the order id (a real provider captures once per key;
//! the simulated one keeps no state), and only the first answer recorded
//! counts: deleting the intent decides it. A lost
//! handover resumes within [`HANDOFF`] plus [`RESUME_INTERVAL`], and so
//! does a crash during a call on the consumer's claim; once the claim was
//! extended, within [`LEASE`] plus [`RESUME_INTERVAL`].
//!
//! Cancellation, whichever comes first: an order cancelled before any
//! provider call is dropped without one. Once a call may have been made (a
//! second attempt), the provider is asked, and a capture of a cancelled
//! order is recorded and refunded in full in the same transaction
//! (`payment.succeeded`, then `payment.refunded`), as the consumer does for
//! a cancellation that arrives after the capture.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use sqlx::PgPool;
use storekeeper_kit::{
    db,
    events::{
        EventsError, OutboxRow,
        envelope::{PaymentFailed, PaymentSucceeded},
    },
    telemetry::{self, RequestId},
};
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    card::not_expired,
    intents::{self, Intent},
    metrics::PaymentMetrics,
    provider::{self, Decline},
    refunds::{RefundError, refund_locked},
    store::{self, NewPayment, Recorded, StoredMethod},
};

/// How long the replica that decided a charge has to begin it before any
/// worker may take it over.
pub const HANDOFF: Duration = Duration::from_secs(10);
/// How long a worker owns an intent it claimed: longer than a provider
/// call may take plus the transaction that records it.
pub const LEASE: Duration = Duration::from_mins(1);
/// How long the provider may take to answer before the charge is handed
/// back and asked again later.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a worker looks for intents whose claim ran out.
pub const RESUME_INTERVAL: Duration = Duration::from_secs(5);
/// How long a timed-out charge waits before it is asked again.
const RETRY_DELAY: Duration = Duration::from_secs(5);
/// How much of a claim must be left for a worker to begin a charge, or to
/// go on waiting for its provider call, without renewing it: far more
/// than a renewal takes. A charge handed over at once and answered in time
/// (almost all of them) thus costs no write before its outcome's.
pub const RENEW_MARGIN: Duration = Duration::from_secs(5);
/// Provider calls one replica makes at once.
const MAX_IN_FLIGHT: usize = 64;
/// Intents claimed per look.
const RESUME_BATCH: i64 = 64;

const METHOD_NOT_FOUND: Decline = Decline {
    code: "payment_method_not_found",
    message: "the payment method does not exist or is not yours",
};
const EXPIRED: Decline = Decline {
    code: "expired_card",
    message: "the card has expired",
};

/// Where the consumer hands the intents it committed to this replica's
/// worker. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Captures(mpsc::UnboundedSender<Intent>);

/// The worker's end of [`Captures`].
#[derive(Debug)]
pub struct CaptureInbox(mpsc::UnboundedReceiver<Intent>);

/// A connected pair: the consumer gets the [`Captures`], the worker the
/// [`CaptureInbox`].
pub fn channel() -> (Captures, CaptureInbox) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (Captures(sender), CaptureInbox(receiver))
}

impl Captures {
    /// Hands a committed intent over. Without a worker (it stopped) the
    /// intent waits for its claim to run out and is resumed.
    pub(crate) fn send(&self, intent: Intent) {
        if let Err(unsent) = self.0.send(intent) {
            tracing::info!(order_id = %unsent.0.order_id, "capture worker stopped; the charge is resumed once its claim runs out");
        }
    }
}

impl CaptureInbox {
    /// The next intent handed over, if one is waiting (tests drive the
    /// worker with it, one intent at a time).
    pub fn try_next(&mut self) -> Option<Intent> {
        self.0.try_recv().ok()
    }
}

/// What became of one intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Captured {
    /// Captured: `payment.succeeded`.
    Succeeded,
    /// Declined with this code: `payment.failed`.
    Declined(&'static str),
    /// Captured, but the order had been cancelled: refunded at once.
    Refunded,
    /// The order was cancelled before any provider call: nothing charged.
    Dropped,
    /// Another worker recorded the charge first.
    AlreadyRecorded,
    /// Another worker claimed it before this one began it; that one makes
    /// the charge.
    ClaimedElsewhere,
    /// The provider did not answer in time: handed back for a later try.
    Postponed,
}

/// Why a charge could not be recorded; its intent stays, and is resumed
/// once its claim runs out.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The outcome's event could not be written.
    #[error("writing the outcome's event: {0}")]
    Outbox(#[from] EventsError),
    /// The refund of a cancelled order's capture was refused.
    #[error("refunding a cancelled order's capture: {0}")]
    Refund(String),
}

impl From<RefundError> for CaptureError {
    fn from(err: RefundError) -> Self {
        match err {
            RefundError::Database(err) => Self::Database(err),
            RefundError::Outbox(err) => Self::Outbox(err),
            other => Self::Refund(other.to_string()),
        }
    }
}

/// Calls the provider for charge intents and records the outcomes.
#[derive(Clone, Debug)]
pub struct Capturer {
    pool: PgPool,
    metrics: PaymentMetrics,
    in_flight: Arc<Semaphore>,
}

impl Capturer {
    /// A worker on the `payments` database, counting into `metrics`.
    pub fn new(pool: PgPool, metrics: PaymentMetrics) -> Self {
        Self {
            pool,
            metrics,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Captures what the consumer hands over and what other workers left,
    /// until `shutdown`. Then it finishes the calls in flight (each bounded
    /// by [`PROVIDER_TIMEOUT`]) and hands back what it had not begun, so
    /// another replica takes it over at its next look instead of after the
    /// lease.
    pub async fn run(self, mut inbox: CaptureInbox, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        let mut resume = tokio::time::interval(RESUME_INTERVAL);
        resume.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(intent) = inbox.0.recv() => self.spawn(&mut tasks, intent),
                _ = resume.tick() => match self.claim_due().await {
                    Ok(due) => due.into_iter().for_each(|intent| self.spawn(&mut tasks, intent)),
                    Err(err) => tracing::warn!(error = %err, "looking for charges to resume"),
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        inbox.0.close();
        let mut unbegun = Vec::new();
        while let Some(intent) = inbox.try_next() {
            unbegun.push(intent.order_id);
        }
        if !unbegun.is_empty()
            && let Err(err) = intents::release(&self.pool, &unbegun, Duration::ZERO).await
        {
            tracing::warn!(error = %err, count = unbegun.len(), "handing back charges at shutdown; they resume once their claim runs out");
        }
        while tasks.join_next().await.is_some() {}
    }

    fn spawn(&self, tasks: &mut JoinSet<()>, intent: Intent) {
        let worker = self.clone();
        tasks.spawn(async move {
            let Ok(_permit) = worker.in_flight.clone().acquire_owned().await else {
                return;
            };
            let order = intent.order_id;
            if let Err(err) = worker.capture(intent).await {
                tracing::warn!(order_id = %order, error = %err, "charge not recorded; resumed once its claim runs out");
            }
        });
    }

    /// Claims the intents whose claim ran out (counted as resumed).
    pub async fn claim_due(&self) -> Result<Vec<Intent>, sqlx::Error> {
        let due = intents::claim_due(&self.pool, LEASE, RESUME_BATCH).await?;
        for intent in &due {
            tracing::info!(order_id = %intent.order_id, attempt = intent.attempts, "resuming a charge");
        }
        self.metrics.charges_resumed.inc_by(due.len() as u64);
        Ok(due)
    }

    /// Charges `intent` and records the outcome, in the trace and under the
    /// request id of the flow that asked for it.
    pub async fn capture(&self, intent: Intent) -> Result<Captured, CaptureError> {
        let span =
            tracing::info_span!("charge", order_id = %intent.order_id, attempt = intent.attempts);
        telemetry::continue_trace(&span, || {
            let carrier = intent
                .trace_context
                .as_ref()
                .map_or_else(BTreeMap::new, |context| context.0.clone());
            telemetry::extract_map(&carrier)
        });
        let request_id = intent.request_id.clone().map(RequestId);
        RequestId::scope(request_id, self.charge(intent).instrument(span)).await
    }

    async fn charge(&self, mut intent: Intent) -> Result<Captured, CaptureError> {
        let order = intent.order_id;
        let method = {
            let mut conn = self.pool.acquire().await?;
            if renew_due(intent.claim_ends).is_none() {
                let before = Instant::now();
                if !intents::take(&mut conn, order, intent.attempts, LEASE).await? {
                    return Ok(Captured::ClaimedElsewhere);
                }
                intent.claim_ends = Some(before + LEASE);
            }
            let (method, cancelled) =
                store::before_charge(&mut conn, intent.payment_method_id, intent.user_id, order)
                    .await?;
            if intent.attempts <= 1 && cancelled {
                return self.drop_cancelled(order).await;
            }
            method
        };
        let asked = {
            let _counted = self.metrics.provider_call();
            let call =
                tokio::time::timeout(PROVIDER_TIMEOUT, ask_provider(&intent, method.as_ref()));
            self.renewing_claim(&intent, call).await
        };
        let Ok(answer) = asked else {
            tracing::warn!(order_id = %order, "the card provider did not answer in time; asking again later");
            intents::release(&self.pool, &[order], RETRY_DELAY).await?;
            return Ok(Captured::Postponed);
        };
        let captured = self.record(&intent, method.as_ref(), answer).await?;
        match captured {
            Captured::Succeeded | Captured::Refunded => {
                self.metrics.succeeded.inc();
                self.metrics
                    .captured_cents
                    .inc_by(u64::try_from(intent.amount_cents).unwrap_or(0));
                if captured == Captured::Refunded {
                    self.metrics.refunds.inc();
                }
            }
            Captured::Declined(code) => self.metrics.failed(code),
            Captured::Dropped
            | Captured::AlreadyRecorded
            | Captured::ClaimedElsewhere
            | Captured::Postponed => {}
        }
        Ok(captured)
    }

    /// Awaits `call`, renewing the claim on `intent` for [`LEASE`] if the
    /// call is still running when [`RENEW_MARGIN`] of it is left. A renewal
    /// that finds the intent claimed elsewhere (this claim ran out after
    /// all) or fails changes nothing here: the call's answer is recorded,
    /// and whichever worker records first decides.
    async fn renewing_claim<T>(&self, intent: &Intent, call: impl Future<Output = T>) -> T {
        let Some(renew_at) = renew_due(intent.claim_ends) else {
            return call.await;
        };
        tokio::pin!(call);
        tokio::select! {
            answer = &mut call => return answer,
            () = tokio::time::sleep_until(renew_at.into()) => {}
        }
        if let Err(err) = self.renew(intent).await {
            tracing::warn!(order_id = %intent.order_id, error = %err, "renewing a charge's claim");
        }
        call.await
    }

    async fn renew(&self, intent: &Intent) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        if !intents::take(&mut conn, intent.order_id, intent.attempts, LEASE).await? {
            tracing::info!(order_id = %intent.order_id, "charge claimed by another worker during its provider call; the first answer recorded counts");
        }
        Ok(())
    }

    /// Ends the intent of an order cancelled before its first provider call.
    async fn drop_cancelled(&self, order: Uuid) -> Result<Captured, CaptureError> {
        let mut tx = db::begin(&self.pool).await?;
        db::lock_for_transaction(&mut tx, order).await?;
        intents::finish(&mut tx, order).await?;
        tx.commit().await?;
        tracing::info!(order_id = %order, "order cancelled before its charge; not charging");
        Ok(Captured::Dropped)
    }

    /// Records the provider's answer, its event and the intent's end in one
    /// statement under the order's lock; refunds at once, in the same
    /// transaction, when the order was cancelled meanwhile.
    async fn record(
        &self,
        intent: &Intent,
        method: Option<&StoredMethod>,
        answer: Result<(), Decline>,
    ) -> Result<Captured, CaptureError> {
        let order = intent.order_id;
        let payment_id = Uuid::now_v7();
        let new = NewPayment {
            id: payment_id,
            order_id: order,
            user_id: intent.user_id,
            payment_method_id: intent.payment_method_id,
            amount_cents: intent.amount_cents,
            currency: &intent.currency,
            failure: answer.as_ref().err().map(|d| (d.code, d.message)),
            card: method.map(|m| (m.method.brand.as_str(), m.method.last4.as_str())),
        };
        let outcome = match &answer {
            Ok(()) => OutboxRow::new(
                &PaymentSucceeded {
                    order_id: order,
                    payment_id,
                    amount_cents: intent.amount_cents,
                    currency: intent.currency.clone(),
                },
                intent.correlation_id,
            )?,
            Err(decline) => OutboxRow::new(
                &PaymentFailed {
                    order_id: order,
                    payment_id,
                    code: decline.code.to_owned(),
                    reason: decline.message.to_owned(),
                },
                intent.correlation_id,
            )?,
        };
        let mut tx = db::begin(&self.pool).await?;
        db::lock_for_transaction(&mut tx, order).await?;
        let Some(Recorded { payment, cancelled }) =
            store::record_payment(&mut tx, &new, outcome).await?
        else {
            // Finished by another worker, or charged already: commits the
            // intent's end if it was this one's.
            tx.commit().await?;
            return Ok(Captured::AlreadyRecorded);
        };
        let captured = match answer {
            Ok(()) => {
                tracing::info!(order_id = %order, payment_id = %payment.id, "payment captured");
                if cancelled {
                    let refund = refund_locked(&mut tx, payment, None).await?;
                    tracing::warn!(order_id = %order, amount = refund.amount_cents, "order cancelled while its charge was in flight; refunded");
                    Captured::Refunded
                } else {
                    Captured::Succeeded
                }
            }
            Err(decline) => {
                tracing::info!(order_id = %order, code = decline.code, "payment failed");
                Captured::Declined(decline.code)
            }
        };
        tx.commit().await?;
        Ok(captured)
    }
}

/// When a claim ending at `claim_ends` must be renewed: [`RENEW_MARGIN`]
/// before it ends; `None` when that time has passed or the end is unknown.
fn renew_due(claim_ends: Option<Instant>) -> Option<Instant> {
    claim_ends
        .and_then(|ends| ends.checked_sub(RENEW_MARGIN))
        .filter(|renew_at| *renew_at > Instant::now())
}

/// The provider's answer for `intent`, or a decline decided here (no such
/// method, an expired card) without asking it.
async fn ask_provider(intent: &Intent, method: Option<&StoredMethod>) -> Result<(), Decline> {
    let Some(stored) = method else {
        return Err(METHOD_NOT_FOUND);
    };
    let (month, year) = (stored.method.exp_month, stored.method.exp_year);
    let today = chrono::Utc::now().date_naive();
    if !not_expired(
        u32::try_from(month).unwrap_or(0),
        u32::try_from(year).unwrap_or(0),
        today,
    ) {
        return Err(EXPIRED);
    }
    if let Some(delay) = provider::answer_delay(&stored.provider_token) {
        tokio::time::sleep(delay).await;
    }
    provider::charge(&stored.provider_token, intent.amount_cents, intent.order_id)
}
