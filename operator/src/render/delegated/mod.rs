//! Managed data stores delegated to an operator of the ecosystem: PostgreSQL
//! as a CloudNativePG `Cluster` (`cnpg`), RabbitMQ as a RabbitMQ Cluster
//! Operator `RabbitmqCluster` (`rabbitmq_cluster`). Rendering only follows
//! the spec's `provider`: `CloudNativePG` / `RabbitmqClusterOperator`
//! render the delegated objects, anything else (`Auto` included) the
//! built-in StatefulSet. Deciding what `Auto` means for a Store in a given
//! cluster is `provider::resolve`'s job, before rendering.

mod body;
pub mod cnpg;
pub mod provider;
pub mod rabbitmq_cluster;
pub mod readiness;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::components;
use super::meta::Ctx;
use crate::api::{Provider, StoreSpec};

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
    let labels = if component == components::POSTGRES && postgres(ctx.spec) {
        cnpg::pod_labels(ctx)
    } else if component == components::RABBITMQ && rabbitmq(ctx.spec) {
        rabbitmq_cluster::pod_labels(ctx)
    } else {
        return None;
    };
    Some(LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    })
}

#[cfg(test)]
mod tests;
