//! The delegated data stores' objects, exactly, and what delegation changes
//! around them: credentials, the services' connections, the policies.

use serde_json::{Value, json};

use super::provider::{Available, resolve, rules};
use super::readiness::waiting_for;
use crate::api::{Backup, ObjectStore, Provider, Store};
use crate::fixtures::store;
use crate::reconcile::Observed;
use crate::render::secrets::SecretKind;
use crate::render::{ChildKind, Object, Rendered, render};

/// A Store whose PostgreSQL is a three-instance CloudNativePG `Cluster`
/// backed up to object storage, and whose RabbitMQ is a `RabbitmqCluster`.
fn delegated() -> Store {
    let mut s = store("shop");
    if let Some(m) = s.spec.postgres.managed.as_mut() {
        m.provider = Provider::CloudNativePg;
        m.instances = Some(3);
        m.storage_class_name = Some("fast".to_owned());
        m.backup = Some(Backup {
            schedule: "17 3 * * *".to_owned(),
            object_store: Some(ObjectStore {
                destination_path: "s3://backups/shop".to_owned(),
                endpoint_url: Some("https://minio.backup:9000".to_owned()),
                secret_name: "backup-bucket".to_owned(),
                retention_policy: "14d".to_owned(),
            }),
            ..Backup::default()
        });
    }
    if let Some(m) = s.spec.rabbitmq.managed.as_mut() {
        m.provider = Provider::RabbitmqClusterOperator;
        m.replicas = Some(3);
    }
    s
}

/// The object's body without the applied-hash annotation.
fn body(rendered: &Rendered, kind: ChildKind, name: &str) -> Value {
    let object = rendered
        .objects
        .iter()
        .find(|o| o.kind == kind && o.name == name)
        .unwrap_or_else(|| panic!("{kind:?} {name} not rendered"));
    let mut value = Value::clone(&object.value);
    if let Some(meta) = value["metadata"].as_object_mut() {
        meta.remove("annotations");
    }
    value
}

fn labels(version: &str) -> Value {
    json!({
        "app.kubernetes.io/instance": "shop",
        "app.kubernetes.io/managed-by": "storekeeper",
        "app.kubernetes.io/name": "postgres",
        "app.kubernetes.io/part-of": "storekeeper",
        "app.kubernetes.io/version": version,
    })
}

fn owner() -> Value {
    json!([{
        "apiVersion": "storekeeper.dev/v1alpha1",
        "blockOwnerDeletion": true,
        "controller": true,
        "kind": "Store",
        "name": "shop",
        "uid": "0b1c2d3e-0000-4000-8000-000000000001",
    }])
}

fn resources() -> Value {
    json!({
        "limits": {"cpu": "1", "memory": "512Mi"},
        "requests": {"cpu": "100m", "memory": "128Mi"},
    })
}

#[test]
fn postgres_on_cloudnative_pg_is_a_cluster_with_a_role_and_a_database_per_service() {
    let rendered = render(&delegated()).unwrap();
    let role = |db: &str| {
        json!({"name": db, "ensure": "present", "login": true,
               "passwordSecret": {"name": format!("shop-postgres-{db}")}})
    };
    assert_eq!(
        body(&rendered, ChildKind::CnpgCluster, "shop-postgres"),
        json!({
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Cluster",
            // deletionPolicy Retain: not owned, so the data outlives the Store.
            "metadata": {"name": "shop-postgres", "namespace": "shop", "labels": labels("cloudnative-pg")},
            "spec": {
                "instances": 3,
                "storage": {"size": "5Gi", "storageClass": "fast"},
                "resources": resources(),
                "enableSuperuserAccess": false,
                "enablePDB": true,
                "managed": {"roles": [role("users"), role("products"), role("payments"), role("orders")]},
                "plugins": [{
                    "name": "barman-cloud.cloudnative-pg.io",
                    "isWALArchiver": true,
                    "parameters": {"barmanObjectName": "shop-postgres-backups"},
                }],
            },
        })
    );
    assert_eq!(
        body(&rendered, ChildKind::CnpgDatabase, "shop-postgres-orders"),
        json!({
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Database",
            "metadata": {"name": "shop-postgres-orders", "namespace": "shop",
                         "labels": labels("cloudnative-pg"), "ownerReferences": owner()},
            "spec": {"name": "orders", "owner": "orders", "cluster": {"name": "shop-postgres"}},
        })
    );
}

