//! What every delegated object's body is built from: the metadata of the
//! object holding the data, and JSON for kinds k8s-openapi has no type for.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::DeletionPolicy;
use crate::render::meta::Ctx;

/// Metadata of the object that holds a delegated store's data (the
/// `Cluster`, the `RabbitmqCluster`): its operator deletes the volumes with
/// it, so under `deletionPolicy: Retain` the Store does not own it and it
/// outlives the Store, as the built-in StatefulSets' claims do; a Store
/// re-created under the same name finds it by its labels and applies to it
/// again.
pub(super) fn data_meta(ctx: &Ctx<'_>, name: String, component: &str, version: &str) -> ObjectMeta {
    let mut meta = ctx.meta(name, component, version);
    if ctx.spec.deletion_policy == DeletionPolicy::Retain {
        meta.owner_references = None;
    }
    meta
}

/// `value` as JSON, for the body of an object k8s-openapi has no type for.
pub(super) fn to_json<T: serde::Serialize>(
    what: &str,
    value: &T,
) -> crate::Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|source| crate::Error::Serialize {
        what: what.to_owned(),
        source,
    })
}
