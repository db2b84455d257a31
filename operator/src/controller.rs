//! The async shell: read the Store's children, ask the pure functions what to
//! do, do it, write status, emit Events. Shaped like kube-rs/controller-rs —
//! free `reconcile`/`error_policy` functions that dispatch to methods on
//! `Store` — with per-object exponential backoff instead of a fixed requeue,
//! and status written only when it changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use storekeeper_contract::labels;
use tracing::{info, warn};

use crate::api::{Phase, RolloutStatus, Store, StoreStatus};
use crate::backoff::Backoff;
use crate::history;
use crate::identity::{FIELD_MANAGER, REPORTER};
use crate::memory::Memory;
use crate::metrics::{Metrics, StoreLabel};
use crate::pod_metrics::{self, MetricsReader};
use crate::reconcile::events::{Transition, merge, transitions};
use crate::reconcile::{Observed, Plan, generate, plan, status};
use crate::render::meta::Ctx;
use crate::render::{ChildKind, render};
use crate::rollout::revision::{self, History};
use crate::rollout::{Cluster, Decision, Input, Purpose, Revision, Settings, decide, in_flight};
use crate::validate::{Invalid, external_secrets};
use crate::{Error, Result};

/// How often a Ready Store is re-checked for drift without any watch event.
pub const RESYNC_READY: Duration = Duration::from_mins(5);
/// How often a Store that is still converging is re-checked.
pub const RESYNC_PROGRESSING: Duration = Duration::from_secs(30);

/// How many Stores are reconciled at once. A pass in flight holds the
/// Store's listed children and its rendered revisions (about 2 MB for the
/// example Store), and kube's default is no bound: 100 Stores changing at
/// once (every shop upgraded) peaked at 440 MiB, past the chart's 256 Mi
/// limit — the operator would be OOM-killed and meet the same backlog on
/// restart. With eight the same run peaked near 50 MiB and, the passes
/// being I/O-bound, converged sooner (the benchmark in tests/rollout.rs).
pub const CONCURRENT_RECONCILES: u16 = 8;

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Operator metrics.
    pub metrics: Metrics,
    /// Per-Store failure counts.
    pub backoff: Backoff,
    /// Who publishes Events about Stores (see `Store::event`).
    pub reporter: Reporter,
    /// Reads the new pods' `/metrics` for a rollout's analysis.
    pub pod_metrics: Arc<dyn MetricsReader>,
    /// What this operator last wrote and sampled, per Store.
    pub memory: Memory,
}

impl Context {
    /// A context for `client`; `instance` tells replicas apart in Events;
    /// `pod_metrics` reads pods' metrics (`HttpMetricsReader` in a cluster).
    pub fn new(
        client: Client,
        metrics: Metrics,
        instance: Option<String>,
        pod_metrics: Arc<dyn MetricsReader>,
    ) -> Self {
        let reporter = Reporter {
            controller: REPORTER.to_owned(),
            instance,
        };
        Self {
            reporter,
            client,
            metrics,
            backoff: Backoff::default(),
            pod_metrics,
            memory: Memory::default(),
        }
    }
}

fn key(store: &Store) -> String {
    format!(
        "{}/{}",
        store.namespace().unwrap_or_default(),
        store.name_any()
    )
}

/// Entry point the Controller calls for every Store change.
pub async fn reconcile(store: Arc<Store>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.count_and_measure();
    let action = store.reconcile(&ctx).await?;
    ctx.backoff.reset(&key(&store));
    Ok(action)
}

/// Entry point the Controller calls when `reconcile` failed: count it and
/// retry after this Store's own exponential backoff.
#[allow(clippy::needless_pass_by_value)] // the signature kube::runtime::Controller::run expects
pub fn error_policy(store: Arc<Store>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.fail(&key(&store));
    warn!(store = %key(&store), error = %error, retry_in = ?delay, "reconcile failed");
    ctx.metrics.failure(error.metric_label());
    Action::requeue(delay)
}

/// Whether an API answer means the server will not take this object as it
/// is (bad request, forbidden, no such namespace, invalid): reported in
/// status while the other objects go on. A conflict or a throttle is
/// transient and fails the pass for a retry instead.
fn is_refusal(code: u16) -> bool {
    matches!(code, 400 | 403 | 404 | 422)
}

/// When to look again without a watch event: soon while converging.
fn resync(status: &StoreStatus) -> Duration {
    if status.phase == Some(Phase::Ready) {
        RESYNC_READY
    } else {
        RESYNC_PROGRESSING
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn api(client: &Client, ns: &str, kind: ChildKind) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &kind.api_resource())
}

