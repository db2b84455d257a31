//! Revisions: the id of a spec, the ControllerRevision that keeps a
//! revision's spec (so a rollback can render it again after the Store
//! moved on, and an operator restarted mid-rollout finds it), and which old
//! ones to delete.
//!
//! The id hashes what defines the shop. `paused` and `rollout` are left out,
//! so pausing or tuning the rollout never starts one; they are taken from
//! the current spec when an old revision is rendered again.

use std::cmp::Reverse;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::ResourceExt;
use serde_json::Value;

use crate::api::{Store, StoreSpec};
use crate::render::meta::Ctx;
use crate::render::object::hash_value;
use crate::{Error, Result};

/// Label on a ControllerRevision naming the revision it holds.
pub const REVISION_LABEL: &str = "storekeeper.dev/revision";
/// `app.kubernetes.io/name` of the Store's ControllerRevisions.
pub const COMPONENT: &str = "revision";

/// The spec as stored: without the fields that never start a rollout.
pub fn data(spec: &StoreSpec) -> Value {
    let mut value = serde_json::to_value(spec).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("paused");
        map.remove("rollout");
    }
    value
}

/// The revision id of a spec: 10 hex digits of the SHA-256 of its stored form.
pub fn id(spec: &StoreSpec) -> String {
    hash_value(&data(spec))[..10].to_owned()
}

/// Name of the ControllerRevision holding revision `id` of `store`.
pub fn name(store: &str, id: &str) -> String {
    format!("{store}-{id}")
}

/// The ControllerRevision for the Store's current spec: owned by the Store,
/// labelled like its other children, numbered `number`.
pub fn controller_revision(store: &Store, number: i64) -> Result<ControllerRevision> {
    let ctx = Ctx::new(store)?;
    let id = id(&store.spec);
    let mut metadata = ctx.meta(name(&ctx.store, &id), COMPONENT, &store.spec.version);
    if let Some(labels) = metadata.labels.as_mut() {
        labels.insert(REVISION_LABEL.to_owned(), id);
    }
    Ok(ControllerRevision {
        metadata,
        data: RawExtension(data(&store.spec)),
        revision: Some(number),
    })
}

/// The Store as of an older revision, for rendering it again: that
/// revision's spec with today's identity, `paused` and `rollout`.
pub fn restore(current: &Store, stored: &Stored) -> Store {
    let mut store = current.clone();
    store.spec = StoreSpec {
        paused: current.spec.paused,
        rollout: current.spec.rollout.clone(),
        ..stored.spec.clone()
    };
    store
}

/// One ControllerRevision as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    /// Its name.
    pub name: String,
    /// The revision id it holds.
    pub id: String,
    /// Its number; higher is newer.
    pub number: i64,
    /// The spec it holds (`paused` and `rollout` at their defaults).
    pub spec: StoreSpec,
}

impl Stored {
    /// Reads a listed ControllerRevision; fails on one that is not the
    /// operator's or whose spec this operator cannot read.
    pub fn parse(value: &Value) -> Result<Self> {
        let what = |e: serde_json::Error| Error::Serialize {
            what: format!(
                "ControllerRevision {}",
                value.pointer("/metadata/name").unwrap_or(&Value::Null)
            ),
            source: e,
        };
        let cr: ControllerRevision = serde_json::from_value(value.clone()).map_err(what)?;
        let id = cr.labels().get(REVISION_LABEL).cloned().unwrap_or_default();
        Ok(Self {
            name: cr.name_any(),
            id,
            number: cr.revision.unwrap_or_default(),
            spec: serde_json::from_value(cr.data.0).map_err(what)?,
        })
    }
}

/// What to write so the current spec's revision is stored and is the
/// newest. Only the number of an existing revision ever changes (its data
/// is immutable), so renumbering is a merge patch of `revision`.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Create this ControllerRevision.
    Create(Box<ControllerRevision>),
    /// Set `revision` of the named ControllerRevision to `number`.
    Renumber {
        /// Its name.
        name: String,
        /// The new number.
        number: i64,
    },
}

/// The Store's stored revisions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    revisions: Vec<Stored>,
}

impl History {
    /// History from listed ControllerRevisions already parsed.
    pub fn new(revisions: Vec<Stored>) -> Self {
        Self { revisions }
    }

    /// The stored revision with this id.
    pub fn get(&self, id: &str) -> Option<&Stored> {
        self.revisions.iter().find(|r| r.id == id)
    }

    fn newest(&self) -> i64 {
        self.revisions.iter().map(|r| r.number).max().unwrap_or(0)
    }

    /// What to write for `store`'s current spec, if anything: create its
    /// revision, or renumber it when the spec went back to an older one.
    pub fn write_for(&self, store: &Store) -> Result<Option<Write>> {
        let newest = self.newest();
        Ok(match self.get(&id(&store.spec)) {
            Some(r) if r.number == newest => None,
            Some(r) => Some(Write::Renumber {
                name: r.name.clone(),
                number: newest + 1,
            }),
            None => Some(Write::Create(Box::new(controller_revision(
                store,
                newest + 1,
            )?))),
        })
    }

