//! user-service business metrics (beside the kit's HTTP metrics).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use storekeeper_kit::Metrics;

/// The `outcome` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// What happened.
    pub outcome: &'static str,
}

/// Counters the handlers update. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UserMetrics {
    /// `user_registrations_total`.
    pub registrations: Counter,
    /// `user_logins_total{outcome="succeeded|failed|throttled"}`.
    pub logins: Family<Outcome, Counter>,
    /// `user_token_refreshes_total{outcome="succeeded|invalid|reused"}`.
    pub refreshes: Family<Outcome, Counter>,
}

impl UserMetrics {
    /// Registers the counters in `metrics`.
    pub fn register(metrics: &Metrics) -> Self {
        Self {
            registrations: metrics.counter("user_registrations", "Accounts registered"),
            logins: metrics.register(
                "user_logins",
                "Login attempts by outcome (succeeded, failed, throttled)",
                Family::default(),
            ),
            refreshes: metrics.register(
                "user_token_refreshes",
                "Refresh-token rotations by outcome (succeeded, invalid, reused)",
                Family::default(),
            ),
        }
    }

    /// Counts a login attempt.
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&Outcome { outcome }).inc();
    }

    /// Counts a refresh attempt.
    pub fn refresh(&self, outcome: &'static str) {
        self.refreshes.get_or_create(&Outcome { outcome }).inc();
    }
}
