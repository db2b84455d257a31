//! The kinds of child object a Store has, with what the API needs to address
//! each (group, version, plural). The reconciler lists, applies and prunes by
//! walking this one list; the RBAC list in `crate::rbac` is derived from it.

use kube::core::{ApiResource, GroupVersionKind};

/// A kind of object the operator creates for a Store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChildKind {
    /// Generated credentials (created once, never applied or pruned).
    Secret,
    /// Shared, non-secret settings and the PostgreSQL init script.
    ConfigMap,
    /// One identity per workload, without token automount.
    ServiceAccount,
    /// Default-deny plus the flows the shop needs.
    NetworkPolicy,
    /// Stable addresses for data stores and services.
    Service,
    /// Data stores with persistent volumes.
    StatefulSet,
    /// The five shop services.
    Deployment,
    /// Keeps a service up during node drains.
    PodDisruptionBudget,
    /// Routes shoppers to the storefront and the APIs.
    Ingress,
}

impl ChildKind {
    /// Every kind, in the order the reconciler lists them.
    pub const ALL: [ChildKind; 9] = [
        ChildKind::Secret,
        ChildKind::ConfigMap,
        ChildKind::ServiceAccount,
        ChildKind::NetworkPolicy,
        ChildKind::Service,
        ChildKind::StatefulSet,
        ChildKind::Deployment,
        ChildKind::PodDisruptionBudget,
        ChildKind::Ingress,
    ];

    /// API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            ChildKind::Secret
            | ChildKind::ConfigMap
            | ChildKind::ServiceAccount
            | ChildKind::Service => "",
            ChildKind::StatefulSet | ChildKind::Deployment => "apps",
            ChildKind::PodDisruptionBudget => "policy",
            ChildKind::NetworkPolicy | ChildKind::Ingress => "networking.k8s.io",
        }
    }

    /// Kind name.
    pub fn kind(self) -> &'static str {
        match self {
            ChildKind::Secret => "Secret",
            ChildKind::ConfigMap => "ConfigMap",
            ChildKind::ServiceAccount => "ServiceAccount",
            ChildKind::NetworkPolicy => "NetworkPolicy",
            ChildKind::Service => "Service",
            ChildKind::StatefulSet => "StatefulSet",
            ChildKind::Deployment => "Deployment",
            ChildKind::PodDisruptionBudget => "PodDisruptionBudget",
            ChildKind::Ingress => "Ingress",
        }
    }

    /// Plural resource name, as used in URLs and RBAC rules.
    pub fn plural(self) -> &'static str {
        match self {
            ChildKind::Secret => "secrets",
            ChildKind::ConfigMap => "configmaps",
            ChildKind::ServiceAccount => "serviceaccounts",
            ChildKind::NetworkPolicy => "networkpolicies",
            ChildKind::Service => "services",
            ChildKind::StatefulSet => "statefulsets",
            ChildKind::Deployment => "deployments",
            ChildKind::PodDisruptionBudget => "poddisruptionbudgets",
            ChildKind::Ingress => "ingresses",
        }
    }

    /// `apiVersion` of the kind (`v1` or `<group>/v1`).
    pub fn api_version(self) -> String {
        if self.group().is_empty() {
            "v1".to_owned()
        } else {
            format!("{}/v1", self.group())
        }
    }

    /// Whether objects of this kind are server-side applied and pruned.
    /// Secrets are not: their values are generated once and must survive.
    pub fn is_applied(self) -> bool {
        self != ChildKind::Secret
    }

    /// What `kube::Api<DynamicObject>` needs to address the kind.
    pub fn api_resource(self) -> ApiResource {
        // Every kind the operator uses is served at v1 in its group.
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group(), "v1", self.kind()),
            self.plural(),
        )
    }
}
