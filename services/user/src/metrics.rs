//! user-service business metrics (beside the kit's HTTP metrics).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};
use storekeeper_kit::Metrics;

/// The `outcome` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Outcome {
    /// What happened.
    pub(crate) outcome: &'static str,
}

/// The labels of `user_password_jobs_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct JobLabels {
    /// `login` or `account`.
    pub(crate) purpose: &'static str,
    /// `admitted` (queued or run) or `busy` (refused: the queue was full).
    pub(crate) outcome: &'static str,
}

/// Counters the handlers update. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct UserMetrics {
    /// `user_registrations_total`.
    pub(crate) registrations: Counter,
    /// `user_logins_total{outcome="succeeded|failed|throttled"}`.
    pub(crate) logins: Family<Outcome, Counter>,
    /// `user_token_refreshes_total{outcome="succeeded|grace|invalid|reused"}`.
    pub(crate) refreshes: Family<Outcome, Counter>,
    /// `user_registrations_throttled_total`.
    pub(crate) registrations_throttled: Counter,
    /// `user_password_changes_total`.
    pub(crate) password_changes: Counter,
    /// `user_password_jobs_total{purpose, outcome}`, counted by the hasher.
    pub(crate) password_jobs: Family<JobLabels, Counter>,
}

impl UserMetrics {
    /// Registers the counters in `metrics`.
    pub(crate) fn register(metrics: &Metrics) -> Self {
        Self {
            registrations: metrics.counter("user_registrations", "Accounts registered"),
            logins: metrics.register(
                "user_logins",
                "Login attempts by outcome (succeeded, failed, throttled)",
                Family::default(),
            ),
            refreshes: metrics.register(
                "user_token_refreshes",
                "Refresh-token rotations by outcome (succeeded, grace, invalid, reused)",
                Family::default(),
            ),
            registrations_throttled: metrics.counter(
                "user_registrations_throttled",
                "Registrations refused by the per-address limit",
            ),
            password_changes: metrics.counter(
                "user_password_changes",
                "Passwords changed (each ends every other login of the account)",
            ),
            password_jobs: metrics.register(
                "user_password_jobs",
                "Argon2 jobs by purpose (login, account) and outcome (admitted, busy)",
                Family::default(),
            ),
        }
    }

    pub(crate) fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&Outcome { outcome }).inc();
    }

    pub(crate) fn refresh(&self, outcome: &'static str) {
        self.refreshes.get_or_create(&Outcome { outcome }).inc();
    }
}
