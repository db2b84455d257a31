//! The handle tests hold: clients that talk to the in-process API server,
//! direct accessors that bypass HTTP (and the request log), and the knobs
//! (request counts, watch lag, injected failures).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::ApiError;
use crate::faults::Fault;
use crate::fields::Scope;
use crate::log::{RequestCounts, RequestRecord};
use crate::resources::ResourceType;
use crate::selectors::Selector;
use crate::server::{ApiService, Shared};

/// Namespace a `kube::Client` from [`SimCluster::client`] defaults to.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A simulated cluster. Cheap to clone; every clone is the same cluster.
#[derive(Clone, Default)]
pub struct SimCluster {
    pub(crate) shared: Arc<Shared>,
}

impl SimCluster {
    /// An empty cluster and a client for it. Call inside a tokio runtime
    /// (the client's request buffer is a task).
    pub fn new() -> (SimCluster, kube::Client) {
        let cluster = SimCluster::default();
        let client = cluster.client();
        (cluster, client)
    }

    /// Another client for the same cluster — what a restarted operator
    /// process would get.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(ApiService(Arc::clone(&self.shared)), DEFAULT_NAMESPACE)
    }

    /// Serves another resource type (the built-in list covers what the
    /// operator and `kube::runtime` use).
    pub fn register(&self, t: ResourceType) {
        self.shared.objects.register(t);
    }

    /// One object; `resource` is a plural (`deployments`) or `plural.group`.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let t = self.shared.objects.type_by_name(resource).ok()?;
        self.shared.objects.get(&t, namespace, name).ok()
    }

    /// Objects of `resource` in `namespace` (`None`: every namespace)
    /// matching `label_selector` (`""`: all).
    pub fn list(
        &self,
        resource: &str,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let t = self.shared.objects.type_by_name(resource)?;
        let labels = Selector::parse(label_selector)?;
        Ok(self
            .shared
            .objects
            .list(&t, namespace, &labels, &Selector::default())
            .0)
    }

    /// Server-side applies `object` (with `apiVersion`, `kind`, name and
    /// namespace) as `manager`, forcing conflicts, like `kubectl apply
    /// --server-side --force-conflicts`.
    pub fn apply_as(&self, manager: &str, object: &Value) -> Result<Value, ApiError> {
        self.apply_scoped(manager, object, false)
    }

    /// Server-side applies `object`'s `status` through `/status` as `manager`.
    pub fn apply_status_as(&self, manager: &str, object: &Value) -> Result<Value, ApiError> {
        self.apply_scoped(manager, object, true)
    }

    fn apply_scoped(&self, manager: &str, object: &Value, status: bool) -> Result<Value, ApiError> {
        let t = self.shared.objects.type_of(object)?;
        let (ns, name) = address(object);
        let scope = if status {
            Scope::Status
        } else {
            Scope::Main {
                status_subresource: t.status_subresource,
            }
        };
        self.shared
            .objects
            .apply(&t, &ns, &name, object.clone(), manager, true, scope)
    }

    /// Creates `object` (as field manager `simcluster`).
    pub fn create(&self, object: &Value) -> Result<Value, ApiError> {
        let t = self.shared.objects.type_of(object)?;
        let (ns, _) = address(object);
        self.shared
            .objects
            .create(&t, &ns, object.clone(), "simcluster")
    }

    /// Deletes an object, garbage-collecting its dependents.
    pub fn delete(&self, resource: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let t = self.shared.objects.type_by_name(resource)?;
        self.shared.objects.delete(&t, namespace, name, false)
    }

    /// The cluster's current `resourceVersion`.
    pub fn resource_version(&self) -> u64 {
        self.shared.objects.resource_version()
    }

    /// Every HTTP request served so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.records()
    }

    /// HTTP requests served so far, by verb and resource.
    pub fn request_counts(&self) -> RequestCounts {
        self.shared.log.counts()
    }

    /// Forgets the requests served so far (e.g. after start-up).
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// Delivers watch events of `resource` `lag` late (e.g. a Store watch
    /// that lags the operator's own status write by 2 s).
    pub fn set_watch_lag(&self, resource: &str, lag: Duration) -> Result<(), ApiError> {
        let t = self.shared.objects.type_by_name(resource)?;
        self.shared.lags.set(&t, lag);
        Ok(())
    }

    /// Fails the next matching HTTP request(s) as `fault` says.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.add(fault);
    }
}

fn address(object: &Value) -> (String, String) {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("/metadata/namespace"), text("/metadata/name"))
}
