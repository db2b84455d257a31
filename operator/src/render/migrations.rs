//! One migration Job per service with a database and per schema it
//! brings: `<service> migrate` run once, before the service's new pods
//! roll (the rollout's `Migrations` step), instead of every replica racing
//! to migrate at start. The Job's name ends in a hash of its template, so
//! a release with the same image and settings reuses the Job that already
//! ran, and a new one gets a Job of its own — Jobs' templates are
//! immutable, so a changed Job could not be applied in place anyway.
//!
//! A rollback never reverts a schema: the stable revision's Job already
//! ran (or is re-run, which applies nothing new) and its older binary
//! accepts the newer migrations (expand, then contract).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use storekeeper_contract::{ShopService, env, labels};

use super::meta::Ctx;
use super::object::short_hash;
use super::secret_files::{self, SecretFile};
use super::{ChildKind, Object, Step, images, pod, services};
use crate::Result;

/// `app.kubernetes.io/component` of every migration pod (what the
/// NetworkPolicies select).
pub const COMPONENT: &str = "migrations";
/// The service binary's command that applies its migrations and exits.
const COMMAND: &str = "migrate";
/// Pod failures before the Job fails (connection hiccups while PostgreSQL
/// settles); a migration that fails for real fails every time.
const BACKOFF_LIMIT: i32 = 2;
/// Hex digits of the template hash in the Job's name: with the longest
/// Store name (40) and database name (8), the name stays within 63
/// characters, as the `job-name` label on its pods requires.
const HASH_LEN: usize = 5;

/// The migration Jobs, one per service that has a database.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    ShopService::ALL
        .into_iter()
        .filter_map(|service| service.database().map(|db| (service, db)))
        .map(|(service, db)| {
            let spec = job_spec(ctx, service, db);
            let name = format!(
                "{}-migrate-{}",
                ctx.name(db),
                &short_hash(&spec)[..HASH_LEN]
            );
            let job = Job {
                metadata: ctx.meta(name.clone(), &component(db), ctx.service_version(service)),
                spec: Some(spec),
                ..Job::default()
            };
            Object::new(ChildKind::Job, Step::Migrations, &name, &job)
        })
        .collect()
}

/// `app.kubernetes.io/name` of a database's migration Job and pods, as
/// people see it in rollout messages (`order-migrations: ...`).
pub fn component(database: &str) -> String {
    format!("{database}-{COMPONENT}")
}

/// Labels that select every migration pod of the Store.
pub fn selector(ctx: &Ctx<'_>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([
            (labels::INSTANCE.to_owned(), ctx.store.clone()),
            (labels::COMPONENT.to_owned(), COMPONENT.to_owned()),
        ])),
        ..LabelSelector::default()
    }
}

