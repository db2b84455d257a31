//! PostgreSQL delegated to CloudNativePG: a `Cluster` `<store>-postgres`
//! with one managed role per shop database (`spec.managed.roles`, each
//! password from a generated `kubernetes.io/basic-auth` Secret
//! `<store>-postgres-<database>`), one `Database` object per shop database
//! owned by its role, and, with `backup.objectStore`, an `ObjectStore` for
//! the Barman Cloud plugin (WAL archiving) and a `ScheduledBackup` (base
//! backups). The services connect to the `Cluster`'s read-write Service
//! `<store>-postgres-rw`, which follows the primary through a failover.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use storekeeper_contract::ShopService;

use super::body::{data_meta, to_json};
use crate::Result;
use crate::api::{Backup, Managed, ObjectStore};
use crate::render::meta::Ctx;
use crate::render::{ChildKind, Object, Step, components, datastore, pod};

/// The Barman Cloud plugin's name in `Cluster.spec.plugins` and in a
/// `ScheduledBackup`'s `pluginConfiguration`.
pub const BARMAN_PLUGIN: &str = "barman-cloud.cloudnative-pg.io";
/// Key of the object store's access key id in the user's Secret.
pub const ACCESS_KEY_ID: &str = "ACCESS_KEY_ID";
/// Key of the object store's secret access key in the user's Secret.
pub const ACCESS_SECRET_KEY: &str = "ACCESS_SECRET_KEY";
/// The label CloudNativePG puts on every pod of a `Cluster`.
const CLUSTER_LABEL: &str = "cnpg.io/cluster";
/// The `app.kubernetes.io/version` of a `Cluster` that runs the image its
/// CloudNativePG release picks (no `image` set).
const DEFAULT_VERSION: &str = "cloudnative-pg";

/// The `Cluster`'s name (also the prefix of the Services CloudNativePG makes).
pub fn cluster_name(ctx: &Ctx<'_>) -> String {
    ctx.name(components::POSTGRES)
}

/// The host the services reach the primary at: CloudNativePG's read-write Service.
pub fn host(ctx: &Ctx<'_>) -> String {
    format!("{}-rw", cluster_name(ctx))
}

/// The generated Secret holding one role's login (`username`, `password`).
pub fn role_secret(store: &str, database: &str) -> String {
    format!("{store}-{}-{database}", components::POSTGRES)
}

/// Name of the `Database` object of one shop database.
pub fn database_object(ctx: &Ctx<'_>, database: &str) -> String {
    ctx.name(&format!("{}-{database}", components::POSTGRES))
}

/// Name of the `ObjectStore` the plugin archives to.
pub fn object_store_name(ctx: &Ctx<'_>) -> String {
    ctx.name("postgres-backups")
}

/// Labels of the `Cluster`'s pods.
pub fn pod_labels(ctx: &Ctx<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([(CLUSTER_LABEL.to_owned(), cluster_name(ctx))])
}

/// The shop's databases, in contract order; each is owned by a role of its name.
fn databases() -> impl Iterator<Item = &'static str> {
    ShopService::ALL
        .into_iter()
        .filter_map(ShopService::database)
}

/// A five-field cron schedule (or a macro) as CloudNativePG's six-field one,
/// seconds first.
pub fn schedule(five_fields: &str) -> String {
    if five_fields.starts_with('@') {
        five_fields.to_owned()
    } else {
        format!("0 {five_fields}")
    }
}