/// Lists the Store's labelled children, one request per kind. Secrets are
/// listed as metadata only: the operator needs to know they exist, never
/// to hold their values.
pub async fn observe(client: &Client, ns: &str, store: &str) -> Result<Observed> {
    let lp = ListParams::default().labels(&Ctx::children_selector(store));
    let mut observed = Observed::default();
    for kind in ChildKind::ALL {
        let api = api(client, ns, kind);
        let items: Vec<serde_json::Value> = if kind == ChildKind::Secret {
            api.list_metadata(&lp)
                .await?
                .items
                .into_iter()
                .map(|o| json!({ "metadata": o.metadata }))
                .collect()
        } else {
            let list = api.list(&lp).await?;
            list.items
                .into_iter()
                .map(|o| {
                    serde_json::to_value(o).map_err(|source| Error::Serialize {
                        what: kind.kind().to_owned(),
                        source,
                    })
                })
                .collect::<Result<_>>()?
        };
        for item in items {
            observed.insert(kind, item);
        }
    }
    Ok(observed)
}

/// Lists the Store's pods and ReplicaSets, which tell which pods run a
/// Deployment's current template; only read while a rollout is in flight.
async fn pods_and_replica_sets(
    client: &Client,
    ns: &str,
    store: &str,
) -> Result<(Vec<serde_json::Value>, Vec<serde_json::Value>)> {
    let lp = ListParams::default().labels(&Ctx::children_selector(store));
    let pods = list_values(&Api::<Pod>::namespaced(client.clone(), ns), &lp, "Pod").await?;
    let replica_sets = list_values(
        &Api::<ReplicaSet>::namespaced(client.clone(), ns),
        &lp,
        "ReplicaSet",
    )
    .await?;
    Ok((pods, replica_sets))
}

/// Lists `api` with `lp`, each item as JSON (what the pure rollout reads).
async fn list_values<K>(api: &Api<K>, lp: &ListParams, what: &str) -> Result<Vec<serde_json::Value>>
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.list(lp)
        .await?
        .items
        .iter()
        .map(serde_json::to_value)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|source| Error::Serialize {
            what: what.to_owned(),
            source,
        })
}

