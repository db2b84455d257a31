//! The managed PostgreSQL's scheduled logical backup: a CronJob that runs
//! `assets/postgres/backup.sh backup` (one `pg_dump --format=custom` per
//! shop database, the newest `retain` kept) from PostgreSQL's own image, so
//! the dump is always of the server's major, into the claim
//! `<store>-backups`. The restore runbook in docs/operator.md turns the
//! same template into a Job that runs the script's `restore`.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Volume,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use storekeeper_contract::ShopService;

use super::meta::Ctx;
use super::{
    ChildKind, Object, Step, components, datastore, images, netpol, pod, postgres, secrets,
};
use crate::Result;
use crate::api::{Backup, DeletionPolicy, Managed};

/// `app.kubernetes.io/name` of the backup's objects and pods.
pub const COMPONENT: &str = "backup";
/// The backup and restore script, as the CronJob mounts it.
pub const SCRIPT: &str = include_str!("../../assets/postgres/backup.sh");
/// Where the backups' volume is mounted in the pod.
pub const BACKUP_DIR: &str = "/backups";
/// Where the script is mounted.
const SCRIPT_DIR: &str = "/scripts";
/// The volume of the backups.
const VOLUME: &str = "backups";
/// A dump that fails is retried twice (PostgreSQL restarting, a node
/// drained); one that fails for real fails every time.
const BACKOFF_LIMIT: i32 = 2;

/// Name of the claim the backups are written to.
pub fn claim_name(ctx: &Ctx<'_>) -> String {
    ctx.name("backups")
}

/// The databases the backup dumps: one per shop service that has one.
pub fn databases() -> Vec<&'static str> {
    ShopService::ALL
        .iter()
        .filter_map(|s| s.database())
        .collect()
}

/// The backup's objects, or nothing when PostgreSQL is external or its
/// backup is off.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let Some(managed) = &ctx.spec.postgres.managed else {
        return Ok(Vec::new());
    };
    let Some(backup) = &managed.backup else {
        return Ok(Vec::new());
    };
    // CloudNativePG backs its Cluster up itself (`delegated::cnpg`).
    if super::delegated::postgres(ctx.spec) {
        return Ok(Vec::new());
    }
    let version = datastore::image_tag(postgres::image(managed));
    let name = ctx.name(COMPONENT);
    let script_name = ctx.name("backup-script");
    let script = ConfigMap {
        metadata: ctx.meta(script_name.clone(), COMPONENT, version),
        data: Some([("backup.sh".to_owned(), SCRIPT.to_owned())].into()),
        ..ConfigMap::default()
    };
    let claim = claim_name(ctx);
    let cron = CronJob {
        metadata: ctx.meta(name.clone(), COMPONENT, version),
        spec: cron_spec(ctx, managed, backup, &script_name),
        ..CronJob::default()
    };
    Ok(vec![
        super::config::service_account(ctx, COMPONENT, version)?,
        policy_out(ctx)?,
        policy_in(ctx)?,
        Object::new(ChildKind::ConfigMap, Step::Data, &script_name, &script)?,
        Object::new(
            ChildKind::PersistentVolumeClaim,
            Step::Data,
            &claim,
            &volume(ctx, backup, version),
        )?,
        Object::new(ChildKind::CronJob, Step::Data, &name, &cron)?,
    ])
}

/// The claim: kept when the Store goes unless its `deletionPolicy` is
/// `Delete`, like the database's own volume (no owner reference under
/// `Retain`, so neither the garbage collector nor a prune removes it).
fn volume(ctx: &Ctx<'_>, backup: &Backup, version: &str) -> PersistentVolumeClaim {
    let mut metadata = ctx.meta(claim_name(ctx), COMPONENT, version);
    if ctx.spec.deletion_policy == DeletionPolicy::Retain {
        metadata.owner_references = None;
    }
    PersistentVolumeClaim {
        metadata,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: backup.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_owned(), Quantity(backup.storage.clone()))].into()),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

