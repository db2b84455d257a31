//! Operator metrics (prometheus-client): reconciles, failures by reason, a
//! duration histogram (timed by a drop guard, as controller-rs does),
//! Kubernetes API requests by verb (counted by a tower layer on the client),
//! and rollouts: how they end, how long each step takes, and the step each
//! Store is at; and each Store's phase and conditions as gauges, which the
//! Store's alert rules read.

use std::time::Instant;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::gauge::Gauge;

use crate::api::{Phase, RolloutState, RolloutStatus, RolloutStep, StoreStatus};
use crate::reconcile::events::Transition;
use crate::reconcile::status::types;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label naming why a reconcile failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `Error::metric_label`.
    pub reason: String,
}

/// Label naming an API verb.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabel {
    /// `get`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: String,
}

/// Label naming how a rollout ended (or that one started).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `started`, `complete`, `failed` or `rolled_back`.
    pub outcome: String,
}

/// Label naming a rollout step.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    /// `Foundation`, `Data`, `Migrations`, `Backends`, `Storefront` or `Edge`.
    pub step: String,
}

/// Labels naming one Store.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabel {
    /// The Store's namespace.
    pub namespace: String,
    /// The Store's name.
    pub store: String,
}

/// Labels naming one condition of one Store.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabel {
    /// The Store's namespace.
    pub namespace: String,
    /// The Store's name.
    pub store: String,
    /// `Ready`, `Reconciling`, `Stalled` or `RolledBack`.
    pub condition: String,
}

/// Labels naming one phase of one Store.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// The Store's namespace.
    pub namespace: String,
    /// The Store's name.
    pub store: String,
    /// One of `status.phase`'s words.
    pub phase: String,
}

/// Every phase, for the one-hot phase gauge.
const PHASES: [Phase; 6] = [
    Phase::Pending,
    Phase::Progressing,
    Phase::Ready,
    Phase::Degraded,
    Phase::RollingBack,
    Phase::Paused,
];

