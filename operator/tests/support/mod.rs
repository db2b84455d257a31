//! The harness the rollout scenarios share: a simulated cluster with its
//! workload simulator, the real `storekeeper::controller::run` started and
//! stopped on it like an operator process, a Store written as `kubectl`
//! would, and readers for what the scenarios assert on (status, Events,
//! Deployments, and the ordered history of objects as a watch saw it).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, pin_mut};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, WatchEvent, WatchParams};
use serde_json::{Value, json};
use storekeeper::controller::{self, Context};
use storekeeper::metrics::Metrics;
use storekeeper::pod_metrics::MetricsReader;
use storekeeper::render::Delegate;
use storekeeper::scope::Scope;
use storekeeper_simcluster::{RequestCounts, Scraper, Script, SimCluster, Verb, Workloads};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod remote;

/// Namespace and name of the Store every scenario runs.
pub const NS: &str = "shop";
/// The Store's name.
pub const STORE: &str = "shop";
/// The four backend Deployments, in the order render applies them.
pub const BACKENDS: [&str; 4] = ["shop-user", "shop-product", "shop-payment", "shop-order"];
/// The storefront's Deployment.
pub const STOREFRONT: &str = "shop-storefront";
/// Where the service images come from (the spec's default `imageRegistry`).
pub const REGISTRY: &str = "ghcr.io/storekeeper-dev";

/// The operator's metrics reader, pointed at the simulated pods.
struct SimMetrics(Scraper);

impl MetricsReader for SimMetrics {
    fn read<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<String>> {
        let text = self.0.scrape(url);
        Box::pin(async move { text })
    }
}

/// One running operator "process": its controller task and how to stop it.
struct Operator {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A simulated cluster, its workloads, and the operator running on it.
pub struct Harness {
    /// The cluster.
    pub sim: SimCluster,
    /// The Deployment/StatefulSet controllers and the kubelet.
    pub workloads: Workloads,
    /// The running (or last) operator's metrics: how many passes it made.
    pub metrics: Metrics,
    operator: Option<Operator>,
}

impl Harness {
    /// A cluster whose workloads follow `script`; no operator yet.
    pub fn new(script: Script) -> Self {
        let (sim, _client) = SimCluster::new();
        let workloads = Workloads::start(&sim, script);
        Self {
            sim,
            workloads,
            metrics: Metrics::default(),
            operator: None,
        }
    }

    /// Starts an operator process: a fresh client, context, caches and
    /// memory, as after a restart or a fail-over.
    pub fn start_operator(&mut self) {
        self.start_operator_watching(Scope::Cluster);
    }

    /// Starts an operator process that watches only `scope`
    /// (`--watch-namespaces`).
    pub fn start_operator_watching(&mut self, scope: Scope) {
        assert!(self.operator.is_none(), "an operator is already running");
        self.metrics = Metrics::default();
        let mut ctx = Context::new(
            self.sim.client(),
            self.metrics.clone(),
            None,
            Arc::new(SimMetrics(self.workloads.scraper())),
        );
        ctx.scope = scope;
        // Installed to delegate to every data-store operator: their kinds
        // are served only where a scenario registers them.
        ctx.served = ctx.served.clone().delegating(Delegate::ALL);
        let ctx = Arc::new(ctx);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(ctx, async move {
            let _ = stopped.await;
        }));
        self.operator = Some(Operator { stop, task });
    }

    /// Stops the operator process gracefully (reconciles in flight finish).
    pub async fn stop_operator(&mut self) {
        let operator = self.operator.take().expect("an operator is running");
        let _ = operator.stop.send(());
        tokio::time::timeout(Duration::from_mins(1), operator.task)
            .await
            .expect("the operator stops within a minute")
            .expect("the operator task did not panic");
    }

    /// Server-side applies the Store as `kubectl` (or a GitOps tool) would.
    pub fn apply(&self, store: &Value) {
        self.sim.apply_as("kubectl", store).unwrap();
    }

    /// The Store as stored.
    pub fn store(&self) -> Value {
        self.sim.get("stores", NS, STORE).expect("the Store exists")
    }

    /// One Deployment as stored.
    pub fn deployment(&self, name: &str) -> Value {
        self.sim
            .get("deployments", NS, name)
            .unwrap_or_else(|| panic!("Deployment {name} exists"))
    }

    /// The image of a Deployment's (first) container.
    pub fn image(&self, deployment: &str) -> String {
        image_of(&self.deployment(deployment)).to_owned()
    }

