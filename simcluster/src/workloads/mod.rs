//! The workload simulator: one task that plays the Deployment and
//! StatefulSet controllers and the kubelet against the simulated cluster,
//! following a [`Script`]. It reads and writes the object store directly
//! (its requests are not in the request log, like the real controllers'
//! are not the operator's), reacting to every change and to its own
//! timers (a pod's next state, a Deployment's progress deadline).

mod deployment;
mod pods;
pub(crate) mod script;
mod statefulset;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tracing::warn;

use self::pods::PodPlan;
use self::script::Script;
use crate::SimCluster;
use crate::fields::Scope;
use crate::metrics::PodMetrics;
use crate::objects::{Change, ChangeType};
use crate::resources::ResourceType;
use crate::selectors::Selector;
use crate::server::Shared;

/// Field manager of the simulated controllers' writes.
const CONTROLLER: &str = "kube-controller-manager";
/// Field manager of the simulated kubelet's writes.
const KUBELET: &str = "kubelet";

/// A running workload simulator; dropping it stops the simulation.
pub struct Workloads {
    task: JoinHandle<()>,
    metrics: PodMetrics,
}

impl Workloads {
    /// Starts simulating every Deployment, StatefulSet and Pod in `cluster`
    /// (those already there and those to come). Needs a tokio runtime.
    pub fn start(cluster: &SimCluster, script: Script) -> Self {
        let metrics = PodMetrics::default();
        let shared = Arc::clone(&cluster.shared);
        let changes = shared.objects.subscribe();
        let sim = Sim::new(shared, script, metrics.clone());
        let task = tokio::spawn(sim.run(changes));
        Self { task, metrics }
    }

    /// The pod's `/metrics` text (Prometheus format), as the operator's
    /// metrics fetcher would scrape it; `None` while the pod is not running.
    pub fn pod_metrics(&self, namespace: &str, pod: &str) -> Option<String> {
        self.metrics.render(namespace, pod)
    }

    /// From now on, for `duration`, pods whose image matches answer `ratio`
    /// of their requests with `500` (a bad release's error spike).
    pub fn burst_5xx(
        &self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        ratio: f64,
        duration: Duration,
    ) {
        self.metrics.burst(Arc::new(matches), ratio, duration);
    }
}

impl Drop for Workloads {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why the simulator wakes up at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Wake {
    /// Re-evaluate a pod's containers.
    Pod(String, String),
    /// Re-check a Deployment's progress deadline.
    Deployment(String, String),
}

/// A pod the kubelet runs.
struct Tracked {
    plan: PodPlan,
    born: Instant,
    ready: bool,
    running: bool,
}

/// The resource types the simulator works with.
struct Types {
    pods: ResourceType,
    deployments: ResourceType,
    statefulsets: ResourceType,
    replicasets: ResourceType,
    revisions: ResourceType,
}

/// A Deployment's last observed progress, for its deadline.
struct Progress {
    signature: (String, usize, usize, usize),
    since: Instant,
    stamp: String,
}

struct Sim {
    shared: Arc<Shared>,
    script: Script,
    metrics: PodMetrics,
    types: Types,
    pods: HashMap<(String, String), Tracked>,
    timers: BTreeMap<(Instant, u64), Wake>,
    seq: u64,
    progress: HashMap<(String, String), Progress>,
}

fn builtin(shared: &Shared, name: &str) -> ResourceType {
    shared
        .objects
        .type_by_name(name)
        .unwrap_or_else(|_| unreachable!("{name} is a built-in type"))
}

pub(crate) fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub(crate) fn uid_of(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The controller owner's `(kind, name, uid)`.
fn controller_of(v: &Value) -> Option<(&str, &str, &str)> {
    let r = v
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
    Some((
        r.get("kind")?.as_str()?,
        r.get("name")?.as_str()?,
        r.get("uid")?.as_str()?,
    ))
}

pub(crate) fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A short, stable hash of a pod template (the `pod-template-hash`).
pub(crate) fn template_hash(template: &Value) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let digest = Sha256::digest(template.to_string().as_bytes());
    digest.iter().take(5).fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

impl Sim {
    fn new(shared: Arc<Shared>, script: Script, metrics: PodMetrics) -> Self {
        let types = Types {
            pods: builtin(&shared, "pods"),
            deployments: builtin(&shared, "deployments"),
            statefulsets: builtin(&shared, "statefulsets"),
            replicasets: builtin(&shared, "replicasets"),
            revisions: builtin(&shared, "controllerrevisions"),
        };
        Self {
            shared,
            script,
            metrics,
            types,
            pods: HashMap::new(),
            timers: BTreeMap::new(),
            seq: 0,
            progress: HashMap::new(),
        }
    }

    async fn run(mut self, mut changes: tokio::sync::broadcast::Receiver<Arc<Change>>) {
        self.resync();
        loop {
            let next = self.timers.first_key_value().map(|((at, _), _)| *at);
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => self.on_change(&change),
                    Err(RecvError::Lagged(_)) => self.resync(),
                    Err(RecvError::Closed) => return,
                },
                () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => self.fire_due(),
            }
        }
    }

