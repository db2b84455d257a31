//! The rollout state machine as one pure function: from the target and
//! stable revisions, the previous `status.rollout`, what the cluster holds
//! and the clock, decide what to apply, the next `status.rollout`, the
//! Events and when to look again. It depends on `now` only through the
//! timestamps it stores in status, so an operator restarted mid-step
//! resumes exactly where the last one stopped.
//!
//! ```text
//!            new revision (also mid-rollout or mid-rollback: a spec change wins)
//!                  |
//!                  v
//!   +------> Progressing --- every step healthy (and baked) ---> Complete
//!   |        step by step        |                                 |
//!   |        Foundation..Edge    | a step failed or timed out      |
//!   |                            v                                 |
//!   |      autoRollback and a stable revision?                     |
//!   |          yes |                      | no                     |
//!   |              v                      v                        |
//!   |         RollingBack              Halted (holds where it      |
//!   |         failed step..Foundation   failed; not retried)       |
//!   |              |                                               |
//!   |              v                                               |
//!   |         RolledBack (stable runs; the failed revision         |
//!   |         is not retried)                                      |
//!   +--------------- any of them, when the spec names a new revision
//! ```
//!
//! `spec.paused` freezes whatever state the rollout is in (no step starts,
//! no timeout counts); resuming restarts the current step's clock.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use super::analysis::{self, Samples, Verdict};
use super::health::{self, Cause, Cluster};
use super::outcome::Outcome;
use super::settings::Settings;
use super::steps;
use super::template::current_pods;
use crate::api::{RolloutFailure, RolloutState, RolloutStatus, RolloutStep};
use crate::reconcile::events::Transition;
use crate::reconcile::status::RolloutView;
use crate::render::{ChildKind, Rendered};
use storekeeper_contract::admin;

/// How often a step in flight is looked at again: pods are not watched, so
/// a container stuck pulling its image is noticed within this.
pub const POLL: TimeDelta = TimeDelta::seconds(10);

/// One revision of the shop, rendered.
#[derive(Clone, Copy, Debug)]
pub struct Revision<'a> {
    /// Its id (`revision::id`).
    pub id: &'a str,
    /// Its `spec.version`, for people.
    pub version: &'a str,
    /// Its objects.
    pub rendered: &'a Rendered,
}

/// Everything one decision needs.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The revision the spec asks for.
    pub target: Revision<'a>,
    /// The revision of `status.rollout.stableRevision`, rendered again from
    /// its ControllerRevision; `None` before the first rollout completed.
    pub stable: Option<Revision<'a>>,
    /// `status.rollout` as the operator last wrote it.
    pub previous: Option<&'a RolloutStatus>,
    /// What the cluster holds.
    pub cluster: Cluster<'a>,
    /// The spec's rollout settings.
    pub settings: &'a Settings,
    /// The new pods' counters read when the bake started, if still known.
    pub baseline: Option<&'a Samples>,
    /// The new pods' counters read now, when a decision asked for them.
    pub samples: Option<&'a Samples>,
    /// The current time.
    pub now: DateTime<Utc>,
}

/// Why the shell should read the new pods' `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The bake starts: keep these counters as its baseline (in memory,
    /// keyed by Store, target revision, step and `bakeStartedAt`).
    Baseline,
    /// The bake is over: call `decide` again, this pass, with the counters
    /// as `samples` (whatever could be read, even nothing) and the baseline.
    Verdict,
}

/// A new pod whose `/metrics` to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsTarget {
    /// The component it belongs to.
    pub component: String,
    /// The pod's name (the key in `Samples`).
    pub pod: String,
    /// Where its metrics are.
    pub url: String,
}

/// The pods to read metrics from, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsRequest {
    /// Baseline or verdict.
    pub purpose: Purpose,
    /// The step being baked.
    pub step: RolloutStep,
    /// Its new pods.
    pub pods: Vec<MetricsTarget>,
}