impl Store {
    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        let ns = self.namespace().ok_or(Error::MissingNamespace)?;
        let uid = self.uid().unwrap_or_default();
        // The status this operator last wrote, not the possibly older one
        // the watch cache holds: deciding against a stale status would
        // restart a step and repeat its Events.
        let old = ctx
            .memory
            .status(&uid)
            .unwrap_or_else(|| self.status.clone().unwrap_or_default());
        let (rendered, settings) = match render(self).and_then(|r| {
            let settings = Settings::from_spec(&self.spec).map_err(Error::Invalid)?;
            Ok((r, settings))
        }) {
            Ok(target) => target,
            Err(Error::Invalid(problem)) => {
                warn!(store = %key(self), %problem, "invalid spec; applying nothing");
                let new = status::invalid(self, &old, &problem, &now());
                self.publish(ctx, &ns, &old, new, Vec::new()).await?;
                return Ok(Action::await_change());
            }
            Err(e) => return Err(e),
        };
        if let Err(problem) = self.check_external(ctx, &ns).await? {
            warn!(store = %key(self), %problem, "external data store not usable; applying nothing");
            let new = status::invalid(self, &old, &problem, &now());
            self.publish(ctx, &ns, &old, new, Vec::new()).await?;
            // The user's Secret is not watched: look again soon.
            return Ok(Action::requeue(RESYNC_PROGRESSING));
        }
        let name = self.name_any();
        let target_id = revision::id(&self.spec);
        let previous = old.rollout.as_ref();
        let (history, stable_store) = self.revisions(ctx, &ns, &target_id, previous).await?;
        let stable_rendered = stable_store.as_ref().map(render).transpose()?;
        let observed = observe(&ctx.client, &ns, &name).await?;
        let (pods, replica_sets) = if in_flight(previous, &target_id) {
            pods_and_replica_sets(&ctx.client, &ns, &name).await?
        } else {
            Default::default()
        };
        let stable_id = previous.and_then(|p| p.stable_revision.as_deref());
        let stable = match (&stable_store, &stable_rendered, stable_id) {
            (Some(store), Some(rendered), Some(id)) => Some(Revision {
                id,
                version: &store.spec.version,
                rendered,
            }),
            // Stable and target are one revision (a rollout that completed).
            (_, _, Some(id)) if id == target_id => Some(Revision {
                id,
                version: &self.spec.version,
                rendered: &rendered,
            }),
            _ => None,
        };
        let input = Input {
            target: Revision {
                id: &target_id,
                version: &self.spec.version,
                rendered: &rendered,
            },
            stable,
            previous,
            cluster: Cluster {
                children: &observed,
                pods: &pods,
                replica_sets: &replica_sets,
            },
            settings: &settings,
            baseline: None,
            samples: None,
            now: chrono::Utc::now(),
        };
        let decision = self.decide_with_metrics(ctx, &uid, input).await;
        let mut plan = plan(&decision.desired, &observed, &uid, self.spec.paused);
        if !decision.prune {
            plan.prune.clear();
        }
        let apply_failures = self.execute(ctx, &ns, &plan).await?;
        if decision.prune {
            let keep: Vec<&str> = [Some(target_id.as_str()), stable_id]
                .into_iter()
                .flatten()
                .collect();
            let limit = self.spec.rollout.revision_history_limit;
            history::prune(&ctx.client, &ns, &history.prune(limit, &keep)).await?;
        }
        let new = status::compute(
            self,
            &decision.desired,
            &observed,
            &old,
            &now(),
            decision.view(),
            apply_failures,
        );
        let resync = resync(&new);
        self.publish(ctx, &ns, &old, new, decision.events).await?;
        Ok(Action::requeue(decision.requeue_after.unwrap_or(resync)))
    }

    /// The Store's revision history, with the current spec recorded in it
    /// (unless paused), and the Store as of its stable revision when that
    /// is another revision than the target.
    async fn revisions(
        &self,
        ctx: &Context,
        ns: &str,
        target_id: &str,
        previous: Option<&RolloutStatus>,
    ) -> Result<(History, Option<Store>)> {
        let history = history::load(&ctx.client, ns, &self.name_any()).await?;
        if !self.spec.paused {
            history::record(&ctx.client, ns, self, &history).await?;
        }
        let stable = previous
            .and_then(|p| p.stable_revision.as_deref())
            .filter(|id| *id != target_id)
            .and_then(|id| history.get(id))
            .map(|stored| revision::restore(self, stored));
        Ok((history, stable))
    }

    /// Decides the pass, reading the new pods' metrics when the decision
    /// asks: at the start of a bake they are kept as its baseline; at its
    /// end the pass is decided again with them.
    async fn decide_with_metrics(&self, ctx: &Context, uid: &str, input: Input<'_>) -> Decision {
        let decision = decide(&input);
        let Some(request) = &decision.metrics else {
            return decision;
        };
        let samples = pod_metrics::sample(ctx.pod_metrics.as_ref(), &request.pods).await;
        let bake = decision
            .rollout
            .as_ref()
            .and_then(|r| r.bake_started_at.clone())
            .unwrap_or_default();
        let key = format!("{uid}/{}/{}/{bake}", input.target.id, request.step);
        match request.purpose {
            Purpose::Baseline => {
                ctx.memory.keep_baseline(key, samples);
                decision
            }
            Purpose::Verdict => {
                let baseline = ctx.memory.take_baseline(&key);
                decide(&Input {
                    baseline: baseline.as_ref(),
                    samples: Some(&samples),
                    ..input
                })
            }
        }
    }

    /// Reads which keys each `external` data store's Secret holds (values
    /// are dropped unread) and checks them with `validate::external_secrets`.
    async fn check_external(&self, ctx: &Context, ns: &str) -> Result<Result<(), Invalid>> {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let mut found = BTreeMap::new();
        for ds in [&self.spec.postgres, &self.spec.redis, &self.spec.rabbitmq] {
            if let Some(external) = &ds.external {
                let keys = secrets.get_opt(&external.secret_name).await?.map(|s| {
                    let data = s.data.unwrap_or_default().into_keys();
                    data.chain(s.string_data.unwrap_or_default().into_keys())
                        .collect::<Vec<_>>()
                });
                found.insert(external.secret_name.clone(), keys);
            }
        }
        Ok(external_secrets(self, |name| {
            found.get(name).cloned().flatten()
        }))
    }

    /// Carries out a plan: create missing Secrets, apply, prune. An object
    /// the API server refuses (a 4xx: invalid, forbidden, a namespace being
    /// deleted) does not stop the others; it is returned as
    /// `"<Kind> <name>: <message>"` for status. Anything else (the server or
    /// the network failing) ends the pass for a retry with backoff.
    async fn execute(&self, ctx: &Context, ns: &str, plan: &Plan<'_>) -> Result<Vec<String>> {
        let mut refused = Vec::new();
        if plan.is_empty() {
            return Ok(refused);
        }
        let rctx = Ctx::new(self)?;
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let post = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        for spec in &plan.create_secrets {
            match secrets.create(&post, &generate::secret(&rctx, spec)?).await {
                Ok(_) => info!(store = %key(self), secret = %spec.name, "generated secret"),
                // Another writer created it first; its values stand.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        for object in &plan.apply {
            match api(&ctx.client, ns, object.kind)
                .patch(&object.name, &apply, &Patch::Apply(&object.value))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if is_refusal(s.code) => {
                    warn!(store = %key(self), kind = object.kind.kind(), name = %object.name, message = %s.message, "apply refused");
                    refused.push(format!(
                        "{} {}: {}",
                        object.kind.kind(),
                        object.name,
                        s.message
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        for (kind, name) in &plan.prune {
            match api(&ctx.client, ns, *kind)
                .delete(name, &DeleteParams::background())
                .await
            {
                Ok(_) => info!(store = %key(self), kind = kind.kind(), %name, "pruned"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !plan.prune.is_empty() {
            let names: Vec<String> = plan
                .prune
                .iter()
                .map(|(k, n)| format!("{} {n}", k.kind()))
                .collect();
            self.event(
                ctx,
                false,
                "Pruned",
                format!("deleted {}", names.join(", ")),
            )
            .await;
        }
        Ok(refused)
    }

    /// Writes the status when it changed, remembers it, and emits the
    /// rollout's Events and those the status transition deserves.
    async fn publish(
        &self,
        ctx: &Context,
        ns: &str,
        old: &StoreStatus,
        new: StoreStatus,
        decided: Vec<Transition>,
    ) -> Result<()> {
        if &new != old {
            let stores: Api<Store> = Api::namespaced(ctx.client.clone(), ns);
            let body = Patch::Apply(json!({
                "apiVersion": Store::api_version(&()),
                "kind": Store::kind(&()),
                "status": new,
            }));
            stores
                .patch_status(
                    &self.name_any(),
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &body,
                )
                .await?;
        }
        ctx.memory
            .wrote(&self.uid().unwrap_or_default(), new.clone());
        let store = StoreLabel {
            namespace: ns.to_owned(),
            store: self.name_any(),
        };
        let (before, after) = (old.rollout.as_ref(), new.rollout.as_ref());
        let now = chrono::Utc::now();
        ctx.metrics.rollout(&store, before, after, &decided, now);
        for t in merge(decided, transitions(old, &new)) {
            self.event(ctx, t.warning, &t.reason, t.note).await;
        }
        Ok(())
    }

    /// Publishes an Event; a failure is logged, never fails the reconcile.
    ///
    /// Each Event goes out through a fresh `Recorder`, so it is an Event
    /// of its own. kube's recorder folds an Event into the one it published
    /// last with the same type, action and reason within six minutes — its
    /// key leaves out the note, unlike client-go's — and keeps the first
    /// note: a second rollout's `RolloutStarted`, `StepStarted` or
    /// `RolloutFailed` would show the first one's revision, step and cause.
    /// The operator publishes each piece of news once already (decided
    /// against what it last wrote), so the folding has nothing to save.
    async fn event(&self, ctx: &Context, warning: bool, reason: &str, note: String) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
        if let Err(e) = recorder.publish(&event, &self.object_ref(&())).await {
            warn!(store = %key(self), error = %e, "publishing event failed");
        }
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let children = watcher::Config::default().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::STOREKEEPER
    ));
    Controller::new(
        Api::<Store>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<ConfigMap>::all(client.clone()), children.clone())
    .owns(Api::<ServiceAccount>::all(client.clone()), children.clone())
    .owns(Api::<NetworkPolicy>::all(client.clone()), children.clone())
    .owns(Api::<Service>::all(client.clone()), children.clone())
    .owns(Api::<StatefulSet>::all(client.clone()), children.clone())
    .owns(Api::<Deployment>::all(client.clone()), children.clone())
    .owns(
        Api::<PodDisruptionBudget>::all(client.clone()),
        children.clone(),
    )
    .owns(Api::<Ingress>::all(client), children)
    .with_config(ControllerConfig::default().concurrency(CONCURRENT_RECONCILES))
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        if let Err(e) = result {
            warn!(error = %e, "controller error");
        }
    })
    .await;
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