fn cron_spec(ctx: &Ctx<'_>, managed: &Managed, backup: &Backup, script: &str) -> CronJobSpec {
    let image = postgres::image(managed);
    let env = vec![
        pod::env_value("PGHOST", ctx.name(components::POSTGRES)),
        pod::env_value("PGPORT", components::POSTGRES_PORT.to_string()),
        pod::env_value("PGUSER", secrets::POSTGRES_SUPERUSER),
        pod::env_secret(
            "PGPASSWORD",
            &secrets::postgres(&ctx.store),
            secrets::POSTGRES_SUPERUSER,
        ),
        pod::env_value("BACKUP_DIR", BACKUP_DIR),
        pod::env_value("BACKUP_DATABASES", databases().join(" ")),
        pod::env_value("BACKUP_RETAIN", backup.retain.to_string()),
    ];
    let container = Container {
        name: COMPONENT.to_owned(),
        image: Some(image.to_owned()),
        command: Some(vec![
            "/bin/sh".to_owned(),
            format!("{SCRIPT_DIR}/backup.sh"),
        ]),
        args: Some(vec!["backup".to_owned()]),
        env: Some(env),
        resources: Some(pod::resources(&managed.resources)),
        security_context: Some(pod::container_security()),
        volume_mounts: Some(vec![
            pod::mount(VOLUME, BACKUP_DIR),
            pod::mount("script", SCRIPT_DIR),
            pod::mount("tmp", "/tmp"),
        ]),
        ..Container::default()
    };
    let volumes = vec![
        Volume {
            name: VOLUME.to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(ctx),
                read_only: Some(false),
            }),
            ..Volume::default()
        },
        Volume {
            name: "script".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: script.to_owned(),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        pod::scratch("tmp"),
    ];
    let version = datastore::image_tag(image);
    CronJobSpec {
        schedule: backup.schedule.clone(),
        time_zone: Some("Etc/UTC".to_owned()),
        concurrency_policy: Some("Forbid".to_owned()),
        // Explicit, so a `suspend` set during a restore counts as drift and
        // is undone once the Store is unpaused.
        suspend: Some(false),
        starting_deadline_seconds: Some(3600),
        successful_jobs_history_limit: Some(3),
        failed_jobs_history_limit: Some(3),
        job_template: JobTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(ctx.labels(COMPONENT, version)),
                ..ObjectMeta::default()
            }),
            spec: Some(JobSpec {
                backoff_limit: Some(BACKOFF_LIMIT),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(ctx.labels(COMPONENT, version)),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        service_account_name: Some(ctx.name(COMPONENT)),
                        automount_service_account_token: Some(false),
                        security_context: Some(pod::pod_security(images::DATA_UID)),
                        restart_policy: Some("Never".to_owned()),
                        containers: vec![container],
                        volumes: Some(volumes),
                        ..PodSpec::default()
                    }),
                },
                ..JobSpec::default()
            }),
        },
    }
}

/// The backup pods may reach PostgreSQL's port and nothing else (DNS comes
/// from the Store-wide policy).
fn policy_out(ctx: &Ctx<'_>) -> Result<Object> {
    policy(
        ctx,
        COMPONENT,
        NetworkPolicySpec {
            pod_selector: Some(ctx.selector(COMPONENT)),
            policy_types: Some(vec!["Egress".to_owned()]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![peer(ctx, components::POSTGRES)]),
                ports: Some(vec![postgres_port()]),
            }]),
            ..NetworkPolicySpec::default()
        },
    )
}

/// PostgreSQL admits the backup pods, next to the services and migrations
/// its own policy (`netpol`) admits.
fn policy_in(ctx: &Ctx<'_>) -> Result<Object> {
    policy(
        ctx,
        "postgres-from-backup",
        NetworkPolicySpec {
            pod_selector: Some(ctx.selector(components::POSTGRES)),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![peer(ctx, COMPONENT)]),
                ports: Some(vec![postgres_port()]),
            }]),
            ..NetworkPolicySpec::default()
        },
    )
}

/// A policy named `<store>-<name>`, applied with the Store's other
/// policies in the Foundation step.
fn policy(ctx: &Ctx<'_>, name: &str, spec: NetworkPolicySpec) -> Result<Object> {
    let full = ctx.name(name);
    let np = NetworkPolicy {
        metadata: ctx.meta(full.clone(), netpol::COMPONENT, &ctx.spec.version),
        spec: Some(spec),
    };
    Object::new(ChildKind::NetworkPolicy, Step::Foundation, &full, &np)
}

fn peer(ctx: &Ctx<'_>, component: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(ctx.selector(component)),
        ..NetworkPolicyPeer::default()
    }
}