    /// Names of the revisions to delete: all but the newest `limit`, never
    /// one of `keep` (the stable and the target revision).
    pub fn prune(&self, limit: i32, keep: &[&str]) -> Vec<String> {
        let mut by_age: Vec<&Stored> = self.revisions.iter().collect();
        by_age.sort_by_key(|r| Reverse(r.number));
        let limit = usize::try_from(limit).unwrap_or(1).max(1);
        by_age
            .into_iter()
            .skip(limit)
            .filter(|r| !keep.contains(&r.id.as_str()))
            .map(|r| r.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::store;

    #[test]
    fn paused_and_rollout_settings_do_not_make_a_revision() {
        let base = store("shop");
        let mut tuned = base.clone();
        tuned.spec.paused = true;
        tuned.spec.rollout.auto_rollback = false;
        tuned.spec.rollout.health_timeout_seconds = 60;
        tuned.spec.rollout.revision_history_limit = 2;
        assert_eq!(id(&base.spec), id(&tuned.spec));
        let mut bumped = base.clone();
        bumped.spec.version = "1.2.4".into();
        assert_ne!(id(&base.spec), id(&bumped.spec));
        let mut resized = base.clone();
        resized.spec.services.order.replicas = 3;
        assert_ne!(id(&base.spec), id(&resized.spec));
        assert_eq!(id(&base.spec).len(), 10);
    }

    #[test]
    fn controller_revision_is_owned_labelled_and_numbered() {
        let s = store("shop");
        let cr = controller_revision(&s, 7).unwrap();
        let rev = id(&s.spec);
        assert_eq!(
            cr.metadata.name.as_deref(),
            Some(format!("shop-{rev}").as_str())
        );
        assert_eq!(cr.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(cr.revision, Some(7));
        let labels = cr.metadata.labels.clone().unwrap();
        assert_eq!(labels[REVISION_LABEL], rev);
        assert_eq!(labels["app.kubernetes.io/instance"], "shop");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "storekeeper");
        assert_eq!(labels["app.kubernetes.io/version"], "1.2.3");
        let owner = &cr.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Store", Some(true))
        );
        let data = cr.data.0.clone();
        assert!(data.get("rollout").is_none() && data.get("paused").is_none());
        assert!(
            controller_revision(&Store::new("x", s.spec.clone()), 1).is_err(),
            "needs a namespace"
        );
    }

    #[test]
    fn a_stored_revision_reads_back_and_restores_with_todays_rollout() {
        let mut old = store("shop");
        old.spec.version = "1.0.0".into();
        let listed = serde_json::to_value(controller_revision(&old, 3).unwrap()).unwrap();
        let stored = Stored::parse(&listed).unwrap();
        assert_eq!(
            (stored.id.as_str(), stored.number),
            (id(&old.spec).as_str(), 3)
        );
        let mut now = store("shop").paused();
        now.spec.rollout.auto_rollback = false;
        let restored = restore(&now, &stored);
        assert_eq!(restored.spec.version, "1.0.0");
        assert!(restored.spec.paused);
        assert!(!restored.spec.rollout.auto_rollback);
        assert_eq!(restored.metadata, now.metadata);
        assert!(Stored::parse(&serde_json::json!({"data": {"version": 3}})).is_err());
    }

    fn stored(i: i64) -> Stored {
        Stored {
            name: format!("shop-r{i}"),
            id: format!("r{i}"),
            number: i,
            spec: store("shop").spec,
        }
    }

    #[test]
    fn history_keeps_the_newest_and_never_the_stable_or_the_target() {
        for size in 0..=8_i64 {
            for limit in 1..=6_i32 {
                for stable in 1..=size.max(1) {
                    let history = History::new((1..=size).rev().map(stored).collect());
                    let target = format!("r{size}");
                    let stable_id = format!("r{stable}");
                    let deleted = history.prune(limit, &[&stable_id, &target]);
                    let kept: Vec<i64> = (1..=size)
                        .filter(|i| !deleted.contains(&format!("shop-r{i}")))
                        .collect();
                    let newest = i64::from(limit).min(size);
                    for i in 1..=size {
                        let must_keep = i > size - newest || i == stable || i == size;
                        assert_eq!(
                            kept.contains(&i),
                            must_keep,
                            "size {size}, limit {limit}, stable {stable}: r{i}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn writes_create_then_renumber_an_older_revision() {
        let s = store("shop");
        let Some(Write::Create(first)) = History::default().write_for(&s).unwrap() else {
            panic!("an empty history needs the revision created");
        };
        assert_eq!(first.revision, Some(1));
        let mine = Stored::parse(&serde_json::to_value(&*first).unwrap()).unwrap();
        let history = History::new(vec![mine.clone()]);
        assert_eq!(history.write_for(&s).unwrap(), None, "already the newest");
        let history = History::new(vec![mine, stored(5)]);
        assert_eq!(
            history.write_for(&s).unwrap(),
            Some(Write::Renumber {
                name: format!("shop-{}", id(&s.spec)),
                number: 6
            })
        );
        let Some(Write::Create(next)) = History::new(vec![stored(5)]).write_for(&s).unwrap() else {
            panic!("a new spec is created");
        };
        assert_eq!(next.revision, Some(6));
    }
}
