//! payment-service's business counters.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
};
use storekeeper_kit::Metrics;

/// Labels for failed payments.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FailureLabels {
    /// Decline code.
    pub(crate) code: String,
}

/// Handles to the counters. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PaymentMetrics {
    /// Cards tokenized.
    pub(crate) methods_created: Counter,
    /// Charges captured.
    pub(crate) succeeded: Counter,
    /// Charges refused, by code.
    pub(crate) failures: Family<FailureLabels, Counter>,
    /// Money captured, minor units (all currencies together).
    pub(crate) captured_cents: Counter,
    /// Refunds issued.
    pub(crate) refunds: Counter,
    /// Charges a worker took over after another's claim ran out.
    pub(crate) charges_resumed: Counter,
    /// Card provider calls waiting for their answer: a slow provider shows
    /// here before it shows in the order saga's latency.
    pub(crate) provider_calls_in_flight: Gauge,
}

impl PaymentMetrics {
    /// Registers the counters.
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            methods_created: metrics.counter("payment_methods_created", "Cards tokenized"),
            succeeded: metrics.counter("payments_succeeded", "Charges captured"),
            failures: metrics.register(
                "payments_failed",
                "Charges refused, by decline code",
                Family::default(),
            ),
            captured_cents: metrics
                .counter("payments_captured_cents", "Money captured, minor units"),
            refunds: metrics.counter("refunds", "Refunds issued"),
            charges_resumed: metrics.counter(
                "payment_charges_resumed",
                "Charges taken over after their worker's claim ran out (a crash or a provider timeout)",
            ),
            provider_calls_in_flight: metrics.register(
                "payment_provider_calls_in_flight",
                "Card provider calls waiting for their answer",
                Gauge::default(),
            ),
        }
    }

    /// Counts a provider call in flight until the returned guard drops, so
    /// a call cut short by its timeout or a shutdown is uncounted too.
    pub(crate) fn provider_call(&self) -> InFlight {
        self.provider_calls_in_flight.inc();
        InFlight(self.provider_calls_in_flight.clone())
    }

    /// Counts a refused charge.
    pub(crate) fn failed(&self, code: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                code: code.to_owned(),
            })
            .inc();
    }
}

/// One provider call counted in `payment_provider_calls_in_flight`.
#[derive(Debug)]
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