#[test]
fn cloudnative_pg_backs_up_through_the_barman_cloud_plugin_on_the_schedule() {
    let rendered = render(&delegated()).unwrap();
    assert_eq!(
        body(
            &rendered,
            ChildKind::BarmanObjectStore,
            "shop-postgres-backups"
        ),
        json!({
            "apiVersion": "barmancloud.cnpg.io/v1",
            "kind": "ObjectStore",
            "metadata": {"name": "shop-postgres-backups", "namespace": "shop",
                         "labels": labels("cloudnative-pg"), "ownerReferences": owner()},
            "spec": {
                "configuration": {
                    "destinationPath": "s3://backups/shop",
                    "endpointURL": "https://minio.backup:9000",
                    "s3Credentials": {
                        "accessKeyId": {"name": "backup-bucket", "key": "ACCESS_KEY_ID"},
                        "secretAccessKey": {"name": "backup-bucket", "key": "ACCESS_SECRET_KEY"},
                    },
                    "wal": {"compression": "gzip"},
                },
                "retentionPolicy": "14d",
            },
        })
    );
    assert_eq!(
        body(
            &rendered,
            ChildKind::CnpgScheduledBackup,
            "shop-postgres-backup"
        ),
        json!({
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "ScheduledBackup",
            "metadata": {"name": "shop-postgres-backup", "namespace": "shop",
                         "labels": labels("cloudnative-pg"), "ownerReferences": owner()},
            "spec": {
                "schedule": "0 17 3 * * *",
                "cluster": {"name": "shop-postgres"},
                "method": "plugin",
                "pluginConfiguration": {"name": "barman-cloud.cloudnative-pg.io"},
                "backupOwnerReference": "self",
            },
        })
    );
}

#[test]
fn cloudnative_pg_replaces_every_object_of_the_builtin_postgres() {
    let rendered = render(&delegated()).unwrap();
    let data: Vec<(ChildKind, &str)> = rendered
        .objects
        .iter()
        .filter(|o| o.name.starts_with("shop-postgres") && o.kind != ChildKind::NetworkPolicy)
        .map(|o| (o.kind, o.name.as_str()))
        .collect();
    assert_eq!(
        data,
        [
            (ChildKind::CnpgCluster, "shop-postgres"),
            (ChildKind::CnpgDatabase, "shop-postgres-users"),
            (ChildKind::CnpgDatabase, "shop-postgres-products"),
            (ChildKind::CnpgDatabase, "shop-postgres-payments"),
            (ChildKind::CnpgDatabase, "shop-postgres-orders"),
            (ChildKind::CnpgScheduledBackup, "shop-postgres-backup"),
            (ChildKind::BarmanObjectStore, "shop-postgres-backups"),
        ],
        "no StatefulSet, Service, init script or backup CronJob of the built-in store"
    );
    assert!(
        rendered
            .objects
            .iter()
            .all(|o| o.kind != ChildKind::CronJob)
    );
}

#[test]
fn rabbitmq_on_the_cluster_operator_is_a_rabbitmq_cluster_with_the_stores_user() {
    let mut s = delegated();
    s.spec.deletion_policy = crate::api::DeletionPolicy::Delete;
    if let Some(m) = s.spec.rabbitmq.managed.as_mut() {
        m.image = Some("mirror.example/rabbitmq:4.1.5-management".to_owned());
    }
    let rendered = render(&s).unwrap();
    let mut labels = labels("4.1.5-management");
    labels["app.kubernetes.io/name"] = json!("rabbitmq");
    assert_eq!(
        body(&rendered, ChildKind::RabbitmqCluster, "shop-rabbitmq"),
        json!({
            "apiVersion": "rabbitmq.com/v1beta1",
            "kind": "RabbitmqCluster",
            // deletionPolicy Delete: owned, deleted (with its volumes) with the Store.
            "metadata": {"name": "shop-rabbitmq", "namespace": "shop", "labels": labels,
                         "ownerReferences": owner()},
            "spec": {
                "replicas": 3,
                "image": "mirror.example/rabbitmq:4.1.5-management",
                "persistence": {"storage": "5Gi"},
                "resources": resources(),
                "secretBackend": {"externalSecret": {"name": "shop-rabbitmq-default-user"}},
            },
        })
    );
    let stateful: Vec<&str> = rendered
        .objects
        .iter()
        .filter(|o| o.kind == ChildKind::StatefulSet)
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(stateful, ["shop-redis"], "Redis stays built-in");
}

