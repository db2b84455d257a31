//! The async shell: read the Store's children, ask the pure functions what to
//! do, do it, write status, emit Events. Shaped like kube-rs/controller-rs —
//! free `reconcile`/`error_policy` functions that dispatch to methods on
//! `Store` — with per-object exponential backoff instead of a fixed requeue,
//! and status written only when it changed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::api::{Phase, RolloutStatus, Store, StoreStatus};
use crate::backoff::Backoff;
use crate::cache::{Caches, Source};
use crate::error::Invalid;
use crate::generated_secrets;
use crate::history;
use crate::identity::{FIELD_MANAGER, REPORTER};
use crate::memory::Memory;
use crate::metrics::{Metrics, StoreLabel};
use crate::pod_metrics::{self, MetricsReader};
use crate::reconcile::events::{Transition, merge, transitions};
use crate::reconcile::{Observed, Plan, generate, plan, status, upgrade};
use crate::render::delegated::provider;
use crate::render::meta::Ctx;
use crate::render::{ChildKind, Platform, Rendered, render_on};
use crate::rollout::revision::{self, History};
use crate::rollout::{Cluster, Decision, Input, Purpose, Revision, Settings, decide, in_flight};
use crate::scope::{Scope, scoped};
use crate::served::{self, Served};
use crate::validate::{external_secrets, validate};
use crate::{Error, Result};

/// How often a Ready Store is re-checked for drift without any watch event.
pub const RESYNC_READY: Duration = Duration::from_mins(5);
/// How often a Store that is still converging is re-checked.
pub const RESYNC_PROGRESSING: Duration = Duration::from_secs(30);

/// How many Stores are reconciled at once (shared out between the
/// namespaces of a [`Scope::Namespaces`], at least one each). A pass in flight holds the
/// Store's listed children and its rendered revisions (about 2 MB for the
/// example Store), and kube's default is no bound: 100 Stores changing at
/// once (every shop upgraded) peaked at 440 MiB, past the chart's 256 Mi
/// limit — the operator would be OOM-killed and meet the same backlog on
/// restart. The passes are I/O-bound: in the benchmark in
/// tests/rollout.rs (release build, 100 Stores installed then upgraded at
/// once) eight peaked at 80 MiB, four at 55 MiB and two at 42 MiB, and
/// four converged about as fast as eight (install 22–28 s, upgrade
/// 107–123 s in two runs, against 23 s and 104 s) where two took a third
/// longer.
pub const CONCURRENT_RECONCILES: u16 = 4;

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
    /// Which optional kinds (the Prometheus Operator's) the API serves.
    pub served: Served,
    /// Where Stores are watched.
    pub scope: Scope,
    /// Watch caches of the children and revisions (filled by `run`).
    pub caches: Caches,
    /// The operator's own installation, as far as rendering needs it.
    pub platform: Platform,
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
            served: Served::default(),
            scope: Scope::default(),
            caches: Caches::default(),
            platform: Platform::default(),
        }
    }

    /// A Store's objects for this operator, without the kinds the API does
    /// not serve.
    pub fn render(&self, store: &Store) -> Result<Rendered> {
        render_on(store, &self.platform).map(|r| self.served.keep(r))
    }
}

/// What `Store::observe_resolved` found: the children, the Store resolved
/// and the stable revision's Store resolved.
type Resolved<'a> = (Observed, Cow<'a, Store>, Option<Store>);

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

/// The stable revision a pass decides against: the one recorded in
/// status (`stable_id`), rendered from its stored spec, or the target
/// itself when they are one revision (a rollout that completed).
fn stable_revision<'a>(
    target: Revision<'a>,
    store: Option<&'a Store>,
    rendered: Option<&'a Rendered>,
    stable_id: Option<&'a str>,
) -> Option<Revision<'a>> {
    match (store, rendered, stable_id) {
        (Some(store), Some(rendered), Some(id)) => Some(Revision {
            id,
            version: &store.spec.version,
            rendered,
        }),
        (_, _, Some(id)) if id == target.id => Some(Revision { id, ..target }),
        _ => None,
    }
}

