//! RabbitMQ delegated to the RabbitMQ Cluster Operator: a `RabbitmqCluster`
//! `<store>-rabbitmq`. Its client Service has the built-in broker's name
//! and AMQP port, so the services' `AMQP_URL` is the same; its default user
//! is the Store's (`storekeeper`), whose password the Storekeeper operator
//! generates into `<store>-rabbitmq-default-user` in the format the Cluster
//! Operator reads (`spec.secretBackend.externalSecret`: `username`,
//! `password`, `default_user.conf`).

use std::collections::BTreeMap;

use serde_json::json;
use storekeeper_contract::labels;

use super::body::{data_meta, to_json};
use crate::Result;
use crate::api::Managed;
use crate::render::meta::Ctx;
use crate::render::{ChildKind, Object, Step, components, datastore, pod};

/// The `app.kubernetes.io/version` of a `RabbitmqCluster` that runs the
/// image its operator release picks (no `image` set).
const DEFAULT_VERSION: &str = "rabbitmq-cluster-operator";

/// The generated default-user Secret the `RabbitmqCluster` reads.
pub fn default_user_secret(store: &str) -> String {
    format!("{store}-{}-default-user", components::RABBITMQ)
}

/// Labels of the `RabbitmqCluster`'s pods (the Cluster Operator's own:
/// `app.kubernetes.io/name` is the `RabbitmqCluster`'s name).
pub fn pod_labels(ctx: &Ctx<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::NAME.to_owned(), ctx.name(components::RABBITMQ))])
}

/// The `RabbitmqCluster`, in the Data step.
pub fn render(ctx: &Ctx<'_>, managed: &Managed) -> Result<Vec<Object>> {
    let name = ctx.name(components::RABBITMQ);
    let version = managed
        .image
        .as_deref()
        .map_or(DEFAULT_VERSION, datastore::image_tag);
    let mut persistence = json!({"storage": managed.storage});
    if let Some(class) = &managed.storage_class_name {
        persistence["storageClassName"] = json!(class);
    }
    let mut spec = json!({
        "replicas": managed.replicas.unwrap_or(1),
        "persistence": persistence,
        "resources": to_json("RabbitMQ's resources", &pod::resources(&managed.resources))?,
        "secretBackend": {"externalSecret": {"name": default_user_secret(&ctx.store)}},
    });
    if let Some(image) = &managed.image {
        spec["image"] = json!(image);
    }
    let cluster = json!({
        "metadata": to_json(&name, &data_meta(ctx, name.clone(), components::RABBITMQ, version))?,
        "spec": spec,
    });
    Ok(vec![Object::from_json(
        ChildKind::RabbitmqCluster,
        Step::Data,
        &name,
        cluster,
    )])
}
