//! The workload simulator: one task that plays the Deployment, StatefulSet
//! and Job controllers and the kubelet against the simulated cluster,
//! following a [`Script`]. It reads and writes the object store directly
//! (its requests are not in the request log, like the real controllers'
//! are not the operator's), reacting to every change and to its own
//! timers (a pod's next state, a Deployment's progress deadline).

mod access;
mod deployment;
mod job;
mod json;
mod kubelet;
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

use self::json::{controller_of, name_of, namespace_of};
use self::pods::PodPlan;
use self::script::Script;
use crate::SimCluster;
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
    /// Starts simulating every Deployment, StatefulSet, Job and Pod in `cluster`
    /// (those already there and those to come). Needs a tokio runtime.
    pub fn start(cluster: &SimCluster, script: Script) -> Self {
        let metrics = PodMetrics::default();
        let shared = Arc::clone(&cluster.shared);
        let changes = shared.objects.subscribe();
        let sim = Sim::new(shared, script, metrics.clone());
        let task = tokio::spawn(sim.run(changes));
        Self { task, metrics }
    }

    /// The pod's `/metrics` text (Prometheus format); `None` while the pod
    /// is not running.
    pub fn pod_metrics(&self, namespace: &str, pod: &str) -> Option<String> {
        self.metrics.render(namespace, pod)
    }

    /// A handle the operator's metrics reader can be pointed at in tests:
    /// it answers `http://<podIP>:<port>/metrics` for the simulated pods.
    pub fn scraper(&self) -> Scraper {
        Scraper(self.metrics.clone())
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

/// Answers metrics requests for the simulated pods (cheap to clone, so a
/// test can hand it to the operator's metrics reader).
#[derive(Clone)]
pub struct Scraper(PodMetrics);

impl Scraper {
    /// The text a GET of `url` (`http://<podIP>:<port>/metrics`) would
    /// return; `None` when no running pod has that IP (connection refused).
    pub fn scrape(&self, url: &str) -> Option<String> {
        self.0.scrape(url)
    }
}

/// Why the simulator wakes up at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Wake {
    /// Re-evaluate a pod's containers.
    Pod(String, String),
    /// Re-check a Deployment's progress deadline.
    Deployment(String, String),
    /// Re-check a Job's active deadline.
    Job(String, String),
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
    jobs: ResourceType,
    claims: ResourceType,
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
    /// When each unfinished Job was first seen (its active deadline's start).
    job_started: HashMap<(String, String), Instant>,
    /// Pods started so far (for unique pod IPs).
    next_ip: u64,
}

fn builtin(shared: &Shared, name: &str) -> ResourceType {
    shared
        .objects
        .type_by_name(name)
        .unwrap_or_else(|_| unreachable!("{name} is a built-in type"))
}

impl Sim {
    fn new(shared: Arc<Shared>, script: Script, metrics: PodMetrics) -> Self {
        let types = Types {
            pods: builtin(&shared, "pods"),
            deployments: builtin(&shared, "deployments"),
            statefulsets: builtin(&shared, "statefulsets"),
            replicasets: builtin(&shared, "replicasets"),
            revisions: builtin(&shared, "controllerrevisions"),
            jobs: builtin(&shared, "jobs"),
            claims: builtin(&shared, "persistentvolumeclaims"),
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
            job_started: HashMap::new(),
            next_ip: 0,
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
            self.types.jobs.clone(),
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
            ("batch", "jobs") => {
                if change.kind == ChangeType::Deleted {
                    self.job_started.remove(&(ns.to_owned(), name));
                } else {
                    self.reconcile_job(ns, &name);
                }
            }
            _ => {}
        }
    }

    fn reconcile(&mut self, plural: &str, ns: &str, name: &str) {
        match plural {
            "deployments" => self.reconcile_deployment(ns, name),
            "jobs" => self.reconcile_job(ns, name),
            _ => self.reconcile_statefulset(ns, name),
        }
    }

    /// Reconciles the Deployment or StatefulSet a pod belongs to.
    fn reconcile_owner(&mut self, pod: &Value) {
        let ns = namespace_of(pod);
        match controller_of(pod) {
            Some(("StatefulSet", name, _)) => self.reconcile_statefulset(&ns, name),
            Some(("Job", name, _)) => self.reconcile_job(&ns, name),
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
                Wake::Job(ns, name) => self.reconcile_job(&ns, &name),
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
}
