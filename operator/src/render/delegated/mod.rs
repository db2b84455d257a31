//! Managed data stores delegated to an operator of the ecosystem: PostgreSQL
//! as a CloudNativePG `Cluster` (`cnpg`), RabbitMQ as a RabbitMQ Cluster
//! Operator `RabbitmqCluster` (`rabbitmq_cluster`). Rendering only follows
//! the spec's `provider`: `CloudNativePG` / `RabbitmqClusterOperator`
//! render the delegated objects, anything else (`Auto` included) the
//! built-in StatefulSet. Deciding what `Auto` means for a Store in a given
//! cluster is `provider::resolve`'s job, before rendering.

pub mod cnpg;
pub mod provider;
pub mod rabbitmq_cluster;
pub mod readiness;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::meta::Ctx;
use crate::api::{DeletionPolicy, Provider, StoreSpec};

/// Whether PostgreSQL is a CloudNativePG `Cluster`.
pub fn postgres(spec: &StoreSpec) -> bool {
    spec.postgres
        .managed
        .as_ref()
        .is_some_and(|m| m.provider == Provider::CloudNativePg)
}

/// Whether RabbitMQ is a `RabbitmqCluster`.
pub fn rabbitmq(spec: &StoreSpec) -> bool {
    spec.rabbitmq
        .managed
        .as_ref()
        .is_some_and(|m| m.provider == Provider::RabbitmqClusterOperator)
}

/// The pods of a delegated data store, as its operator labels them (the
/// Store's labels never reach them), for the services' NetworkPolicies;
/// `None` when the component is not delegated.
pub fn pod_selector(ctx: &Ctx<'_>, component: &str) -> Option<LabelSelector> {
    let labels = if component == super::postgres::COMPONENT && postgres(ctx.spec) {
        cnpg::pod_labels(ctx)
    } else if component == super::rabbitmq::COMPONENT && rabbitmq(ctx.spec) {
        rabbitmq_cluster::pod_labels(ctx)
    } else {
        return None;
    };
    Some(LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    })
}

/// Metadata of the object that holds a delegated store's data (the
/// `Cluster`, the `RabbitmqCluster`): its operator deletes the volumes with
/// it, so under `deletionPolicy: Retain` the Store does not own it and it
/// outlives the Store, as the built-in StatefulSets' claims do; a Store
/// re-created under the same name finds it by its labels and applies to it
/// again.
fn data_meta(ctx: &Ctx<'_>, name: String, component: &str, version: &str) -> ObjectMeta {
    let mut meta = ctx.meta(name, component, version);
    if ctx.spec.deletion_policy == DeletionPolicy::Retain {
        meta.owner_references = None;
    }
    meta
}

/// `value` as JSON, for the body of an object k8s-openapi has no type for.
fn to_json<T: serde::Serialize>(what: &str, value: &T) -> crate::Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|source| crate::Error::Serialize {
        what: what.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
