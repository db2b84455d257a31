//! Test-only: a small simulated cluster for the rollout's pure functions.
//! Applying an object makes it live the way the API server and the
//! workload controllers would: a bumped generation, a ReplicaSet or
//! StatefulSet revision for a new template, pods in the state a scripted
//! fault asks for, and `/metrics` counters that grow with time. A driver
//! runs `decide` pass after pass against it, like the controller would.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::analysis::Samples;
use super::decide::{Decision, Input, MetricsRequest, Purpose, Revision, decide, in_flight};
use super::exposition::Counters;
use super::health::Cluster;
use super::revision;
use super::settings::Settings;
use super::template::{CONTROLLER_REVISION_HASH, DEPLOYMENT_REVISION, POD_TEMPLATE_HASH};
use crate::api::{RolloutStatus, RolloutStep, Store};
use crate::fixtures::store;
use crate::reconcile::Observed;
use crate::reconcile::events::Transition;
use crate::reconcile::plan::needs_apply;
use crate::render::{ChildKind, Object, Rendered, render};

/// When every simulated run starts.
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// The Store `shop` with `change` applied, rendered.
pub fn upgraded(change: impl FnOnce(&mut Store)) -> Rendered {
    let mut s = store("shop");
    change(&mut s);
    render(&s).unwrap()
}

/// A new version that changes every step: the version (Backends,
/// Storefront), the ingress controller's namespace (Foundation's
/// NetworkPolicies), PostgreSQL's memory (Data), the IngressClass (Edge).
pub fn everything_changes(s: &mut Store) {
    s.spec.version = "1.4.0".into();
    s.spec.ingress.controller_namespace = "ingress-system".into();
    if let Some(m) = s.spec.postgres.managed.as_mut() {
        m.resources.limits.memory = "1Gi".into();
    }
    s.spec.ingress.class_name = "traefik".into();
}

/// `(stable, target)`: the fixture Store and `everything_changes` of it.
pub fn two_revisions() -> (Rendered, Rendered) {
    (upgraded(|_| {}), upgraded(everything_changes))
}

/// An owned revision for the driver.
#[derive(Clone, Debug)]
pub struct Rev {
    /// Id.
    pub id: String,
    /// Version.
    pub version: String,
    /// Objects.
    pub rendered: Rendered,
}

impl Rev {
    /// The revision of the fixture Store with `change` applied.
    pub fn of(change: impl FnOnce(&mut Store)) -> Self {
        let mut s = store("shop");
        change(&mut s);
        Self {
            id: revision::id(&s.spec),
            version: s.spec.version.clone(),
            rendered: render(&s).unwrap(),
        }
    }

    /// Borrowed, as `decide` takes it.
    pub fn as_revision(&self) -> Revision<'_> {
        Revision {
            id: &self.id,
            version: &self.version,
            rendered: &self.rendered,
        }
    }

    /// The object of that kind whose name ends in `-<component>`.
    pub fn object(&self, kind: ChildKind, component: &str) -> &Object {
        self.rendered
            .objects
            .iter()
            .find(|o| o.kind == kind && o.name == format!("shop-{component}"))
            .unwrap_or_else(|| panic!("no {kind:?} shop-{component}"))
    }
}

/// How a workload running a given template misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// Its new pod never gets scheduled (and no error says why it waits).
    Slow,
    /// Its new pod's container waits with this reason.
    Waiting(&'static str),
    /// Its new pods run and are ready but restarted.
    Restarting,
    /// The Deployment reports `ProgressDeadlineExceeded`.
    Deadline,
    /// The Deployment cannot create pods.
    ReplicaFailure,
    /// The API server refuses the apply.
    RejectApply,
    /// Healthy, but this share of requests is answered 5xx.
    Errors(f64),
}

/// One apply the simulation saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Which pass.
    pub pass: usize,
    /// When.
    pub at: DateTime<Utc>,
    /// Kind.
    pub kind: ChildKind,
    /// Name.
    pub name: String,
    /// Step.
    pub step: RolloutStep,
    /// Hash applied.
    pub hash: String,
}

/// Requests per second every simulated pod serves.
const RATE: f64 = 10.0;