#[test]
fn delegated_stores_get_credentials_in_their_operators_formats() {
    let rendered = render(&delegated()).unwrap();
    let secrets: Vec<(&str, &SecretKind)> = rendered
        .secrets
        .iter()
        .filter(|s| {
            s.component != "token-keys" && s.component != "session" && s.component != "admin"
        })
        .map(|s| (s.name.as_str(), &s.kind))
        .collect();
    let login = |db: &str| SecretKind::Login {
        username: db.to_owned(),
    };
    assert_eq!(
        secrets,
        [
            ("shop-postgres-users", &login("users")),
            ("shop-postgres-products", &login("products")),
            ("shop-postgres-payments", &login("payments")),
            ("shop-postgres-orders", &login("orders")),
            (
                "shop-redis",
                &SecretKind::Passwords(vec!["password".to_owned()])
            ),
            (
                "shop-rabbitmq-default-user",
                &SecretKind::RabbitmqDefaultUser {
                    username: "storekeeper".to_owned()
                }
            ),
        ]
    );
    assert!(rendered.secrets.iter().all(|s| !s.owned
        || s.component == "token-keys"
        || s.component == "session"
        || s.component == "admin"));
}

/// The env var `name` of the order-service's container, and the projected
/// file it names (Secret, key), if any.
fn order_service(rendered: &Rendered) -> &Object {
    rendered
        .objects
        .iter()
        .find(|o| o.kind == ChildKind::Deployment && o.name == "shop-order")
        .unwrap()
}