/// The objects of a PostgreSQL delegated to CloudNativePG, all in the Data step.
pub fn render(ctx: &Ctx<'_>, managed: &Managed) -> Result<Vec<Object>> {
    let name = cluster_name(ctx);
    let version = managed
        .image
        .as_deref()
        .map_or(DEFAULT_VERSION, datastore::image_tag);
    let instances = managed.instances.unwrap_or(1);
    let roles: Vec<Value> = databases()
        .map(|db| {
            json!({
                "name": db,
                "ensure": "present",
                "login": true,
                "passwordSecret": {"name": role_secret(&ctx.store, db)},
            })
        })
        .collect();
    let mut storage = json!({"size": managed.storage});
    if let Some(class) = &managed.storage_class_name {
        storage["storageClass"] = json!(class);
    }
    let mut spec = json!({
        "instances": instances,
        "storage": storage,
        "resources": to_json("PostgreSQL's resources", &pod::resources(&managed.resources))?,
        "enableSuperuserAccess": false,
        // One instance: a budget could only block every drain (see the
        // operator docs, "PodDisruptionBudgets").
        "enablePDB": instances > 1,
        "managed": {"roles": roles},
    });
    if let Some(image) = &managed.image {
        spec["imageName"] = json!(image);
    }
    let object_store = managed
        .backup
        .as_ref()
        .and_then(|b| b.object_store.as_ref());
    if object_store.is_some() {
        spec["plugins"] = json!([{
            "name": BARMAN_PLUGIN,
            "isWALArchiver": true,
            "parameters": {"barmanObjectName": object_store_name(ctx)},
        }]);
    }
    let cluster = json!({
        "metadata": to_json(&name, &data_meta(ctx, name.clone(), components::POSTGRES, version))?,
        "spec": spec,
    });
    let mut out = vec![Object::from_json(
        ChildKind::CnpgCluster,
        Step::Data,
        &name,
        cluster,
    )];
    for db in databases() {
        let object_name = database_object(ctx, db);
        let database = json!({
            "metadata": to_json(&object_name, &ctx.meta(object_name.clone(), components::POSTGRES, version))?,
            "spec": {"name": db, "owner": db, "cluster": {"name": name}},
        });
        out.push(Object::from_json(
            ChildKind::CnpgDatabase,
            Step::Data,
            &object_name,
            database,
        ));
    }
    if let (Some(backup), Some(store)) = (&managed.backup, object_store) {
        out.extend(backups(ctx, backup, store, version)?);
    }
    Ok(out)
}

/// The `ObjectStore` and the `ScheduledBackup` of a `Cluster` backed up to object storage.
fn backups(
    ctx: &Ctx<'_>,
    backup: &Backup,
    store: &ObjectStore,
    version: &str,
) -> Result<[Object; 2]> {
    let credential = |key: &str| json!({"name": store.secret_name, "key": key});
    let mut configuration = json!({
        "destinationPath": store.destination_path,
        "s3Credentials": {
            "accessKeyId": credential(ACCESS_KEY_ID),
            "secretAccessKey": credential(ACCESS_SECRET_KEY),
        },
        "wal": {"compression": "gzip"},
    });
    if let Some(endpoint) = &store.endpoint_url {
        configuration["endpointURL"] = json!(endpoint);
    }
    let store_name = object_store_name(ctx);
    let object_store = json!({
        "metadata": to_json(&store_name, &ctx.meta(store_name.clone(), components::POSTGRES, version))?,
        "spec": {"configuration": configuration, "retentionPolicy": store.retention_policy},
    });
    let schedule_name = ctx.name("postgres-backup");
    let scheduled = json!({
        "metadata": to_json(&schedule_name, &ctx.meta(schedule_name.clone(), components::POSTGRES, version))?,
        "spec": {
            "schedule": schedule(&backup.schedule),
            "cluster": {"name": cluster_name(ctx)},
            "method": "plugin",
            "pluginConfiguration": {"name": BARMAN_PLUGIN},
            "backupOwnerReference": "self",
        },
    });
    Ok([
        Object::from_json(
            ChildKind::BarmanObjectStore,
            Step::Data,
            &store_name,
            object_store,
        ),
        Object::from_json(
            ChildKind::CnpgScheduledBackup,
            Step::Data,
            &schedule_name,
            scheduled,
        ),
    ])
}