/// The simulated cluster.
#[derive(Clone, Debug)]
pub struct World {
    /// Children as listed.
    pub children: Observed,
    /// Pods as listed.
    pub pods: Vec<Value>,
    /// ReplicaSets as listed.
    pub replica_sets: Vec<Value>,
    /// The clock.
    pub now: DateTime<Utc>,
    /// Faults by the hash of the object that brings them.
    pub faults: BTreeMap<String, Fault>,
    /// Every apply, in order.
    pub applied: Vec<Applied>,
    /// Every delete, in order.
    pub pruned: Vec<(ChildKind, String)>,
    /// Pass counter.
    pub pass: usize,
    revisions: i64,
}

impl World {
    /// An empty namespace.
    pub fn empty() -> Self {
        Self {
            children: Observed::default(),
            pods: Vec::new(),
            replica_sets: Vec::new(),
            now: t0(),
            faults: BTreeMap::new(),
            applied: Vec::new(),
            pruned: Vec::new(),
            pass: 0,
            revisions: 0,
        }
    }

    /// A namespace running `rendered`, healthy, its pods a day old and with
    /// old restarts (which must never fail a later rollout).
    pub fn running(rendered: &Rendered) -> Self {
        let mut w = Self::empty();
        w.now = t0() - TimeDelta::days(1);
        for o in &rendered.objects {
            w.put(o);
        }
        for p in &mut w.pods {
            if let Some(statuses) = p.pointer_mut("/status/containerStatuses/0") {
                statuses["restartCount"] = json!(3);
            }
        }
        w.now = t0();
        w.applied.clear();
        w
    }

