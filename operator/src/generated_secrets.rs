//! Which of a Store's generated Secrets exist, and which Store owns each:
//! all a pass needs of them (`reconcile::plan` creates the missing ones and
//! sets the owner reference `spec.deletionPolicy` asks for;
//! `render::delegated::provider` tells a built-in store's data from a
//! delegated one's by them). Their names follow from the Store's name
//! (`render::secrets::generated_names`), so the operator reads each by
//! name, metadata only, and never lists or watches Secrets: RBAC cannot
//! narrow `list` or `watch` to a label or to metadata, so granting either
//! would let the operator read every Secret's values in the cluster.
//!
//! What a read found is remembered (`Memory::secrets`) and kept up to date
//! with what the operator does itself (a create, a 409 on create, an owner
//! patch), so a pass over a Store at rest asks nothing. The names are read
//! at a Store's first pass in this process, then again at its first pass
//! [`READ_EVERY`] or more after the last read: a Ready Store is passed over
//! every five minutes (`controller::RESYNC_READY`), so a generated Secret
//! deleted behind the operator's back is created again within an hour and
//! five minutes. Nothing wakes a Store for it before: Secrets are not
//! watched.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::ObjectMeta;
use serde_json::{Value, json};

use crate::Result;
use crate::memory::Memory;
use crate::reconcile::Observed;
use crate::render::ChildKind;
use crate::render::secrets::generated_names;

/// How long what a read of a Store's generated Secrets found is trusted:
/// longer than the five-minute resync of a Ready Store, so most passes at
/// rest ask nothing (a dozen GETs per Store every five minutes would be
/// most of an idle operator's requests), and short enough that a deleted
/// Secret does not stay missing for long.
pub const READ_EVERY: Duration = Duration::from_hours(1);

/// Adds the Store's generated Secrets that exist to `observed`, as
/// metadata with their controller owner: from memory, or read by name
/// (and remembered) at the Store's first pass and once [`READ_EVERY`] has
/// passed since the last read.
pub async fn observe(
    secrets: &Api<Secret>,
    memory: &Memory,
    store: &str,
    uid: &str,
    observed: &mut Observed,
) -> Result<()> {
    let remembered = memory
        .secrets(uid)
        .filter(|seen| seen.read_at.elapsed() < READ_EVERY);
    let found = if let Some(seen) = remembered {
        seen.found
    } else {
        let found = read(secrets, &generated_names(store)).await?;
        memory.read_secrets(uid, found.clone());
        found
    };
    for (name, owner) in found {
        observed.insert(ChildKind::Secret, as_observed(&name, owner.as_deref()));
    }
    Ok(())
}

/// The Secret `name`'s controller owner (`Some(None)`: it exists and has
/// none), or `None` when it does not exist; one metadata-only GET.
pub async fn owner(secrets: &Api<Secret>, name: &str) -> Result<Option<Option<String>>> {
    Ok(secrets
        .get_metadata_opt(name)
        .await?
        .map(|found| controller_uid(&found.metadata)))
}

/// Each of `names` that exists, with its controller owner.
async fn read(secrets: &Api<Secret>, names: &[String]) -> Result<BTreeMap<String, Option<String>>> {
    let mut found = BTreeMap::new();
    for name in names {
        if let Some(owner) = owner(secrets, name).await? {
            found.insert(name.clone(), owner);
        }
    }
    Ok(found)
}

/// The uid of the object's controller owner, if it has one.
fn controller_uid(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// A remembered Secret in the shape `Observed` holds (what
/// `reconcile::observed::controller_uid` reads).
fn as_observed(name: &str, owner: Option<&str>) -> Value {
    let refs = owner.map(|uid| json!([{"uid": uid, "controller": true}]));
    json!({"metadata": {"name": name, "ownerReferences": refs}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::observed;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    #[test]
    fn a_remembered_secret_reads_back_with_its_owner() {
        let mut o = Observed::default();
        o.insert(ChildKind::Secret, as_observed("shop-admin", Some("u1")));
        o.insert(ChildKind::Secret, as_observed("shop-redis", None));
        let admin = o.get(ChildKind::Secret, "shop-admin").unwrap();
        assert_eq!(observed::controller_uid(admin), Some("u1"));
        let redis = o.get(ChildKind::Secret, "shop-redis").unwrap();
        assert_eq!(observed::controller_uid(redis), None);
    }

    #[test]
    fn only_the_controller_owner_counts() {
        let reference = |uid: &str, controller| OwnerReference {
            uid: uid.to_owned(),
            controller,
            ..OwnerReference::default()
        };
        let meta = ObjectMeta {
            owner_references: Some(vec![reference("other", None), reference("u1", Some(true))]),
            ..ObjectMeta::default()
        };
        assert_eq!(controller_uid(&meta), Some("u1".to_owned()));
        assert_eq!(controller_uid(&ObjectMeta::default()), None);
    }
}