    /// Looks at everything (at start, and after missing changes).
    fn resync(&mut self) {
        let everything = Selector::default();
        let (pods, _) = self
            .shared
            .objects
            .list(&self.types.pods, None, &everything, &everything);
        for pod in pods {
            let key = (namespace_of(&pod), name_of(&pod).to_owned());
            if !self.pods.contains_key(&key) {
                self.track(&pod);
            }
        }
        for t in [
            self.types.deployments.clone(),
            self.types.statefulsets.clone(),
        ] {
            let (items, _) = self.shared.objects.list(&t, None, &everything, &everything);
            for item in items {
                self.reconcile(&t.plural, &namespace_of(&item), name_of(&item));
            }
        }
    }

    fn on_change(&mut self, change: &Change) {
        let ns = change.namespace.as_str();
        let name = name_of(&change.object).to_owned();
        match (change.group.as_str(), change.plural.as_str()) {
            ("", "pods") => {
                match change.kind {
                    ChangeType::Added => self.track(&change.object),
                    ChangeType::Deleted => {
                        self.pods.remove(&(ns.to_owned(), name.clone()));
                        self.metrics.forget(ns, &name);
                    }
                    ChangeType::Modified => {}
                }
                self.reconcile_owner(&change.object);
            }
            ("apps", plural @ ("deployments" | "statefulsets")) => {
                if change.kind == ChangeType::Deleted {
                    self.progress.remove(&(ns.to_owned(), name));
                } else {
                    self.reconcile(plural, ns, &name);
                }
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, plural: &str, ns: &str, name: &str) {
        if plural == "deployments" {
            self.reconcile_deployment(ns, name);
        } else {
            self.reconcile_statefulset(ns, name);
        }
    }

    /// Reconciles the Deployment or StatefulSet a pod belongs to.
    fn reconcile_owner(&mut self, pod: &Value) {
        let ns = namespace_of(pod);
        match controller_of(pod) {
            Some(("StatefulSet", name, _)) => self.reconcile_statefulset(&ns, name),
            Some(("ReplicaSet", rs, _)) => {
                let Some(set) = self.get(&self.types.replicasets.clone(), &ns, rs) else {
                    return;
                };
                if let Some(("Deployment", name, _)) = controller_of(&set) {
                    self.reconcile_deployment(&ns, name);
                }
            }
            _ => {}
        }
    }

    fn fire_due(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            match entry.remove() {
                Wake::Pod(ns, name) => self.tick_pod(&ns, &name),
                Wake::Deployment(ns, name) => self.reconcile_deployment(&ns, &name),
            }
        }
    }

    fn schedule(&mut self, at: Instant, wake: Wake) {
        if self
            .timers
            .iter()
            .any(|((when, _), w)| *when == at && *w == wake)
        {
            return;
        }
        self.seq += 1;
        self.timers.insert((at, self.seq), wake);
    }

    /// Starts playing the kubelet for a new pod.
    fn track(&mut self, pod: &Value) {
        let ns = namespace_of(pod);
        let name = name_of(pod).to_owned();
        let plan = PodPlan::of(pod, |image| self.script.behaviour(image));
        self.pods.insert(
            (ns.clone(), name.clone()),
            Tracked {
                plan,
                born: Instant::now(),
                ready: false,
                running: false,
            },
        );
        self.tick_pod(&ns, &name);
    }

    /// Writes a pod's current status and schedules its next change.
    fn tick_pod(&mut self, ns: &str, name: &str) {
        let key = (ns.to_owned(), name.to_owned());
        let Some(tracked) = self.pods.get_mut(&key) else {
            return;
        };
        let age = tracked.born.elapsed();
        let now = tracked.plan.status_at(age, self.script.kubelet_period);
        let image = tracked.plan.image().to_owned();
        let (was_running, was_ready) = (tracked.running, tracked.ready);
        tracked.running = now.running;
        tracked.ready = now.ready;
        let born = tracked.born;
        if now.running && !was_running {
            self.metrics
                .running(ns, name, &image, self.script.traffic_for(&image));
        }
        if now.ready != was_ready {
            self.metrics.ready(ns, name, now.ready);
        }
        self.write_status(&self.types.pods.clone(), ns, name, now.status, KUBELET);
        if let Some(next) = now.next {
            self.schedule(born + next, Wake::Pod(ns.to_owned(), name.to_owned()));
        }
    }

    fn get(&self, t: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        self.shared.objects.get(t, ns, name).ok()
    }

    /// Objects of `t` in `ns` whose controller is the object with `uid`.
    fn owned(&self, t: &ResourceType, ns: &str, uid: &str) -> Vec<Value> {
        let everything = Selector::default();
        let (items, _) = self
            .shared
            .objects
            .list(t, Some(ns), &everything, &everything);
        items
            .into_iter()
            .filter(|v| controller_of(v).is_some_and(|(_, _, u)| u == uid))
            .filter(|v| v.pointer("/metadata/deletionTimestamp").is_none())
            .collect()
    }

    fn create(&self, t: &ResourceType, ns: &str, object: Value) -> Option<Value> {
        match self.shared.objects.create(t, ns, object, CONTROLLER) {
            Ok(v) => Some(v),
            Err(e) => {
                warn!(kind = %t.kind, namespace = ns, error = %e, "simulated controller: create failed");
                None
            }
        }
    }

    fn delete(&self, t: &ResourceType, ns: &str, name: &str) {
        if let Err(e) = self.shared.objects.delete(t, ns, name, false) {
            warn!(kind = %t.kind, namespace = ns, name, error = %e, "simulated controller: delete failed");
        }
    }

    /// Replaces an object's `status` when it differs.
    fn write_status(&self, t: &ResourceType, ns: &str, name: &str, status: Value, manager: &str) {
        let Some(mut current) = self.get(t, ns, name) else {
            return;
        };
        if current.get("status") == Some(&status) {
            return;
        }
        current["status"] = status;
        if let Some(meta) = current.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        if let Err(e) = self
            .shared
            .objects
            .replace(t, ns, name, current, manager, Scope::Status)
        {
            warn!(kind = %t.kind, namespace = ns, name, error = %e, "simulated status write failed");
        }
    }

    /// Replaces an object's `spec` field `field` when it differs.
    fn write_spec_field(&self, t: &ResourceType, object: &Value, field: &str, value: Value) {
        if object.pointer(&format!("/spec/{field}")) == Some(&value) {
            return;
        }
        let mut next = object.clone();
        next["spec"][field] = value;
        if let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        let scope = Scope::Main {
            status_subresource: t.status_subresource,
        };
        let (ns, name) = (namespace_of(object), name_of(object).to_owned());
        if let Err(e) = self
            .shared
            .objects
            .replace(t, &ns, &name, next, CONTROLLER, scope)
        {
            warn!(kind = %t.kind, namespace = %ns, name, error = %e, "simulated spec write failed");
        }
    }
}

pub(crate) fn namespace_of(v: &Value) -> String {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// An integer field, if present.
pub(crate) fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// A workload status with zero counts left out, as the API server's
/// `omitempty` encoding does.
pub(crate) fn omit_zero(mut status: Value) -> Value {
    if let Some(map) = status.as_object_mut() {
        map.retain(|_, v| v.as_i64() != Some(0));
    }
    status
}

/// Condition `(type, status, reason, message)` stamped like the
/// controllers do: times kept while status and reason stay the same.
pub(crate) fn conditions(
    old: Option<&Value>,
    wanted: &[(&str, &str, &str, String)],
    update: Option<&str>,
) -> Value {
    let now = timestamp();
    let previous = |type_: &str| {
        old.and_then(Value::as_array).and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        })
    };
    Value::Array(
        wanted
            .iter()
            .map(|(type_, status, reason, message)| {
                let prev = previous(type_);
                let same = prev.is_some_and(|p| {
                    p.get("status").and_then(Value::as_str) == Some(*status)
                        && p.get("reason").and_then(Value::as_str) == Some(*reason)
                });
                let kept = |field: &str| {
                    prev.filter(|_| same)
                        .and_then(|p| p.get(field).cloned())
                        .unwrap_or_else(|| Value::String(now.clone()))
                };
                let last_update = match (update, *type_) {
                    (Some(stamp), "Progressing") => Value::String(stamp.to_owned()),
                    _ => kept("lastUpdateTime"),
                };
                serde_json::json!({
                    "type": type_, "status": status, "reason": reason, "message": message,
                    "lastUpdateTime": last_update,
                    "lastTransitionTime": kept("lastTransitionTime"),
                })
            })
            .collect(),
    )
}