/// Every condition type the operator writes.
const CONDITIONS: [&str; 4] = [
    types::READY,
    types::RECONCILING,
    types::STALLED,
    types::ROLLED_BACK,
];

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    /// Reconciles started.
    pub reconciles: Counter,
    /// Reconciles failed, by reason.
    pub failures: Family<ReasonLabel, Counter>,
    /// Reconcile duration.
    pub duration: Histogram,
    /// API requests sent, by verb.
    pub api_requests: Family<VerbLabel, Counter>,
    /// Rollouts started and ended, by outcome.
    pub rollouts: Family<OutcomeLabel, Counter>,
    /// Time from a step's start to the next step (or the end), by step.
    pub step_duration: Family<StepLabel, Histogram>,
    /// The step each Store's rollout is at: 1 (Foundation) to 6 (Edge), 0
    /// when none is in flight.
    pub current_step: Family<StoreLabel, Gauge>,
    /// 1 when the Store's condition is True, else 0.
    pub conditions: Family<ConditionLabel, Gauge>,
    /// 1 for the Store's phase, 0 for the others.
    pub phases: Family<PhaseLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Counter::default(),
            failures: Family::default(),
            duration: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            api_requests: Family::default(),
            rollouts: Family::default(),
            step_duration: Family::new_with_constructor(|| {
                Histogram::new([5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0])
            }),
            current_step: Family::default(),
            conditions: Family::default(),
            phases: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under the `storekeeper` prefix.
    #[must_use]
    pub fn register(self, registry: &mut Registry) -> Self {
        let r = registry.sub_registry_with_prefix("storekeeper");
        r.register("reconciles", "Reconciles started", self.reconciles.clone());
        r.register(
            "reconcile_failures",
            "Reconciles that failed, by reason",
            self.failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time a reconcile took",
            self.duration.clone(),
        );
        r.register(
            "api_requests",
            "Kubernetes API requests, by verb",
            self.api_requests.clone(),
        );
        r.register(
            "rollouts",
            "Rollouts started and ended, by outcome",
            self.rollouts.clone(),
        );
        r.register(
            "rollout_step_duration_seconds",
            "Time a rollout step took, from its start to the next step",
            self.step_duration.clone(),
        );
        r.register(
            "rollout_step",
            "Step a Store's rollout is at (1 Foundation .. 6 Edge; 0 none)",
            self.current_step.clone(),
        );
        r.register(
            "store_condition",
            "1 when the Store's condition (Ready, Reconciling, Stalled, RolledBack) is True",
            self.conditions.clone(),
        );
        r.register(
            "store_phase",
            "1 for the phase the Store is in, 0 for the others",
            self.phases.clone(),
        );
        self
    }

    /// Records a Store's phase and conditions as written to its status.
    pub fn store_status(&self, store: &StoreLabel, status: &StoreStatus) {
        for condition in CONDITIONS {
            let on = status
                .conditions
                .iter()
                .any(|c| c.type_ == condition && c.status == "True");
            self.conditions
                .get_or_create(&ConditionLabel {
                    namespace: store.namespace.clone(),
                    store: store.store.clone(),
                    condition: condition.to_owned(),
                })
                .set(i64::from(on));
        }
        for phase in PHASES {
            self.phases
                .get_or_create(&PhaseLabel {
                    namespace: store.namespace.clone(),
                    store: store.store.clone(),
                    phase: phase.as_str().to_owned(),
                })
                .set(i64::from(status.phase == Some(phase)));
        }
    }

    /// Records what one pass did to a Store's rollout: the outcome Events
    /// it published, the step that ended, the step it is at now.
    pub fn rollout(
        &self,
        store: &StoreLabel,
        before: Option<&RolloutStatus>,
        after: Option<&RolloutStatus>,
        events: &[Transition],
        now: DateTime<Utc>,
    ) {
        for event in events {
            let outcome = match event.reason.as_str() {
                "RolloutStarted" => "started",
                "RolloutComplete" => "complete",
                "RolloutFailed" => "failed",
                "RolledBack" => "rolled_back",
                _ => continue,
            };
            self.rollouts
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.to_owned(),
                })
                .inc();
        }
        if let Some((step, seconds)) = step_ended(before, after, now) {
            self.step_duration
                .get_or_create(&StepLabel {
                    step: step.to_string(),
                })
                .observe(seconds);
        }
        let at = after
            .filter(|a| {
                matches!(
                    a.state,
                    RolloutState::Progressing | RolloutState::RollingBack
                )
            })
            .and_then(|a| a.step)
            .map_or(0, step_number);
        self.current_step.get_or_create(store).set(at);
    }

    /// Counts a reconcile and times it until the guard drops.
    pub fn count_and_measure(&self) -> ReconcileTimer {
        self.reconciles.inc();
        ReconcileTimer {
            start: Instant::now(),
            histogram: self.duration.clone(),
        }
    }

    /// Counts a failed reconcile.
    pub fn failure(&self, reason: String) {
        self.failures.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts one API request.
    pub fn api_request(&self, method: &http::Method, uri: &http::Uri) {
        let verb = verb(method, uri.query().unwrap_or_default());
        self.api_requests
            .get_or_create(&VerbLabel {
                verb: verb.to_owned(),
            })
            .inc();
    }
}

