//! The kinds the simulated API server serves: how a URL's group and plural
//! map to a kind, whether it is namespaced and whether it has a `/status`
//! subresource (which decides who may write `status`).

/// One served resource type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group (`""` for the core group).
    pub group: String,
    /// The version served (one per group here).
    pub version: String,
    /// Kind name.
    pub kind: String,
    /// Plural resource name, as used in URLs.
    pub plural: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether `status` is written only through `/status`.
    pub status_subresource: bool,
}

impl ResourceType {
    /// A namespaced type; `status` says whether it has the `/status` subresource.
    pub fn namespaced(group: &str, version: &str, kind: &str, plural: &str, status: bool) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced: true,
            status_subresource: status,
        }
    }

    /// `apiVersion` of objects of this type.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or just `plural` in the core group), as Kubernetes
    /// names the resource in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Every type the operator, `kube::runtime` and the workload simulator touch.
pub(crate) fn builtin() -> Vec<ResourceType> {
    let n = ResourceType::namespaced;
    let mut all = vec![
        n("storekeeper.dev", "v1alpha1", "Store", "stores", true),
        n("", "v1", "ConfigMap", "configmaps", false),
        n("", "v1", "Secret", "secrets", false),
        n("", "v1", "Service", "services", true),
        n("", "v1", "ServiceAccount", "serviceaccounts", false),
        n("", "v1", "Pod", "pods", true),
        n(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
        ),
        n("events.k8s.io", "v1", "Event", "events", false),
        n("apps", "v1", "Deployment", "deployments", true),
        n("apps", "v1", "StatefulSet", "statefulsets", true),
        n("apps", "v1", "ReplicaSet", "replicasets", true),
        n(
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            false,
        ),
        n("batch", "v1", "Job", "jobs", true),
        n("batch", "v1", "CronJob", "cronjobs", true),
        n(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
        ),
        n(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
        ),
        n(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            false,
        ),
        n("networking.k8s.io", "v1", "Ingress", "ingresses", true),
        n("rbac.authorization.k8s.io", "v1", "Role", "roles", false),
        n(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            false,
        ),
        n("coordination.k8s.io", "v1", "Lease", "leases", false),
    ];
    all.push(ResourceType {
        namespaced: false,
        ..n("", "v1", "Namespace", "namespaces", true)
    });
    all
}

/// The registry of served types.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    types: Vec<ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        Self { types: builtin() }
    }
}

impl Registry {
    /// Adds (or replaces) a type.
    pub(crate) fn register(&mut self, t: ResourceType) {
        self.types
            .retain(|have| !(have.group == t.group && have.plural == t.plural));
        self.types.push(t);
    }

    /// The type a URL addresses.
    pub(crate) fn by_url(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Every type served at `group`/`version`, for discovery.
    pub(crate) fn in_group_version(&self, group: &str, version: &str) -> Vec<ResourceType> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .cloned()
            .collect()
    }

    /// The type stored under `group` and `plural`.
    pub(crate) fn by_plural(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural)
    }

    /// The type of an object, from its `apiVersion` and `kind`.
    pub(crate) fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// The type named `plural` or `plural.group` (what tests write).
    pub(crate) fn by_name(&self, name: &str) -> Option<&ResourceType> {
        if let Some(t) = self.types.iter().find(|t| t.qualified() == name) {
            return Some(t);
        }
        let mut matching = self.types.iter().filter(|t| t.plural == name);
        match (matching.next(), matching.next()) {
            (Some(t), None) => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_url_kind_and_name() {
        let r = Registry::default();
        let d = r.by_url("apps", "v1", "deployments").unwrap();
        assert_eq!(d.kind, "Deployment");
        assert_eq!(r.by_kind("apps/v1", "Deployment"), Some(d));
        assert_eq!(r.by_name("deployments.apps"), Some(d));
        assert_eq!(r.by_name("deployments"), Some(d));
        assert_eq!(r.by_kind("v1", "Secret").unwrap().qualified(), "secrets");
        assert!(r.by_url("apps", "v2", "deployments").is_none());
        let apps: Vec<String> = r
            .in_group_version("apps", "v1")
            .into_iter()
            .map(|t| t.kind)
            .collect();
        assert_eq!(
            apps,
            [
                "Deployment",
                "StatefulSet",
                "ReplicaSet",
                "ControllerRevision"
            ]
        );
        assert!(r.in_group_version("postgresql.cnpg.io", "v1").is_empty());
    }
}