/// The Store's labelled children: from the watch caches where they run
/// (`crate::cache`), else one list per kind; and its generated Secrets,
/// which are never listed: read by name, metadata only, when
/// `crate::generated_secrets` says what it remembers is too old.
pub async fn observe(ctx: &Context, ns: &str, store: &str, uid: &str) -> Result<Observed> {
    let lp = ListParams::default().labels(&Ctx::children_selector(store));
    let mut observed = Observed::default();
    let secrets = Api::namespaced(ctx.client.clone(), ns);
    generated_secrets::observe(&secrets, &ctx.memory, store, uid, &mut observed).await?;
    let applied = ChildKind::ALL.into_iter().filter(|k| k.is_applied());
    for kind in applied.filter(|k| ctx.served.serves(*k)) {
        if let Some(cached) = ctx.caches.objects(Source::Child(kind), ns, store).await {
            for item in cached {
                observed.insert(kind, item);
            }
            continue;
        }
        for item in api(&ctx.client, ns, kind).list(&lp).await?.items {
            let item = serde_json::to_value(item).map_err(|source| Error::Serialize {
                what: kind.kind().to_owned(),
                source,
            })?;
            observed.insert(kind, item);
        }
    }
    Ok(observed)
}

/// Lists the Store's pods and ReplicaSets, which tell which pods run a
/// Deployment's current template; only read while a rollout is in flight.
/// Only what the rollout reads is kept: a pod's metadata and status (not
/// its spec), a ReplicaSet's metadata (listed as metadata only: its pod
/// template is as large as the Deployment's); `managedFields` of neither.
async fn pods_and_replica_sets(
    client: &Client,
    ns: &str,
    store: &str,
) -> Result<(Vec<serde_json::Value>, Vec<serde_json::Value>)> {
    let lp = ListParams::default().labels(&Ctx::children_selector(store));
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items
        .into_iter()
        .map(|pod| json!({"metadata": without_managed_fields(pod.metadata), "status": pod.status}))
        .collect();
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list_metadata(&lp)
        .await?
        .items
        .into_iter()
        .map(|rs| json!({"metadata": without_managed_fields(rs.metadata)}))
        .collect();
    Ok((pods, replica_sets))
}

fn without_managed_fields(mut metadata: ObjectMeta) -> ObjectMeta {
    metadata.managed_fields = None;
    metadata
}

impl Store {
    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        let ns = self.namespace().ok_or(Error::MissingNamespace)?;
        let uid = self.uid().unwrap_or_default();
        // What this operator last wrote, not the possibly staler cached
        // status (deciding on that would repeat a step and its Events).
        let old = ctx
            .memory
            .status(&uid)
            .unwrap_or_else(|| self.status.clone().unwrap_or_default());
        let settings = match self.target(ctx, &ns, &old).await? {
            Ok(settings) => settings,
            Err(action) => return Ok(action),
        };
        let name = self.name_any();
        let target_id = revision::id(&self.spec);
        let previous = old.rollout.as_ref();
        let (history, stable_store) = self.revisions(ctx, &ns, &target_id, previous).await?;
        let resolved = Box::pin(self.observe_resolved(ctx, &ns, &old, stable_store));
        let Some((observed, this, stable_store)) = resolved.await? else {
            return Ok(Action::requeue(served::REDISCOVER_EVERY));
        };
        let (pods, replica_sets) = if in_flight(previous, &target_id) {
            pods_and_replica_sets(&ctx.client, &ns, &name).await?
        } else {
            Default::default()
        };
        // Every read is done: the objects are rendered only now, so a pass
        // waiting on the API holds none of them (with one worker, passes
        // render and decide one at a time; docs/operator.md, "Concurrency
        // and Events"). A PostgreSQL major upgrade is refused: a revision
        // that asks for one renders with the running image, and everything
        // else goes on.
        let refused = upgrade::refusal(&this, &observed);
        let rendered = match &refused {
            Some(r) => ctx.render(&r.hold(&this))?,
            None => ctx.render(&this)?,
        };
        let stable_rendered = stable_store
            .as_ref()
            .map(|s| match upgrade::refusal(s, &observed) {
                Some(r) => ctx.render(&r.hold(s)),
                None => ctx.render(s),
            })
            .transpose()?;
        let stable_id = previous.and_then(|p| p.stable_revision.as_deref());
        let target = Revision {
            id: &target_id,
            version: &self.spec.version,
            rendered: &rendered,
        };
        let input = Input {
            target,
            stable: stable_revision(
                target,
                stable_store.as_ref(),
                stable_rendered.as_ref(),
                stable_id,
            ),
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
        // Both revisions' objects and the pod lists served the decision;
        // the writes and the status need only the objects it chose, and
        // passes holding everything across their writes set the fleet's
        // peak memory (docs/operator.md, "Concurrency and Events").
        drop((rendered, stable_rendered, pods, replica_sets));
        let mut plan = plan(&decision.desired, &observed, &uid, self.spec.paused);
        if !decision.prune {
            plan.prune.clear();
        }
        let mut view = decision.view();
        if let Some(r) = &refused {
            r.mark(&mut view);
        }
        // The children served the plan and the status; the writes need
        // neither, so they are not held across them.
        let assessed = status::assess(&this, &decision.desired, &observed, view);
        drop(observed);
        let apply_failures = self.execute(ctx, &ns, &plan).await?;
        if decision.prune {
            let keep: Vec<&str> = [Some(target_id.as_str()), stable_id]
                .into_iter()
                .flatten()
                .collect();
            let limit = self.spec.rollout.revision_history_limit;
            history::prune(&ctx.client, &ns, &history.prune(limit, &keep)).await?;
        }
        let new = match assessed {
            Some(assessed) => assessed.finish(&old, &now(), apply_failures),
            None => old.clone(),
        };
        let resync = resync(&new);
        self.publish(ctx, &ns, &old, new, decision.events).await?;
        Ok(Action::requeue(decision.requeue_after.unwrap_or(resync)))
    }