fn job_spec(ctx: &Ctx<'_>, service: ShopService, database: &str) -> JobSpec {
    let mut pod_labels = ctx.labels(&component(database), ctx.service_version(service));
    pod_labels.insert(labels::COMPONENT.to_owned(), COMPONENT.to_owned());
    let files = [services::database_file(ctx, database)];
    let mut env = services::database_env(ctx, database);
    env.extend(files.iter().map(SecretFile::env));
    env.push(pod::env_value(env::LOG_FORMAT, env::LOG_FORMAT_JSON));
    let (mounts, volumes) = secret_files::with_scratch(&files);
    let spec = ctx.spec.services.get(service);
    JobSpec {
        backoff_limit: Some(BACKOFF_LIMIT),
        // Past the rollout's own deadline nobody waits for it any more.
        active_deadline_seconds: Some(i64::from(ctx.spec.rollout.health_timeout_seconds)),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(pod_labels),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                restart_policy: Some("Never".to_owned()),
                service_account_name: Some(ctx.name(service.name())),
                automount_service_account_token: Some(false),
                security_context: Some(pod::pod_security(images::SERVICE_UID)),
                containers: vec![Container {
                    name: COMPONENT.to_owned(),
                    image: Some(services::image(ctx, service)),
                    image_pull_policy: Some("IfNotPresent".to_owned()),
                    args: Some(vec![COMMAND.to_owned()]),
                    env: Some(env),
                    resources: Some(pod::resources(&spec.resources)),
                    security_context: Some(pod::container_security()),
                    volume_mounts: Some(mounts),
                    ..Container::default()
                }],
                volumes: Some(volumes),
                ..PodSpec::default()
            }),
        },
        ..JobSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::store;
    use crate::render::render as render_store;
    use serde_json::Value;

    fn jobs(store: &crate::api::Store) -> Vec<Object> {
        render_store(store)
            .unwrap()
            .objects
            .into_iter()
            .filter(|o| o.kind == ChildKind::Job)
            .collect()
    }

    #[test]
    fn one_job_per_database_running_the_services_image_with_migrate() {
        let jobs = jobs(&store("shop"));
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        for (job, service) in jobs.iter().zip(["user", "product", "payment", "order"]) {
            assert!(
                job.name.starts_with(&format!("shop-{service}s-migrate-")),
                "{}",
                job.name
            );
            let c = job
                .value
                .pointer("/spec/template/spec/containers/0")
                .unwrap();
            assert_eq!(c["args"], serde_json::json!(["migrate"]));
            assert!(
                c["image"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{service}-service:"))
            );
            let env: Vec<&str> = c["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap())
                .collect();
            assert!(env.contains(&"DATABASE_URL"), "{env:?}");
            assert!(
                !env.contains(&"AMQP_URL") && !env.contains(&"TOKEN_PUBLIC_KEY"),
                "{env:?}"
            );
            assert_eq!(
                job.value.pointer("/spec/template/spec/restartPolicy"),
                Some(&Value::from("Never"))
            );
        }
    }

    #[test]
    fn the_credential_is_a_read_only_file() {
        let mut external = store("shop");
        external.spec.postgres = crate::api::DataStore {
            managed: None,
            external: Some(crate::api::External {
                secret_name: "ext-pg".into(),
            }),
        };
        let job = &jobs(&external)[0];
        let pod = job.value.pointer("/spec/template/spec").unwrap();
        let env = &pod["containers"][0]["env"];
        assert_eq!(
            env[0],
            serde_json::json!({
                "name": "DATABASE_URL_FILE",
                "value": "/var/run/secrets/storekeeper/database_url",
            })
        );
        assert!(
            !env.to_string().contains("secretKeyRef"),
            "no credential in the environment: {env}"
        );
        assert_eq!(
            pod["volumes"][1]["projected"]["sources"][0]["secret"],
            serde_json::json!({
                "name": "ext-pg",
                "optional": false,
                "items": [{"key": "users", "path": "database_url"}],
            })
        );
        assert_eq!(
            pod["containers"][0]["volumeMounts"][1]["readOnly"],
            Value::Bool(true)
        );
        let managed = &jobs(&store("shop"))[0];
        let pod = managed.value.pointer("/spec/template/spec").unwrap();
        assert_eq!(
            pod["containers"][0]["env"][0],
            serde_json::json!({
                "name": "DATABASE_URL",
                "value": "postgres://users@shop-postgres:5432/users",
            }),
            "a managed database's URL has no password"
        );
        assert_eq!(
            pod["volumes"][1]["projected"]["sources"][0]["secret"]["items"],
            serde_json::json!([{"key": "users", "path": "database_password"}])
        );
    }

    #[test]
    fn the_name_changes_with_the_image_only() {
        let before = jobs(&store("shop"));
        let mut replicas = store("shop");
        replicas.spec.services.order.replicas = 5;
        assert_eq!(jobs(&replicas), before, "scaling runs no migration");
        let mut upgraded = store("shop");
        upgraded.spec.services.order.version = Some("9.9.9".into());
        let after = jobs(&upgraded);
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(
                a.name == b.name,
                !a.name.contains("-orders-"),
                "{} / {}",
                b.name,
                a.name
            );
        }
    }

    #[test]
    fn the_longest_names_fit_a_label() {
        let longest = "s".repeat(crate::validate::MAX_NAME_LEN);
        for job in jobs(&store(&longest)) {
            assert!(
                job.name.len() <= 63,
                "{} is {} long",
                job.name,
                job.name.len()
            );
        }
    }
}