/// The Kubernetes verb of an HTTP request (list and get share `GET`).
pub fn verb(method: &http::Method, query: &str) -> &'static str {
    match *method {
        http::Method::GET if query.contains("watch=true") => "watch",
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

/// The step a pass left, with how long it took: the step in flight before
/// differs from the one after (or none is in flight any more).
pub fn step_ended(
    before: Option<&RolloutStatus>,
    after: Option<&RolloutStatus>,
    now: DateTime<Utc>,
) -> Option<(RolloutStep, f64)> {
    let before = before?;
    let step = before.step?;
    if after.is_some_and(|a| a.step == Some(step) && a.step_started_at == before.step_started_at) {
        return None;
    }
    let started = DateTime::parse_from_rfc3339(before.step_started_at.as_deref()?).ok()?;
    let seconds = (now - started.with_timezone(&Utc)).num_milliseconds();
    #[allow(clippy::cast_precision_loss)] // milliseconds of a rollout step fit an f64 exactly
    Some((step, seconds.max(0) as f64 / 1000.0))
}

/// 1 for the first step of `RolloutStep::ALL`, and so on.
fn step_number(step: RolloutStep) -> i64 {
    RolloutStep::ALL
        .iter()
        .position(|s| *s == step)
        .map_or(0, |i| i64::try_from(i + 1).unwrap_or(0))
}

/// Observes a reconcile's duration when dropped.
pub struct ReconcileTimer {
    start: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_follow_kubernetes_names() {
        assert_eq!(verb(&http::Method::GET, "labelSelector=a"), "get");
        assert_eq!(
            verb(&http::Method::GET, "watch=true&resourceVersion=1"),
            "watch"
        );
        assert_eq!(verb(&http::Method::PATCH, ""), "patch");
        assert_eq!(verb(&http::Method::POST, ""), "create");
        assert_eq!(verb(&http::Method::DELETE, ""), "delete");
    }

    #[test]
    fn api_requests_are_counted_by_verb() {
        let m = Metrics::default();
        let uri: http::Uri = "/api/v1/namespaces/shop/secrets?labelSelector=x"
            .parse()
            .unwrap();
        m.api_request(&http::Method::GET, &uri);
        m.api_request(&http::Method::GET, &uri);
        let got = m
            .api_requests
            .get_or_create(&VerbLabel { verb: "get".into() })
            .get();
        assert_eq!(got, 2);
    }

    fn at(step: RolloutStep, started: &str) -> RolloutStatus {
        RolloutStatus {
            state: RolloutState::Progressing,
            target_revision: "r2".into(),
            stable_revision: Some("r1".into()),
            step: Some(step),
            step_started_at: Some(started.into()),
            bake_started_at: None,
            paused_at: None,
            message: String::new(),
            failed_revision: None,
            failure: None,
        }
    }

    #[test]
    fn phase_and_conditions_are_gauges_per_store() {
        let m = Metrics::default();
        let store = StoreLabel {
            namespace: "shop".into(),
            store: "shop".into(),
        };
        let condition = |type_: &str, status: &str| crate::api::Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "Test".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: "2026-01-01T00:00:00Z".into(),
        };
        let status = StoreStatus {
            phase: Some(Phase::Degraded),
            conditions: vec![
                condition("Ready", "False"),
                condition("Stalled", "True"),
                condition("RolledBack", "True"),
            ],
            ..StoreStatus::default()
        };
        m.store_status(&store, &status);
        let get = |c: &str| {
            m.conditions
                .get_or_create(&ConditionLabel {
                    namespace: "shop".into(),
                    store: "shop".into(),
                    condition: c.into(),
                })
                .get()
        };
        assert_eq!(
            [
                get("Ready"),
                get("Reconciling"),
                get("Stalled"),
                get("RolledBack")
            ],
            [0, 0, 1, 1]
        );
        let phase = |p: &str| {
            m.phases
                .get_or_create(&PhaseLabel {
                    namespace: "shop".into(),
                    store: "shop".into(),
                    phase: p.into(),
                })
                .get()
        };
        assert_eq!((phase("Degraded"), phase("Ready")), (1, 0));
    }

    #[test]
    fn a_step_ends_when_the_next_starts_or_the_rollout_ends() {
        let now: DateTime<Utc> = "2026-01-01T00:01:30Z".parse().unwrap();
        let data = at(RolloutStep::Data, "2026-01-01T00:00:00Z");
        let backends = at(RolloutStep::Backends, "2026-01-01T00:01:30Z");
        assert_eq!(
            step_ended(Some(&data), Some(&backends), now),
            Some((RolloutStep::Data, 90.0))
        );
        assert_eq!(
            step_ended(Some(&data), Some(&data), now),
            None,
            "still there"
        );
        assert_eq!(
            step_ended(Some(&data), None, now),
            Some((RolloutStep::Data, 90.0))
        );
        assert_eq!(step_ended(None, Some(&data), now), None);
    }

    #[test]
    fn rollouts_are_counted_by_outcome_and_the_step_is_a_gauge() {
        let m = Metrics::default();
        let store = StoreLabel {
            namespace: "shop".into(),
            store: "shop".into(),
        };
        let event = |reason: &str| Transition {
            warning: false,
            reason: reason.into(),
            note: String::new(),
        };
        let now = Utc::now();
        let backends = at(RolloutStep::Backends, "2026-01-01T00:00:00Z");
        m.rollout(
            &store,
            None,
            Some(&backends),
            &[event("RolloutStarted"), event("StepStarted")],
            now,
        );
        assert_eq!(m.current_step.get_or_create(&store).get(), 4);
        let mut done = backends.clone();
        done.state = RolloutState::Complete;
        done.step = None;
        m.rollout(
            &store,
            Some(&backends),
            Some(&done),
            &[event("RolloutComplete")],
            now,
        );
        assert_eq!(m.current_step.get_or_create(&store).get(), 0);
        for outcome in ["started", "complete"] {
            let label = OutcomeLabel {
                outcome: outcome.into(),
            };
            assert_eq!(m.rollouts.get_or_create(&label).get(), 1, "{outcome}");
        }
    }
}