fn env(deployment: &Object, name: &str) -> Option<String> {
    deployment.value["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
}

fn projected(deployment: &Object) -> Vec<(String, String)> {
    deployment.value["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["projected"]["sources"].as_array())
        .flatten()
        .filter_map(|s| {
            let secret = &s["secret"];
            let name = secret["name"].as_str()?;
            Some(
                secret["items"]
                    .as_array()?
                    .iter()
                    .map(|i| {
                        (
                            name.to_owned(),
                            i["key"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect()
}

#[test]
fn services_reach_the_primary_and_read_their_roles_password() {
    let builtin = render(&store("shop")).unwrap();
    let rendered = render(&delegated()).unwrap();
    let (before, after) = (order_service(&builtin), order_service(&rendered));
    assert_eq!(
        env(before, "DATABASE_URL").as_deref(),
        Some("postgres://orders@shop-postgres:5432/orders")
    );
    assert_eq!(
        env(after, "DATABASE_URL").as_deref(),
        Some("postgres://orders@shop-postgres-rw:5432/orders")
    );
    assert_eq!(env(after, "AMQP_URL"), env(before, "AMQP_URL"));
    let files = projected(after);
    assert!(
        files.contains(&("shop-postgres-orders".to_owned(), "password".to_owned())),
        "{files:?}"
    );
    assert!(
        files.contains(&(
            "shop-rabbitmq-default-user".to_owned(),
            "password".to_owned()
        )),
        "{files:?}"
    );
    assert!(
        !files
            .iter()
            .any(|(s, _)| s == "shop-postgres" || s == "shop-rabbitmq"),
        "{files:?}"
    );
    let migration = rendered
        .objects
        .iter()
        .find(|o| o.kind == ChildKind::Job && o.name.starts_with("shop-orders-migrate"))
        .unwrap();
    assert_eq!(
        env(migration, "DATABASE_URL").as_deref(),
        Some("postgres://orders@shop-postgres-rw:5432/orders")
    );
}

#[test]
fn policies_let_the_services_reach_delegated_pods_and_leave_them_to_their_operator() {
    let rendered = render(&delegated()).unwrap();
    let policy = |name: &str| {
        rendered
            .objects
            .iter()
            .find(|o| o.kind == ChildKind::NetworkPolicy && o.name == name)
            .map(|o| o.value["spec"].clone())
    };
    assert_eq!(
        policy("shop-postgres"),
        None,
        "CloudNativePG's pods are its own"
    );
    assert_eq!(policy("shop-rabbitmq"), None);
    let order = policy("shop-order").unwrap();
    let peers: Vec<&Value> = order["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["to"].as_array().unwrap())
        .collect();
    assert!(
        peers.contains(
            &&json!({"podSelector": {"matchLabels": {"cnpg.io/cluster": "shop-postgres"}}})
        ),
        "{peers:?}"
    );
    assert!(
        peers.contains(
            &&json!({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "shop-rabbitmq"}}})
        ),
        "{peers:?}"
    );
    let migrations = policy("shop-migrations").unwrap();
    assert_eq!(
        migrations["egress"][0]["to"],
        json!([{"podSelector": {"matchLabels": {"cnpg.io/cluster": "shop-postgres"}}}])
    );
    // The default deny selects the Store's own pods (part-of storekeeper),
    // which the operators' pods never carry.
    assert_eq!(
        policy("shop-default-deny").unwrap()["podSelector"]["matchLabels"]["app.kubernetes.io/part-of"],
        "storekeeper"
    );
}

fn secret(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "shop"}})
}

fn observed(secrets: &[&str]) -> Observed {
    let mut o = Observed::default();
    for name in secrets {
        o.insert(ChildKind::Secret, secret(name));
    }
    o
}

const BOTH: Available = Available {
    cloudnative_pg: true,
    barman_cloud: true,
    rabbitmq_cluster_operator: true,
};

fn providers(s: &Store) -> (Provider, Provider) {
    let p = |m: &Option<crate::api::Managed>| m.as_ref().map_or(Provider::Auto, |m| m.provider);
    (p(&s.spec.postgres.managed), p(&s.spec.rabbitmq.managed))
}

#[test]
fn auto_delegates_a_new_store_where_the_operators_are_available() {
    let fresh = store("shop");
    let resolved = resolve(&fresh, BOTH, &Observed::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        providers(&resolved),
        (Provider::CloudNativePg, Provider::RabbitmqClusterOperator)
    );
    // Its delegated credentials exist from the first pass on: it stays delegated.
    let later = observed(&["shop-postgres-users", "shop-rabbitmq-default-user"]);
    assert_eq!(
        providers(&resolve(&fresh, BOTH, &later).unwrap().unwrap()),
        (Provider::CloudNativePg, Provider::RabbitmqClusterOperator)
    );
    // Without the operators it renders as it always did.
    assert_eq!(
        resolve(&fresh, Available::default(), &Observed::default()),
        Ok(None)
    );
}

#[test]
fn auto_never_moves_a_builtin_stores_data() {
    let s = store("shop");
    // A running built-in store, or credentials kept from a deleted Store.
    let running = observed(&["shop-postgres", "shop-rabbitmq"]);
    assert_eq!(resolve(&s, BOTH, &running), Ok(None));
    let mut sts = Observed::default();
    sts.insert(ChildKind::StatefulSet, secret("shop-postgres"));
    let resolved = resolve(&s, BOTH, &sts).unwrap().unwrap();
    assert_eq!(
        providers(&resolved),
        (Provider::Builtin, Provider::RabbitmqClusterOperator),
        "PostgreSQL stays built-in; the new RabbitMQ has no data yet"
    );
}

#[test]
fn a_provider_that_cannot_run_here_is_refused_with_the_field() {
    let explicit = delegated();
    let err = resolve(&explicit, Available::default(), &Observed::default()).unwrap_err();
    let fields: Vec<&str> = err.problems.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.postgres.managed.provider",
            "spec.postgres.managed.backup.objectStore",
            "spec.rabbitmq.managed.provider"
        ]
    );
    assert!(
        err.to_string().contains("--delegate cloudnative-pg"),
        "{err}"
    );
    // Auto whose data is on CloudNativePG, which went away: refused, not emptied.
    let gone = resolve(
        &store("shop"),
        Available::default(),
        &observed(&["shop-postgres-users"]),
    )
    .unwrap_err();
    assert!(
        gone.to_string().contains("this store's data is there"),
        "{gone}"
    );
    // Backups to object storage need the plugin.
    let no_plugin = Available {
        barman_cloud: false,
        ..BOTH
    };
    let err = resolve(&explicit, no_plugin, &Observed::default()).unwrap_err();
    assert_eq!(
        err.problems[0].0,
        "spec.postgres.managed.backup.objectStore"
    );
    // Auto that comes to Builtin cannot keep three instances.
    let mut three = store("shop");
    if let Some(m) = three.spec.postgres.managed.as_mut() {
        m.instances = Some(3);
    }
    let err = resolve(&three, Available::default(), &Observed::default()).unwrap_err();
    assert_eq!(err.problems[0].0, "spec.postgres.managed.instances");
    assert_eq!(
        resolve(&three, BOTH, &Observed::default()).map(|r| r.is_some()),
        Ok(true)
    );
}

#[test]
fn field_rules_follow_the_schema() {
    let mut s = store("shop");
    if let Some(m) = s.spec.postgres.managed.as_mut() {
        m.provider = Provider::RabbitmqClusterOperator;
        m.replicas = Some(3);
    }
    if let Some(m) = s.spec.redis.managed.as_mut() {
        m.provider = Provider::CloudNativePg;
    }
    if let Some(m) = s.spec.rabbitmq.managed.as_mut() {
        m.provider = Provider::Builtin;
        m.replicas = Some(3);
    }
    let problems: Vec<String> = rules(&s.spec)
        .into_iter()
        .map(|(f, m)| format!("{f}: {m}"))
        .collect();
    assert_eq!(
        problems,
        [
            "spec.postgres.managed.provider: RabbitmqClusterOperator cannot run this store",
            "spec.postgres.managed.replicas: is not a setting of this store",
            "spec.redis.managed.provider: CloudNativePg cannot run this store",
            "spec.rabbitmq.managed.replicas: more than one replica needs provider RabbitmqClusterOperator",
        ]
    );
    let mut no_store = delegated();
    if let Some(b) = no_store
        .spec
        .postgres
        .managed
        .as_mut()
        .and_then(|m| m.backup.as_mut())
    {
        b.object_store = None;
    }
    assert_eq!(
        rules(&no_store.spec),
        [(
            "spec.postgres.managed.backup.objectStore".to_owned(),
            "is required with provider CloudNativePG, which backs up to object storage".to_owned()
        )]
    );
    assert!(rules(&delegated().spec).is_empty());
}

#[test]
fn readiness_follows_each_operators_status() {
    let cluster = |phase: &str, ready: i64| json!({"spec": {"instances": 3}, "status": {"phase": phase, "readyInstances": ready}});
    assert_eq!(
        waiting_for(ChildKind::CnpgCluster, &cluster("Setting up primary", 0)).as_deref(),
        Some("0/3 PostgreSQL instances ready; CloudNativePG's phase: Setting up primary")
    );
    assert!(
        waiting_for(
            ChildKind::CnpgCluster,
            &cluster("Cluster in healthy state", 2)
        )
        .is_some()
    );
    assert_eq!(
        waiting_for(
            ChildKind::CnpgCluster,
            &cluster("Cluster in healthy state", 3)
        ),
        None
    );
    let database = json!({"metadata": {"generation": 2}, "spec": {"name": "orders"},
                          "status": {"applied": true, "observedGeneration": 1}});
    assert!(
        waiting_for(ChildKind::CnpgDatabase, &database).is_some(),
        "an older generation"
    );
    let mut applied = database.clone();
    applied["status"]["observedGeneration"] = json!(2);
    assert_eq!(waiting_for(ChildKind::CnpgDatabase, &applied), None);
    let rabbit = |all: &str, available: &str| {
        json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [
            {"type": "AllReplicasReady", "status": all},
            {"type": "ClusterAvailable", "status": available},
        ]}})
    };
    assert_eq!(
        waiting_for(ChildKind::RabbitmqCluster, &rabbit("False", "True")).as_deref(),
        Some("RabbitmqCluster not AllReplicasReady")
    );
    assert_eq!(
        waiting_for(ChildKind::RabbitmqCluster, &rabbit("True", "True")),
        None
    );
}
