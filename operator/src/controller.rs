//! The async shell: read the Store's children, ask the pure functions what to
//! do, do it, write status, emit Events. Shaped like kube-rs/controller-rs —
//! free `reconcile`/`error_policy` functions that dispatch to methods on
//! `Store` — with per-object exponential backoff instead of a fixed requeue,
//! and status written only when it changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use storekeeper_contract::labels;
use tracing::{info, warn};

use crate::api::{Phase, Store, StoreStatus};
use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::reconcile::events::transitions;
use crate::reconcile::{Observed, Plan, generate, plan, status};
use crate::render::meta::Ctx;
use crate::render::{ChildKind, render};
use crate::validate::{Invalid, external_secrets};
use crate::{Error, Result};

/// Field manager of every server-side apply and Secret create.
const FIELD_MANAGER: &str = "storekeeper";
/// Name the operator reports Events under.
const REPORTER: &str = "storekeeper";

/// How often a Ready Store is re-checked for drift without any watch event.
pub const RESYNC_READY: Duration = Duration::from_mins(5);
/// How often a Store that is still converging is re-checked.
pub const RESYNC_PROGRESSING: Duration = Duration::from_secs(30);

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Operator metrics.
    pub metrics: Metrics,
    /// Per-Store failure counts.
    pub backoff: Backoff,
    /// Publishes Events about Stores.
    pub recorder: Recorder,
}

impl Context {
    /// A context for `client`; `instance` tells replicas apart in Events.
    pub fn new(client: Client, metrics: Metrics, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: REPORTER.to_owned(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            backoff: Backoff::default(),
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

impl Store {
    async fn reconcile(&self, ctx: &Context) -> Result<Action> {
        let ns = self.namespace().ok_or(Error::MissingNamespace)?;
        let old = self.status.clone().unwrap_or_default();
        let rendered = match render(self) {
            Ok(r) => r,
            Err(Error::Invalid(problem)) => {
                warn!(store = %key(self), %problem, "invalid spec; applying nothing");
                let new = status::invalid(self, &old, &problem, &now());
                self.publish(ctx, &ns, &old, new).await?;
                return Ok(Action::await_change());
            }
            Err(e) => return Err(e),
        };
        if let Err(problem) = self.check_external(ctx, &ns).await? {
            warn!(store = %key(self), %problem, "external data store not usable; applying nothing");
            let new = status::invalid(self, &old, &problem, &now());
            self.publish(ctx, &ns, &old, new).await?;
            // The user's Secret is not watched: look again soon.
            return Ok(Action::requeue(RESYNC_PROGRESSING));
        }
        let observed = observe(&ctx.client, &ns, &self.name_any()).await?;
        let uid = self.uid().unwrap_or_default();
        let plan = plan(&rendered, &observed, &uid, self.spec.paused);
        self.execute(ctx, &ns, &plan).await?;
        let new = status::compute(self, &rendered, &observed, &old, &now());
        let ready = new.phase == Some(Phase::Ready);
        self.publish(ctx, &ns, &old, new).await?;
        Ok(Action::requeue(if ready {
            RESYNC_READY
        } else {
            RESYNC_PROGRESSING
        }))
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

    /// Carries out a plan: create missing Secrets, apply, prune.
    async fn execute(&self, ctx: &Context, ns: &str, plan: &Plan<'_>) -> Result<()> {
        if plan.is_empty() {
            return Ok(());
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
            api(&ctx.client, ns, object.kind)
                .patch(&object.name, &apply, &Patch::Apply(&object.value))
                .await?;
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
        Ok(())
    }

    /// Writes the status when it changed and emits Events for transitions.
    async fn publish(
        &self,
        ctx: &Context,
        ns: &str,
        old: &StoreStatus,
        new: StoreStatus,
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
        for t in transitions(old, &new) {
            self.event(ctx, t.warning, &t.reason, t.note).await;
        }
        Ok(())
    }

    /// Publishes an Event; a failure is logged, never fails the reconcile.
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
        if let Err(e) = ctx.recorder.publish(&event, &self.object_ref(&())).await {
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