/// What to do this pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The objects that should exist now (`reconcile::plan` decides which
    /// of them need a write). Mid-rollout this is a mix of revisions.
    pub desired: Rendered,
    /// Whether children not in `desired` may be deleted: only once a whole
    /// revision runs (complete, or rolled back), never mid-rollout.
    pub prune: bool,
    /// The next `status.rollout`.
    pub rollout: Option<RolloutStatus>,
    /// The next `status.currentVersion`.
    pub current_version: Option<String>,
    /// What the rollout means for phase and conditions.
    pub outcome: Outcome,
    /// Events to publish, each once.
    pub events: Vec<Transition>,
    /// When to look again at the latest; `None` for the usual resync.
    pub requeue_after: Option<Duration>,
    /// Metrics to read before (or after) acting on this decision.
    pub metrics: Option<MetricsRequest>,
}

impl Decision {
    /// What `reconcile::status` needs of this decision.
    pub fn view(&self) -> RolloutView {
        RolloutView {
            rollout: self.rollout.clone(),
            current_version: self.current_version.clone(),
            phase: self.outcome.phase(),
            conditions: self.outcome.conditions(),
        }
    }
}

/// Whether this pass needs the Store's pods and ReplicaSets: only while a
/// rollout is (or is about to be) in flight. Otherwise `decide` never looks
/// at them, and the shell can skip those two lists (steady state stays as
/// cheap as before).
pub fn in_flight(previous: Option<&RolloutStatus>, target: &str) -> bool {
    previous.is_none_or(|p| {
        p.target_revision != target
            || matches!(
                p.state,
                RolloutState::Progressing | RolloutState::RollingBack
            )
    })
}

/// Decides one pass.
pub fn decide(input: &Input<'_>) -> Decision {
    if input.settings.paused {
        return paused(input);
    }
    let mut pass = Pass::new(input);
    match input.previous {
        Some(prev) if prev.target_revision == input.target.id => {
            pass.st = prev.clone();
            pass.resume();
            match pass.st.state {
                RolloutState::Progressing => pass.forward(false),
                RolloutState::RollingBack => pass.rollback(),
                RolloutState::Complete | RolloutState::RolledBack | RolloutState::Halted => {}
            }
        }
        other => {
            pass.start(other);
            pass.forward(true);
        }
    }
    pass.finish(None)
}