    /// Polls `check` every 50 ms of (paused) tokio time until it returns
    /// `Some`; fails after `limit` with `what` and the Store's status.
    pub async fn until<T>(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let start = tokio::time::Instant::now();
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            assert!(
                start.elapsed() < limit,
                "{what} did not happen within {limit:?}; the Store's status: {:#}",
                self.store()["status"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the Store runs `version` everywhere: rollout Complete,
    /// `currentVersion` = `version`, phase Ready. Returns the status.
    pub async fn until_complete(&self, version: &str) -> Value {
        self.until(
            Duration::from_mins(30),
            &format!("a complete rollout of {version}"),
            |h| {
                let status = h.store()["status"].clone();
                let done = text(&status, "/rollout/state") == "Complete"
                    && text(&status, "/currentVersion") == version
                    && text(&status, "/phase") == "Ready";
                done.then_some(status)
            },
        )
        .await
    }

    /// Waits until `status.rollout` is in `state`. Returns the status.
    pub async fn until_state(&self, state: &str) -> Value {
        self.until(
            Duration::from_mins(30),
            &format!("rollout state {state}"),
            |h| {
                let status = h.store()["status"].clone();
                (text(&status, "/rollout/state") == state).then_some(status)
            },
        )
        .await
    }

    /// The Store's Events, oldest first.
    pub fn events(&self) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .sim
            .list("events", Some(NS), "")
            .unwrap()
            .iter()
            .filter(|e| text(e, "/regarding/name") == STORE)
            .map(|e| Event {
                warning: text(e, "/type") == "Warning",
                reason: text(e, "/reason").to_owned(),
                note: text(e, "/note").to_owned(),
                count: e
                    .pointer("/series/count")
                    .and_then(Value::as_i64)
                    .unwrap_or(1),
                time: text(e, "/eventTime").to_owned(),
            })
            .collect();
        events.sort_by(|a, b| a.time.cmp(&b.time));
        events
    }

    /// How many times an Event with `reason` was published (series counted).
    pub fn event_count(&self, reason: &str) -> i64 {
        self.events()
            .iter()
            .filter(|e| e.reason == reason)
            .map(|e| e.count)
            .sum()
    }

    /// Server-side applies of the Store's status answered 2xx so far.
    pub fn status_writes(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| {
                r.verb == Verb::Apply
                    && r.resource == "stores/status"
                    && r.name.as_deref() == Some(STORE)
                    && r.code < 300
            })
            .count()
    }

    /// Writes (apply, create, update, patch, delete) the operator sent for
    /// `resource` so far.
    pub fn writes_to(&self, resource: &str) -> usize {
        let counts = self.sim.request_counts();
        [
            Verb::Apply,
            Verb::Create,
            Verb::Update,
            Verb::Patch,
            Verb::Delete,
        ]
        .into_iter()
        .map(|v| counts.get(v, resource))
        .sum()
    }

    /// Fails unless the operator sent no request but watches since
    /// `counts` began (a Store at rest costs nothing); `why` names the case.
    pub fn assert_no_requests(counts: &RequestCounts, why: &str) {
        for verb in [
            Verb::List,
            Verb::Get,
            Verb::Apply,
            Verb::Create,
            Verb::Patch,
            Verb::Update,
            Verb::Delete,
        ] {
            assert_eq!(counts.verb(verb), 0, "no {verb:?} {why}:\n{counts}");
        }
    }

    /// Records, from now on, every change of `K` objects in the Store's
    /// namespace in the order the API server committed them (starting with
    /// the current state), through a watch of its own.
    pub fn record<K>(&self) -> Recording
    where
        K: kube::Resource<DynamicType = ()>,
    {
        Recording::start(Api::namespaced_with(
            self.sim.client(),
            NS,
            &ApiResource::erase::<K>(&()),
        ))
    }
}

/// One Event about the Store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `Warning` rather than `Normal`.
    pub warning: bool,
    /// Its reason.
    pub reason: String,
    /// Its note (the first one, for a series).
    pub note: String,
    /// How often it was published (kube's recorder patches a series).
    pub count: i64,
    /// When it was first published.
    pub time: String,
}

/// Every change a watch saw, in commit order.
pub struct Recording {
    seen: Arc<Mutex<Vec<Value>>>,
    task: JoinHandle<()>,
}

impl Recording {
    fn start(api: Api<DynamicObject>) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let mut rv = "0".to_owned();
            loop {
                let params = WatchParams::default().timeout(290);
                let Ok(stream) = api.watch(&params, &rv).await else {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                pin_mut!(stream);
                while let Some(Ok(event)) = stream.next().await {
                    let object = match event {
                        WatchEvent::Added(o) | WatchEvent::Modified(o) => o,
                        WatchEvent::Bookmark(b) => {
                            rv = b.metadata.resource_version;
                            continue;
                        }
                        WatchEvent::Deleted(_) | WatchEvent::Error(_) => continue,
                    };
                    rv = object.metadata.resource_version.clone().unwrap_or_default();
                    let value = serde_json::to_value(&object).unwrap();
                    into.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(value);
                }
            }
        });
        Self { seen, task }
    }

    /// The objects seen so far, oldest change first.
    pub fn seen(&self) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The example Store (`examples/store.yaml`'s shape) at `version`.
pub fn store(version: &str) -> Value {
    json!({
        "apiVersion": "storekeeper.dev/v1alpha1",
        "kind": "Store",
        "metadata": {"name": STORE, "namespace": NS},
        "spec": {
            "version": version,
            "ingress": {"host": "shop.example.com"},
        },
    })
}

/// The image a service runs at `version`.
pub fn image(package: &str, version: &str) -> String {
    format!("{REGISTRY}/{package}:{version}")
}

/// The image of a Deployment's first container.
pub fn image_of(deployment: &Value) -> &str {
    text(deployment, "/spec/template/spec/containers/0/image")
}

/// Whether a Deployment's controller observed its spec and every replica
/// is updated and available.
pub fn available(deployment: &Value) -> bool {
    let want = int(deployment, "/spec/replicas");
    int(deployment, "/status/observedGeneration") == int(deployment, "/metadata/generation")
        && int(deployment, "/status/updatedReplicas") == want
        && int(deployment, "/status/availableReplicas") == want
        && int(deployment, "/status/replicas") == want
}

/// A string field, `""` when absent.
pub fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An integer field, 0 when absent.
pub fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The condition of `type_` in a Store's status.
pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status
        .pointer("/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| text(c, "/type") == type_))
        .unwrap_or(&Value::Null)
}