fn postgres_port() -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(components::POSTGRES_PORT)),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::fixtures::store;
    use crate::render::render;

    fn with_backup(policy: DeletionPolicy) -> crate::api::Store {
        let mut s = store("shop");
        s.spec.deletion_policy = policy;
        if let Some(m) = s.spec.postgres.managed.as_mut() {
            m.backup = Some(Backup {
                retain: 3,
                ..Backup::default()
            });
        }
        s
    }

    fn find<'a>(objects: &'a [Object], kind: ChildKind, name: &str) -> &'a Value {
        &objects
            .iter()
            .find(|o| o.kind == kind && o.name == name)
            .unwrap_or_else(|| panic!("{kind:?} {name}"))
            .value
    }

    #[test]
    fn off_unless_set_and_never_for_an_external_postgres() {
        let plain = render(&store("shop")).unwrap();
        assert!(
            plain
                .objects
                .iter()
                .all(|o| o.kind != ChildKind::CronJob && o.name != "shop-backups")
        );
        let mut external = with_backup(DeletionPolicy::Retain);
        external.spec.postgres.managed = None;
        external.spec.postgres.external = Some(crate::api::External {
            secret_name: "pg".to_owned(),
        });
        let ctx = Ctx::new(&external).unwrap();
        assert!(super::render(&ctx).unwrap().is_empty());
    }

    #[test]
    fn the_cronjob_dumps_with_the_servers_image_and_the_stores_credentials() {
        let objects = render(&with_backup(DeletionPolicy::Retain))
            .unwrap()
            .objects;
        let cron = find(&objects, ChildKind::CronJob, "shop-backup");
        assert_eq!(cron["spec"]["schedule"], json!("17 3 * * *"));
        assert_eq!(cron["spec"]["concurrencyPolicy"], json!("Forbid"));
        assert_eq!(cron["spec"]["timeZone"], json!("Etc/UTC"));
        let pod = &cron["spec"]["jobTemplate"]["spec"]["template"];
        assert_eq!(
            pod["metadata"]["labels"]["app.kubernetes.io/name"],
            json!("backup")
        );
        let spec = &pod["spec"];
        assert_eq!(spec["securityContext"]["runAsNonRoot"], json!(true));
        assert_eq!(spec["automountServiceAccountToken"], json!(false));
        let c = &spec["containers"][0];
        assert_eq!(
            c["image"],
            json!(images::POSTGRES),
            "pg_dump of the server's major"
        );
        assert_eq!(c["command"], json!(["/bin/sh", "/scripts/backup.sh"]));
        assert_eq!(
            c["args"],
            json!(["backup"]),
            "the runbook swaps these for restore"
        );
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], json!(true));
        let env: Vec<(String, Value)> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
            .collect();
        let get = |n: &str| &env.iter().find(|(k, _)| k == n).unwrap().1;
        assert_eq!(get("PGHOST")["value"], json!("shop-postgres"));
        assert_eq!(
            get("BACKUP_DATABASES")["value"],
            json!("users products payments orders")
        );
        assert_eq!(get("BACKUP_RETAIN")["value"], json!("3"));
        assert_eq!(
            get("PGPASSWORD")["valueFrom"]["secretKeyRef"],
            json!({"name": "shop-postgres", "key": "postgres", "optional": false})
        );
        let claims: Vec<&Value> = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.get("persistentVolumeClaim"))
            .collect();
        assert_eq!(
            claims,
            [&json!({"claimName": "shop-backups", "readOnly": false})]
        );
        let script = find(&objects, ChildKind::ConfigMap, "shop-backup-script");
        assert_eq!(script["data"]["backup.sh"], json!(SCRIPT));
    }

    #[test]
    fn the_backups_volume_follows_the_deletion_policy() {
        let owners = |policy| {
            let objects = render(&with_backup(policy)).unwrap().objects;
            let claim = find(&objects, ChildKind::PersistentVolumeClaim, "shop-backups");
            assert_eq!(
                claim["spec"]["resources"]["requests"]["storage"],
                json!("5Gi")
            );
            claim["metadata"].get("ownerReferences").cloned()
        };
        assert_eq!(owners(DeletionPolicy::Retain), None);
        assert!(owners(DeletionPolicy::Delete).is_some());
    }

    #[test]
    fn the_backup_reaches_postgres_only() {
        let objects = render(&with_backup(DeletionPolicy::Retain))
            .unwrap()
            .objects;
        let out = find(&objects, ChildKind::NetworkPolicy, "shop-backup");
        assert_eq!(out["spec"]["policyTypes"], json!(["Egress"]));
        let egress = out["spec"]["egress"].as_array().unwrap();
        assert_eq!(egress.len(), 1);
        assert_eq!(
            egress[0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
            json!("postgres")
        );
        assert_eq!(
            egress[0]["ports"],
            json!([{"port": 5432, "protocol": "TCP"}])
        );
        let into = find(
            &objects,
            ChildKind::NetworkPolicy,
            "shop-postgres-from-backup",
        );
        assert_eq!(
            into["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
            json!("backup")
        );
    }
}