    /// The target revision's rollout settings — or, when the spec cannot
    /// be carried out (invalid, a Gateway without the Gateway API, an
    /// unusable external data store), the Stalled status written and when
    /// to look again.
    async fn target(
        &self,
        ctx: &Context,
        ns: &str,
        old: &StoreStatus,
    ) -> Result<std::result::Result<Settings, Action>> {
        let target = validate(self).and_then(|()| Settings::from_spec(&self.spec));
        let (problem, what, action) = match target {
            Err(problem) => (problem, "invalid spec", Action::await_change()),
            Ok(settings) => match self.missing_gateway_api(ctx) {
                // The served kinds are looked up again every few minutes.
                Some(problem) => (
                    problem,
                    "no Gateway API",
                    Action::requeue(served::REDISCOVER_EVERY),
                ),
                None => match self.check_external(ctx, ns).await? {
                    Ok(()) => return Ok(Ok(settings)),
                    // The user's Secret is not watched: look again soon.
                    Err(problem) => (
                        problem,
                        "unusable external data store",
                        Action::requeue(RESYNC_PROGRESSING),
                    ),
                },
            },
        };
        self.stall(ctx, ns, old, &problem, what).await?;
        Ok(Err(action))
    }

    /// The Store's children, and the Store and its stable revision with
    /// `provider: Auto` made concrete for this cluster and the Store's data
    /// (`render::delegated::provider`) — or, when a provider cannot run
    /// here, the Stalled status written, like an invalid spec's (the served
    /// kinds are looked up again every few minutes), and `None`.
    async fn observe_resolved(
        &self,
        ctx: &Context,
        ns: &str,
        old: &StoreStatus,
        stable: Option<Store>,
    ) -> Result<Option<Resolved<'_>>> {
        let uid = self.uid().unwrap_or_default();
        let observed = observe(ctx, ns, &self.name_any(), &uid).await?;
        let available = ctx.served.available();
        match provider::resolve(self, available, &observed) {
            Ok(resolved) => {
                let this = resolved.map_or(Cow::Borrowed(self), Cow::Owned);
                let stable = stable.map(|s| match provider::resolve(&s, available, &observed) {
                    Ok(Some(resolved)) => resolved,
                    _ => s,
                });
                Ok(Some((observed, this, stable)))
            }
            Err(problem) => {
                self.stall(ctx, ns, old, &problem, "data store provider unavailable")
                    .await?;
                Ok(None)
            }
        }
    }

    /// Writes the Stalled status a spec that cannot be carried out
    /// deserves (with its Event); nothing is applied.
    async fn stall(
        &self,
        ctx: &Context,
        ns: &str,
        old: &StoreStatus,
        problem: &Invalid,
        what: &str,
    ) -> Result<()> {
        warn!(store = %key(self), %problem, "{what}; applying nothing");
        let new = status::invalid(self, old, problem, &now());
        self.publish(ctx, ns, old, new, Vec::new()).await
    }

    /// A Store that asks for a Gateway where the API serves no HTTPRoute.
    fn missing_gateway_api(&self, ctx: &Context) -> Option<Invalid> {
        (self.spec.ingress.gateway.is_some() && !ctx.served.serves(ChildKind::HttpRoute)).then(|| {
            Invalid {
                problems: vec![(
                    "spec.ingress.gateway".to_owned(),
                    "this cluster does not serve gateway.networking.k8s.io/v1 HTTPRoute: install the Gateway API CRDs, or remove gateway to get an Ingress".to_owned(),
                )],
            }
        })
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
        let name = self.name_any();
        let history = match ctx.caches.objects(Source::Revisions, ns, &name).await {
            Some(cached) => history::parse(&cached),
            None => history::load(&ctx.client, ns, &name).await?,
        };
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
        let uid = self.uid().unwrap_or_default();
        for spec in &plan.create_secrets {
            match secrets.create(&post, &generate::secret(&rctx, spec)?).await {
                Ok(_) => {
                    info!(store = %key(self), secret = %spec.name, "generated secret");
                    ctx.memory
                        .secret_exists(&uid, &spec.name, spec.owned.then(|| uid.clone()));
                }
                // Another writer created it first; its values stand, and
                // its owner is read so the next pass sets the right one.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    match generated_secrets::owner(&secrets, &spec.name).await? {
                        Some(owner) => ctx.memory.secret_exists(&uid, &spec.name, owner),
                        None => ctx.memory.secret_missing(&uid, &spec.name),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        for spec in &plan.own_secrets {
            let owners = spec.owned.then(|| vec![rctx.owner_reference().clone()]);
            let patch = Patch::Merge(json!({"metadata": {"ownerReferences": owners}}));
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            match secrets.patch_metadata(&spec.name, &params, &patch).await {
                Ok(_) => {
                    info!(store = %key(self), secret = %spec.name, owned = spec.owned, "secret ownership set");
                    ctx.memory
                        .secret_exists(&uid, &spec.name, spec.owned.then(|| uid.clone()));
                }
                // Deleted meanwhile: the next pass creates it.
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    ctx.memory.secret_missing(&uid, &spec.name);
                }
                Err(e) => return Err(e.into()),
            }
        }
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        for object in &plan.apply {
            match api(&ctx.client, ns, object.kind)
                .patch(&object.name, &apply, &Patch::Apply(object.value.as_ref()))
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
        // The finished migration Jobs of the revision before are
        // housekeeping after every upgrade, not news.
        let names: Vec<String> = plan
            .prune
            .iter()
            .filter(|(k, _)| *k != ChildKind::Job)
            .map(|(k, n)| format!("{} {n}", k.kind()))
            .collect();
        if !names.is_empty() {
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
        ctx.metrics.store_status(&store, &new);
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

/// Runs the controller until `shutdown` resolves: one kube Controller per
/// namespace of `ctx.scope` (one for the whole cluster by default), sharing
/// the context, so the per-Store backoff, memory and metrics stay one.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    ctx.served.discover(&client).await;
    let rediscover = tokio::spawn({
        let (served, client) = (ctx.served.clone(), client.clone());
        async move {
            loop {
                tokio::time::sleep(served::REDISCOVER_EVERY).await;
                served.discover(&client).await;
            }
        }
    });
    let shutdown = shutdown.shared();
    let targets = ctx.scope.targets();
    // The bound on passes in flight holds for the operator, not per namespace.
    let concurrency =
        (CONCURRENT_RECONCILES / u16::try_from(targets.len()).unwrap_or(u16::MAX)).max(1);
    // The caches whose kinds wake no Store (the operator writes those
    // objects itself) are filled by streams of their own.
    let fills: Vec<_> = targets
        .iter()
        .flat_map(|namespace| {
            Source::all(&ctx.served)
                .filter(|source| !source.triggers())
                .map(|source| {
                    let stream = ctx.caches.start(&client, source, *namespace);
                    tokio::spawn(stream.for_each(|_| async {}))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let controllers = targets.into_iter().map(|namespace| {
        controller(&ctx, namespace, concurrency)
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile, error_policy, Arc::clone(&ctx))
            .for_each(|result| async move {
                if let Err(e) = result {
                    warn!(error = %e, "controller error");
                }
            })
    });
    futures::future::join_all(controllers).await;
    rediscover.abort();
    for fill in fills {
        fill.abort();
    }
}

/// The Store controller for one namespace (`None`: all), triggered by the
/// Stores and by every kind of child the operator applies and caches (the
/// watch that fills a cache also triggers the owning Store's reconcile).
fn controller(ctx: &Context, namespace: Option<&str>, concurrency: u16) -> Controller<Store> {
    let client = &ctx.client;
    let mut controller = Controller::new(
        scoped::<Store>(client, namespace),
        watcher::Config::default(),
    );
    for source in Source::all(&ctx.served).filter(|s| s.triggers()) {
        let stream = ctx.caches.start(client, source, namespace);
        controller = controller.owns_stream_with(stream, source.api_resource());
    }
    controller.with_config(ControllerConfig::default().concurrency(concurrency))
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