/// A paused Store: nothing moves; in-flight clocks are marked stopped.
fn paused(input: &Input<'_>) -> Decision {
    let mut pass = Pass::new(input);
    let Some(prev) = input.previous else {
        return pass.finish(Some(
            "spec.paused is set; the first rollout waits".to_owned(),
        ));
    };
    pass.st = prev.clone();
    let mut message = match (pass.st.state, pass.st.step) {
        (RolloutState::Progressing | RolloutState::RollingBack, Some(step)) => {
            if pass.st.paused_at.is_none() {
                pass.st.paused_at = Some(stamp(input.now));
            }
            format!("spec.paused is set; holding at step {step}")
        }
        _ => "spec.paused is set".to_owned(),
    };
    if prev.target_revision != input.target.id {
        message = format!("{message}; revision {} waits", input.target.id);
    }
    pass.finish(Some(message))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse(t: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How a bake stands.
enum Bake {
    /// Still baking, or waiting for metrics: stop here this pass.
    Wait,
    /// The step failed analysis.
    Failed,
    /// Baked and judged: go on.
    Done,
}

/// One pass of the state machine, accumulating its answer.
struct Pass<'i, 'a> {
    input: &'i Input<'a>,
    st: RolloutStatus,
    events: Vec<Transition>,
    requeue: Option<TimeDelta>,
    metrics: Option<MetricsRequest>,
    has_state: bool,
}

impl<'i, 'a> Pass<'i, 'a> {
    fn new(input: &'i Input<'a>) -> Self {
        Self {
            input,
            st: RolloutStatus::new(
                RolloutState::Progressing,
                input.target.id,
                input.stable.map(|s| s.id),
            ),
            events: Vec::new(),
            requeue: None,
            metrics: None,
            has_state: input.previous.is_some(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.input.now
    }

    fn event(&mut self, warning: bool, reason: &str, note: String) {
        self.events.push(Transition {
            warning,
            reason: reason.to_owned(),
            note,
        });
    }

    /// Starts the current step's clock now.
    fn enter(&mut self, step: RolloutStep) {
        self.st.step = Some(step);
        self.st.step_started_at = Some(stamp(self.now()));
        self.st.bake_started_at = None;
    }

    /// When the current step started, as stored (a missing or unreadable
    /// time restarts the clock, which only ever gives more time).
    fn started(&mut self) -> DateTime<Utc> {
        if let Some(t) = parse(self.st.step_started_at.as_deref()) {
            return t;
        }
        self.st.step_started_at = Some(stamp(self.now()));
        parse(self.st.step_started_at.as_deref()).unwrap_or(self.now())
    }

    /// Waits with `message`, looking again by `deadline` (and within POLL).
    fn wait(&mut self, message: String, deadline: DateTime<Utc>) {
        self.st.message = message;
        self.requeue = Some((deadline - self.now()).min(POLL));
    }

    /// A new revision: a new rollout from the first step.
    fn start(&mut self, prev: Option<&RolloutStatus>) {
        self.has_state = true;
        let t = self.input.target;
        let mut note = match self.input.stable {
            Some(s) => format!(
                "rolling out revision {} (version {}) over revision {} (version {})",
                t.id, t.version, s.id, s.version
            ),
            None => format!(
                "rolling out revision {} (version {}), the first",
                t.id, t.version
            ),
        };
        if let Some(p) = prev
            && matches!(
                p.state,
                RolloutState::Progressing | RolloutState::RollingBack
            )
        {
            note = format!(
                "{note}; it replaces revision {} in flight",
                p.target_revision
            );
        }
        self.event(false, "RolloutStarted", note);
        self.enter(RolloutStep::Foundation);
    }

    /// Leaving a pause: the step's clock and bake start over.
    fn resume(&mut self) {
        if self.st.paused_at.take().is_some()
            && let Some(step) = self.st.step
        {
            self.enter(step);
        }
    }

    /// Forward through every step that is healthy now; stop at the first
    /// that is not (it is applied this pass).
    fn forward(&mut self, mut entered: bool) {
        let target = self.input.target.rendered;
        let timeout = self.input.settings.health_timeout;
        loop {
            let step = *self.st.step.get_or_insert(RolloutStep::Foundation);
            let started = self.started();
            let a = health::assess(steps::objects(target, step), &self.input.cluster, started);
            if let Some(cause) = a.failure {
                return self.fail(step, cause);
            }
            if let Some(waiting) = a.waiting {
                self.st.bake_started_at = None;
                if self.now() >= started + timeout {
                    let cause = Cause {
                        reason: "HealthTimeout".to_owned(),
                        message: format!(
                            "not healthy within {}s: {}",
                            timeout.num_seconds(),
                            waiting.message
                        ),
                        component: waiting.component,
                    };
                    return self.fail(step, cause);
                }
                self.wait(
                    format!("step {step}: waiting for {waiting}"),
                    started + timeout,
                );
                return self.announce(step, entered);
            }
            match self.bake(step) {
                Bake::Wait => return self.announce(step, entered),
                Bake::Failed => return,
                Bake::Done => {}
            }
            match step.next() {
                Some(next) => {
                    self.enter(next);
                    entered = true;
                }
                None => return self.complete(),
            }
        }
    }

    fn announce(&mut self, step: RolloutStep, entered: bool) {
        if entered {
            let note = format!("step {step} of revision {}", self.input.target.id);
            self.event(false, "StepStarted", note);
        }
    }

    /// Bakes a healthy step that must (analysis set, a baking step, and
    /// changed by this rollout), judging the new pods' metrics at the end.
    fn bake(&mut self, step: RolloutStep) -> Bake {
        let input = self.input;
        let Some(analysis) = &input.settings.analysis else {
            return Bake::Done;
        };
        let stable = input.stable.map(|s| s.rendered);
        if !step.bakes() || !steps::changed(input.target.rendered, stable, step) {
            return Bake::Done;
        }
        let Some(since) = parse(self.st.bake_started_at.as_deref()) else {
            self.st.bake_started_at = Some(stamp(self.now()));
            let end =
                parse(self.st.bake_started_at.as_deref()).unwrap_or(self.now()) + analysis.bake;
            self.request(Purpose::Baseline, step);
            self.wait(
                format!("step {step}: healthy; baking until {}", stamp(end)),
                end,
            );
            return Bake::Wait;
        };
        let end = since + analysis.bake;
        if self.now() < end {
            self.wait(
                format!("step {step}: healthy; baking until {}", stamp(end)),
                end,
            );
            return Bake::Wait;
        }
        let Some(samples) = input.samples else {
            self.request(Purpose::Verdict, step);
            self.st.message = format!("step {step}: baked; reading the new pods' metrics");
            self.requeue = Some(POLL);
            return Bake::Wait;
        };
        let mut notes = Vec::new();
        for (component, pods) in self.new_pods(step) {
            let names: Vec<&str> = pods.iter().map(|p| p.pod.as_str()).collect();
            let (sum, answered) = analysis::total(names.iter().copied(), input.baseline, samples);
            match analysis::judge(&analysis.limits, &sum, answered, names.len()) {
                Verdict::Fail(message) => {
                    let cause = Cause {
                        component,
                        reason: "AnalysisFailed".to_owned(),
                        message,
                    };
                    self.fail(step, cause);
                    return Bake::Failed;
                }
                Verdict::Pass(m) => notes.push(format!("{component}: {m}")),
                Verdict::NotEnoughData(m) => notes.push(format!("{component}: not judged, {m}")),
            }
        }
        self.event(
            false,
            "AnalysisPassed",
            format!("step {step}: {}", notes.join("; ")),
        );
        Bake::Done
    }

    fn request(&mut self, purpose: Purpose, step: RolloutStep) {
        let pods = self
            .new_pods(step)
            .into_iter()
            .flat_map(|(_, p)| p)
            .collect();
        self.metrics = Some(MetricsRequest {
            purpose,
            step,
            pods,
        });
    }

    /// The new pods of each Deployment of `step`, with an IP to read from.
    fn new_pods(&self, step: RolloutStep) -> Vec<(String, Vec<MetricsTarget>)> {
        let cluster = &self.input.cluster;
        steps::objects(self.input.target.rendered, step)
            .filter(|o| o.kind == ChildKind::Deployment)
            .map(|o| {
                let component = health::component(o);
                let pods = cluster
                    .children
                    .get(o.kind, &o.name)
                    .map(|live| current_pods(o.kind, live, cluster.pods, cluster.replica_sets))
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|p| {
                        let name = p.pointer("/metadata/name")?.as_str()?;
                        let ip = p.pointer("/status/podIP")?.as_str()?;
                        let host = if ip.contains(':') {
                            format!("[{ip}]")
                        } else {
                            ip.to_owned()
                        };
                        Some(MetricsTarget {
                            component: component.clone(),
                            pod: name.to_owned(),
                            url: format!("http://{host}:{}{}", admin::PORT, admin::METRICS_PATH),
                        })
                    })
                    .collect();
                (component, pods)
            })
            .collect()
    }

    /// The target failed at `step`: roll back, or hold.
    fn fail(&mut self, step: RolloutStep, cause: Cause) {
        let t = self.input.target.id;
        let what = format!("revision {t} failed at step {step}: {cause}");
        self.st.failed_revision = Some(t.to_owned());
        self.st.failure = Some(RolloutFailure {
            step,
            component: cause.component,
            reason: cause.reason,
            message: cause.message,
        });
        self.st.bake_started_at = None;
        self.metrics = None;
        match (self.input.settings.auto_rollback, self.input.stable) {
            (true, Some(stable)) => {
                self.st.state = RolloutState::RollingBack;
                self.enter(step);
                self.event(
                    true,
                    "RolloutFailed",
                    format!("{what}; rolling back to revision {}", stable.id),
                );
                self.rollback();
            }
            (auto_rollback, _) => {
                self.st.state = RolloutState::Halted;
                self.st.step_started_at = None;
                let why = if auto_rollback {
                    "there is no earlier revision to roll back to"
                } else {
                    "spec.rollout.autoRollback is off"
                };
                self.st.message =
                    format!("{what}; holding at this step ({why}); the old pods keep serving");
                self.requeue = None;
                self.event(true, "RolloutFailed", self.st.message.clone());
            }
        }
    }

    /// Backwards through the steps the failed rollout reached, each back on
    /// the stable revision and healthy (or out of time: a rollback never
    /// stops half-way) before the one below it.
    fn rollback(&mut self) {
        let Some(stable) = self.input.stable else {
            self.st.state = RolloutState::Halted;
            self.st.step_started_at = None;
            self.st.message = format!(
                "cannot roll back: the stable revision {} is not stored any more; holding",
                self.st.stable_revision.as_deref().unwrap_or("?")
            );
            self.requeue = None;
            return;
        };
        let timeout = self.input.settings.health_timeout;
        loop {
            let step = *self.st.step.get_or_insert(RolloutStep::Foundation);
            let started = self.started();
            let a = health::assess(
                steps::objects(stable.rendered, step),
                &self.input.cluster,
                started,
            );
            if let Some(waiting) = a.waiting {
                if self.now() < started + timeout {
                    self.wait(
                        format!(
                            "rolling back step {step} to revision {}: waiting for {waiting}",
                            stable.id
                        ),
                        started + timeout,
                    );
                    return;
                }
                self.event(
                    true,
                    "RollbackStepTimedOut",
                    format!(
                        "step {step} is not healthy on revision {} after {}s ({waiting}); rolling back the steps before it anyway",
                        stable.id,
                        timeout.num_seconds()
                    ),
                );
            }
            match step.previous() {
                Some(previous) => self.enter(previous),
                None => return self.rolled_back(stable),
            }
        }
    }

    fn rolled_back(&mut self, stable: Revision<'_>) {
        self.st.state = RolloutState::RolledBack;
        self.st.step = None;
        self.st.step_started_at = None;
        self.st.bake_started_at = None;
        self.requeue = None;
        let failure = self
            .st
            .failure
            .as_ref()
            .map(|f| format!(" at step {}: {}: {}", f.step, f.component, f.message))
            .unwrap_or_default();
        self.st.message = format!(
            "back on revision {} (version {}); revision {} failed{failure} and is not retried until the spec changes",
            stable.id, stable.version, self.input.target.id
        );
        self.event(true, "RolledBack", self.st.message.clone());
    }

    fn complete(&mut self) {
        let t = self.input.target;
        self.st = RolloutStatus::new(RolloutState::Complete, t.id, Some(t.id));
        self.requeue = None;
        self.event(
            false,
            "RolloutComplete",
            format!(
                "revision {} (version {}) runs in every step",
                t.id, t.version
            ),
        );
    }

    /// The revision with this id, if it is one this pass knows.
    fn revision(&self, id: &str) -> Option<Revision<'a>> {
        let input = self.input;
        std::iter::once(input.target)
            .chain(input.stable)
            .find(|r| r.id == id)
    }

    /// The decision for the state reached.
    fn finish(self, paused: Option<String>) -> Decision {
        let target = self.input.target;
        let stable = self.input.stable;
        let st = &self.st;
        // Complete: whatever revision completed (while paused, a new target waits).
        let running = self.revision(&st.target_revision).unwrap_or(target);
        let (desired, prune) = match st.state {
            RolloutState::Complete => (running.rendered.clone(), true),
            RolloutState::RolledBack => match stable {
                Some(s) => (s.rendered.clone(), true),
                None => (steps::mix(target.rendered, None, None), false),
            },
            RolloutState::Progressing | RolloutState::Halted => (
                steps::mix(target.rendered, stable.map(|s| s.rendered), st.step),
                false,
            ),
            RolloutState::RollingBack => (
                steps::mix(
                    target.rendered,
                    stable.map(|s| s.rendered),
                    st.step.and_then(RolloutStep::previous),
                ),
                false,
            ),
        };
        let current_version = match st.state {
            RolloutState::Complete => Some(running.version.to_owned()),
            _ => stable.map(|s| s.version.to_owned()),
        };
        let rollout = self.has_state.then(|| self.st.clone());
        let requeue_after = if paused.is_some() {
            None
        } else {
            self.requeue
                .map(|d| d.to_std().unwrap_or_default().max(Duration::from_secs(1)))
        };
        Decision {
            desired,
            prune: prune && paused.is_none(),
            outcome: Outcome::of(rollout.as_ref(), paused),
            rollout,
            current_version,
            events: self.events,
            requeue_after,
            metrics: self.metrics,
        }
    }
}