    /// The cluster as `decide` reads it.
    pub fn cluster(&self) -> Cluster<'_> {
        Cluster {
            children: &self.children,
            pods: &self.pods,
            replica_sets: &self.replica_sets,
        }
    }

    /// Carries out a decision's objects the way `reconcile::plan` would.
    pub fn apply(&mut self, desired: &Rendered, prune: bool) {
        for o in &desired.objects {
            if needs_apply(o, &self.children).is_none()
                || self.faults.get(&o.hash) == Some(&Fault::RejectApply)
            {
                continue;
            }
            self.applied.push(Applied {
                pass: self.pass,
                at: self.now,
                kind: o.kind,
                name: o.name.clone(),
                step: RolloutStep::of(o),
                hash: o.hash.clone(),
            });
            self.put(o);
        }
        if prune {
            let gone: Vec<(ChildKind, String)> = self
                .children
                .iter()
                .filter(|(k, n, _)| {
                    k.is_applied() && !desired.objects.iter().any(|o| o.kind == *k && o.name == *n)
                })
                .map(|(k, n, _)| (k, n.to_owned()))
                .collect();
            let mut kept = Observed::default();
            for (kind, name, value) in self.children.iter() {
                if !gone.iter().any(|(k, n)| *k == kind && n == name) {
                    kept.insert(kind, value.clone());
                }
            }
            self.children = kept;
            self.pruned.extend(gone);
        }
    }

    /// The object live after an apply.
    fn put(&mut self, o: &Object) {
        let generation = self
            .children
            .get(o.kind, &o.name)
            .and_then(|v| v.pointer("/metadata/generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        let mut live = Value::clone(&o.value);
        live["metadata"]["generation"] = json!(generation);
        live["metadata"]["uid"] = json!(format!("uid-{}", o.name));
        live["metadata"]["creationTimestamp"] = json!(stamp(self.now));
        let fault = self.faults.get(&o.hash).copied();
        match o.kind {
            ChildKind::Deployment => self.run_deployment(&mut live, &o.hash, fault),
            ChildKind::StatefulSet => self.run_statefulset(&mut live, &o.hash, fault),
            ChildKind::Job => self.run_job(&mut live, fault),
            _ => {}
        }
        self.children.insert(o.kind, live);
    }

    fn selector(live: &Value) -> Value {
        live["spec"]["selector"]["matchLabels"].clone()
    }

    fn selected(live: &Value, v: &Value) -> bool {
        Self::selector(live)
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, val)| v["metadata"]["labels"][k] == *val)
    }

    fn new_pod(&self, name: &str, labels: &Value, image: &str, fault: Option<Fault>) -> Value {
        let created = stamp(self.now);
        let container = |state: Value, ready: bool, restarts: i64, last: Value| {
            json!([{"name": "app", "image": image, "ready": ready, "restartCount": restarts,
                "state": state, "lastState": last}])
        };
        let running = json!({"running": {"startedAt": created}});
        let (phase, statuses, conditions) = match fault {
            Some(Fault::Slow | Fault::Deadline) => (
                "Pending",
                json!([]),
                json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 Insufficient cpu."}]),
            ),
            Some(Fault::Waiting(reason)) => {
                let crash = reason == "CrashLoopBackOff";
                (
                    "Pending",
                    container(
                        json!({"waiting": {"reason": reason, "message": "secret \"x\" not found"}}),
                        false,
                        if crash { 4 } else { 0 },
                        if crash {
                            json!({"terminated": {"reason": "Error", "exitCode": 1}})
                        } else {
                            json!({})
                        },
                    ),
                    json!([]),
                )
            }
            Some(Fault::Restarting) => (
                "Running",
                container(
                    running,
                    true,
                    2,
                    json!({"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
                ),
                json!([]),
            ),
            _ => ("Running", container(running, true, 0, json!({})), json!([])),
        };
        json!({"metadata": {"name": name, "namespace": "shop", "labels": labels,
                "creationTimestamp": created},
            "status": {"phase": phase, "podIP": format!("10.0.0.{}", self.pods.len() + 1),
                "containerStatuses": statuses, "conditions": conditions}})
    }

    fn run_deployment(&mut self, live: &mut Value, hash: &str, fault: Option<Fault>) {
        let name = live["metadata"]["name"].as_str().unwrap().to_owned();
        let want = live["spec"]["replicas"].as_i64().unwrap_or(1);
        let image = live["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let template = hash[..8].to_owned();
        self.revisions += 1;
        let revision = self.revisions.to_string();
        live["metadata"]["annotations"][DEPLOYMENT_REVISION] = json!(revision);
        let mut labels = Self::selector(live);
        labels[POD_TEMPLATE_HASH] = json!(template);
        self.replica_sets
            .retain(|rs| rs["metadata"]["labels"] != labels);
        self.replica_sets
            .push(json!({"metadata": {"name": format!("{name}-{template}"),
            "labels": labels, "annotations": {DEPLOYMENT_REVISION: revision},
            "ownerReferences": [{"uid": format!("uid-{name}"), "controller": true}]}}));
        let stuck = matches!(
            fault,
            Some(Fault::Slow | Fault::Waiting(_) | Fault::Deadline | Fault::ReplicaFailure)
        );
        if !stuck {
            self.pods.retain(|p| !Self::selected(live, p));
        }
        let new_pods = match fault {
            Some(Fault::ReplicaFailure) => 0,
            _ if stuck => 1,
            _ => want,
        };
        for i in 0..new_pods {
            let pod = self.new_pod(&format!("{name}-{template}-{i}"), &labels, &image, fault);
            self.pods.push(pod);
        }
        let generation = live["metadata"]["generation"].clone();
        live["status"] = if stuck {
            json!({"observedGeneration": generation, "replicas": want + new_pods,
                "updatedReplicas": new_pods, "availableReplicas": want, "readyReplicas": want})
        } else {
            json!({"observedGeneration": generation, "replicas": want, "updatedReplicas": want,
                "availableReplicas": want, "readyReplicas": want})
        };
        let condition = match fault {
            Some(Fault::Deadline) => Some(json!({"type": "Progressing", "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": format!("ReplicaSet \"{name}-{template}\" has timed out progressing.")})),
            Some(Fault::ReplicaFailure) => Some(json!({"type": "ReplicaFailure", "status": "True",
                "reason": "FailedCreate", "message": "pods \"x\" is forbidden: exceeded quota"})),
            _ => None,
        };
        if let Some(c) = condition {
            live["status"]["conditions"] = json!([c]);
        }
    }

    fn run_statefulset(&mut self, live: &mut Value, hash: &str, fault: Option<Fault>) {
        let name = live["metadata"]["name"].as_str().unwrap().to_owned();
        let image = live["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let update = format!("{name}-{}", &hash[..8]);
        let current = self
            .children
            .get(ChildKind::StatefulSet, &name)
            .and_then(|v| v.pointer("/status/currentRevision"))
            .cloned()
            .unwrap_or(json!(update));
        self.pods.retain(|p| !Self::selected(live, p));
        let mut labels = Self::selector(live);
        labels[CONTROLLER_REVISION_HASH] = json!(update);
        let fault = match fault {
            Some(Fault::Deadline | Fault::ReplicaFailure) => Some(Fault::Slow),
            f => f,
        };
        let pod = self.new_pod(&format!("{name}-0"), &labels, &image, fault);
        self.pods.push(pod);
        let healthy = matches!(fault, None | Some(Fault::Restarting | Fault::Errors(_)));
        let generation = live["metadata"]["generation"].clone();
        live["status"] = json!({"observedGeneration": generation, "replicas": 1,
            "readyReplicas": i32::from(healthy), "updatedReplicas": 1,
            "currentRevision": if healthy { json!(update) } else { current },
            "updateRevision": update});
    }

    /// A migration Job: complete at once, or failed, or with a pod that
    /// cannot start (its own `Fault`s: `Deadline` is the Job's active
    /// deadline, `ReplicaFailure` its backoff limit).
    fn run_job(&mut self, live: &mut Value, fault: Option<Fault>) {
        let name = live["metadata"]["name"].as_str().unwrap().to_owned();
        let failed = |reason: &str, message: &str| {
            json!({"failed": 3, "conditions": [{"type": "Failed", "status": "True",
                "reason": reason, "message": message}]})
        };
        live["status"] = match fault {
            Some(Fault::Waiting(_) | Fault::Slow) => {
                let image = live["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let labels = live["spec"]["template"]["metadata"]["labels"].clone();
                let mut pod = self.new_pod(&format!("{name}-x7k2p"), &labels, &image, fault);
                pod["metadata"]["ownerReferences"] =
                    json!([{"uid": format!("uid-{name}"), "controller": true}]);
                self.pods.push(pod);
                json!({"active": 1})
            }
            Some(Fault::Deadline) => failed(
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ),
            Some(Fault::ReplicaFailure | Fault::Restarting) => failed(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ),
            _ => json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
        };
    }

    /// What the pods of a metrics request would answer now.
    pub fn sample(&self, request: &MetricsRequest) -> Samples {
        request
            .pods
            .iter()
            .filter_map(|target| {
                let pod = self
                    .pods
                    .iter()
                    .find(|p| p["metadata"]["name"] == json!(target.pod))?;
                let created =
                    DateTime::parse_from_rfc3339(pod["metadata"]["creationTimestamp"].as_str()?)
                        .ok()?;
                let seconds = (self.now - created.with_timezone(&Utc)).num_seconds();
                #[allow(clippy::cast_precision_loss)] // test seconds are small
                let requests = RATE * seconds as f64;
                let hash = self.template_hash_of(pod)?;
                let ratio = match self.faults.get(&hash) {
                    Some(Fault::Errors(r)) => *r,
                    _ => 0.0,
                };
                Some((
                    target.pod.clone(),
                    Counters {
                        requests,
                        errors: requests * ratio,
                        buckets: vec![(0.002, requests), (f64::INFINITY, requests)],
                    },
                ))
            })
            .collect()
    }

    /// The hash of the object whose template the pod runs.
    fn template_hash_of(&self, pod: &Value) -> Option<String> {
        let tag = pod["metadata"]["labels"][POD_TEMPLATE_HASH]
            .as_str()
            .map(ToOwned::to_owned)
            .or_else(|| {
                pod["metadata"]["labels"][CONTROLLER_REVISION_HASH]
                    .as_str()
                    .and_then(|r| r.rsplit('-').next())
                    .map(ToOwned::to_owned)
            })?;
        self.faults
            .keys()
            .find(|h| h.starts_with(&tag))
            .cloned()
            .or(Some(tag))
    }

    /// The live hash of every applied child, by kind and name.
    pub fn hashes(&self) -> BTreeMap<(ChildKind, String), String> {
        self.children
            .iter()
            .filter(|(k, _, _)| k.is_applied())
            .map(|(k, n, v)| {
                let h = crate::reconcile::observed::applied_hash(v).unwrap_or_default();
                ((k, n.to_owned()), h.to_owned())
            })
            .collect()
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The hashes a whole revision would leave live.
pub fn hashes_of(rendered: &Rendered) -> BTreeMap<(ChildKind, String), String> {
    rendered
        .objects
        .iter()
        .map(|o| ((o.kind, o.name.clone()), o.hash.clone()))
        .collect()
}

/// Drives `decide` against a `World`, pass after pass.
pub struct Driver<'a> {
    /// The cluster.
    pub world: World,
    /// The spec's revision.
    pub target: &'a Rev,
    /// The stable revision.
    pub stable: Option<&'a Rev>,
    /// The spec's rollout settings.
    pub settings: Settings,
    /// `status.rollout` as last written.
    pub status: Option<RolloutStatus>,
    /// Baseline samples kept by the shell.
    pub baseline: Option<Samples>,
    /// Every decision.
    pub decisions: Vec<Decision>,
    /// When each decision was made.
    pub times: Vec<DateTime<Utc>>,
}

impl<'a> Driver<'a> {
    /// A driver with default settings.
    pub fn new(world: World, target: &'a Rev, stable: Option<&'a Rev>) -> Self {
        Self {
            world,
            target,
            stable,
            settings: Settings::from_spec(&store("shop").spec).unwrap(),
            status: stable.map(|s| complete(&s.id)),
            baseline: None,
            decisions: Vec::new(),
            times: Vec::new(),
        }
    }

    /// One reconcile: decide (reading metrics when asked), apply unless
    /// paused, remember the status, let time pass until the requeue.
    pub fn pass(&mut self) -> &Decision {
        let (target, stable) = (self.target.as_revision(), self.stable.map(Rev::as_revision));
        let input = Input {
            target,
            stable,
            previous: self.status.as_ref(),
            cluster: self.world.cluster(),
            settings: &self.settings,
            baseline: self.baseline.as_ref(),
            samples: None,
            now: self.world.now,
        };
        let mut decision = decide(&input);
        assert_eq!(decide(&input), decision, "decide is deterministic");
        let restarted: Option<RolloutStatus> = self
            .status
            .as_ref()
            .map(|s| serde_json::from_value(serde_json::to_value(s).unwrap()).unwrap());
        assert_eq!(
            decide(&Input {
                previous: restarted.as_ref(),
                ..input
            }),
            decision,
            "a status read back from the API decides the same"
        );
        if !in_flight(input.previous, &self.target.id) {
            let blind = Input {
                cluster: Cluster {
                    pods: &[],
                    replica_sets: &[],
                    ..input.cluster
                },
                ..input
            };
            assert_eq!(
                decide(&blind),
                decision,
                "no pods needed when nothing is in flight"
            );
        }
        if let Some(request) = decision.metrics.clone() {
            let samples = self.world.sample(&request);
            match request.purpose {
                Purpose::Baseline => self.baseline = Some(samples),
                Purpose::Verdict => {
                    decision = decide(&Input {
                        samples: Some(&samples),
                        ..input
                    });
                }
            }
        }
        if !self.settings.paused {
            self.world.apply(&decision.desired, decision.prune);
        }
        self.status.clone_from(&decision.rollout);
        let wait = decision
            .requeue_after
            .map_or(TimeDelta::seconds(30), |d| TimeDelta::from_std(d).unwrap());
        self.times.push(self.world.now);
        self.world.now += wait;
        self.world.pass += 1;
        self.decisions.push(decision);
        self.decisions.last().unwrap()
    }

    /// Passes until nothing is in flight (at most `limit`).
    pub fn settle(&mut self, limit: usize) -> &Decision {
        for _ in 0..limit {
            let d = self.pass();
            if d.requeue_after.is_none() && d.metrics.is_none() {
                break;
            }
        }
        self.decisions.last().unwrap()
    }

    /// Every Event so far.
    pub fn events(&self) -> Vec<&Transition> {
        self.decisions.iter().flat_map(|d| &d.events).collect()
    }

    /// Reasons of every Event so far.
    pub fn reasons(&self) -> Vec<&str> {
        self.events().iter().map(|e| e.reason.as_str()).collect()
    }
}

/// `status.rollout` of a finished rollout of `id`.
pub fn complete(id: &str) -> RolloutStatus {
    RolloutStatus::new(crate::api::RolloutState::Complete, id, Some(id))
}
