//! Names, labels and owner references shared by every child, so each rule
//! (`<store>-<component>`, `app.kubernetes.io/*`, controller owner
//! reference, the Store's namespace) is written once.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use storekeeper_contract::{ShopService, labels};

use super::Platform;
use crate::api::{Store, StoreSpec};
use crate::{Error, Result};

/// What every render function needs: the spec plus the identity of the Store.
#[derive(Clone, Debug)]
pub struct Ctx<'a> {
    /// The Store's name.
    pub store: String,
    /// The Store's namespace (every child lives there).
    pub namespace: String,
    /// The Store's spec.
    pub spec: &'a StoreSpec,
    /// The operator's installation (empty unless `on` says otherwise).
    pub platform: &'a Platform,
    owner: OwnerReference,
}

/// The platform a `Ctx` knows nothing about.
static NO_PLATFORM: Platform = Platform {
    operator_metrics: None,
};

impl<'a> Ctx<'a> {
    /// Captures the Store's identity; fails when it has no namespace.
    pub fn new(store: &'a Store) -> Result<Self> {
        let namespace = store.namespace().ok_or(Error::MissingNamespace)?;
        let owner = OwnerReference {
            api_version: Store::api_version(&()).into_owned(),
            kind: Store::kind(&()).into_owned(),
            name: store.name_any(),
            uid: store.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        Ok(Self {
            store: store.name_any(),
            namespace,
            spec: &store.spec,
            platform: &NO_PLATFORM,
            owner,
        })
    }

    /// The same Store, rendered for the operator installed as `platform`.
    #[must_use]
    pub fn on(self, platform: &'a Platform) -> Self {
        Self { platform, ..self }
    }

    /// The controller owner reference every owned child carries.
    pub fn owner_reference(&self) -> &OwnerReference {
        &self.owner
    }

    /// `<store>-<component>`.
    pub fn name(&self, component: &str) -> String {
        format!("{}-{component}", self.store)
    }

    /// Image tag a service runs.
    pub fn service_version(&self, service: ShopService) -> &str {
        self.spec
            .services
            .get(service)
            .version
            .as_deref()
            .unwrap_or(&self.spec.version)
    }

    /// Labels that select a component's pods (stable across versions).
    pub fn selector_labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::NAME.to_owned(), component.to_owned()),
            (labels::INSTANCE.to_owned(), self.store.clone()),
        ])
    }

    /// Labels every pod of the Store carries (for Store-wide policies).
    pub fn store_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::INSTANCE.to_owned(), self.store.clone()),
            (labels::PART_OF.to_owned(), labels::STOREKEEPER.to_owned()),
        ])
    }

    /// The full `app.kubernetes.io/*` label set for a component.
    pub fn labels(&self, component: &str, version: &str) -> BTreeMap<String, String> {
        let mut l = self.selector_labels(component);
        l.insert(labels::PART_OF.to_owned(), labels::STOREKEEPER.to_owned());
        l.insert(
            labels::MANAGED_BY.to_owned(),
            labels::STOREKEEPER.to_owned(),
        );
        l.insert(labels::VERSION.to_owned(), version.to_owned());
        l
    }

    /// Metadata for a child: name, namespace, labels, controller owner reference.
    pub fn meta(&self, name: String, component: &str, version: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component, version)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// A selector on a component's pods.
    pub fn selector(&self, component: &str) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.selector_labels(component)),
            ..LabelSelector::default()
        }
    }

    /// Label selector string that finds every child of this Store.
    pub fn children_selector(store: &str) -> String {
        format!(
            "{}={store},{}={}",
            labels::INSTANCE,
            labels::MANAGED_BY,
            labels::STOREKEEPER
        )
    }
}
