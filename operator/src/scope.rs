//! Where the operator watches Stores and their children.

use kube::{Api, Client, Resource};

/// Where the operator watches Stores and their children: the whole cluster
/// (a ClusterRole), or only the namespaces it was given (a Role in each, the
/// chart's `watchNamespaces`), so a platform team can run one operator per
/// tenant without granting anything cluster-wide.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace.
    #[default]
    Cluster,
    /// These namespaces only (never empty).
    Namespaces(Vec<String>),
}

impl Scope {
    /// The scope of `--watch-namespaces`: none given means the whole cluster.
    pub fn new(namespaces: Vec<String>) -> Self {
        let mut namespaces: Vec<String> = namespaces
            .into_iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        if namespaces.is_empty() {
            Scope::Cluster
        } else {
            Scope::Namespaces(namespaces)
        }
    }

    /// One watch target per controller: `None` for all namespaces.
    pub(crate) fn targets(&self) -> Vec<Option<&str>> {
        match self {
            Scope::Cluster => vec![None],
            Scope::Namespaces(list) => list.iter().map(|n| Some(n.as_str())).collect(),
        }
    }
}

/// `Api::all`, or `Api::namespaced` in `namespace`.
pub(crate) fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn no_namespace_means_the_whole_cluster() {
        assert_eq!(Scope::new(vec![]), Scope::Cluster);
        assert_eq!(Scope::new(vec![String::new(), " ".into()]), Scope::Cluster);
        assert_eq!(Scope::Cluster.targets(), vec![None]);
    }

    #[test]
    fn namespaces_are_trimmed_sorted_and_deduplicated() {
        let scope = Scope::new(vec!["shop-b".into(), " shop-a".into(), "shop-b".into()]);
        assert_eq!(
            scope,
            Scope::Namespaces(vec!["shop-a".into(), "shop-b".into()])
        );
        assert_eq!(scope.targets(), vec![Some("shop-a"), Some("shop-b")]);
    }
}
