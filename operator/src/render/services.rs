//! The five shop services: Deployment, Service and PodDisruptionBudget each
//! (their ServiceAccounts come from `config`). The environment follows the
//! contract crate: a service gets exactly the connections and `*_URL`s
//! `ShopService` says it uses; credentials are only ever references to
//! Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar, Lifecycle,
    LifecycleHandler, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec, SleepAction,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use storekeeper_contract::admin::{
    HEALTHZ_PATH, HTTP_PORT_NAME, METRICS_PATH, METRICS_PORT_NAME, READYZ_PATH,
};
use storekeeper_contract::{ShopService, admin, env};

use super::meta::Ctx;
use super::{ChildKind, Object, Step, config, images, pod, postgres, rabbitmq, redis, secrets};
use crate::Result;
use crate::api::DataStore;

/// Pod-template annotation carrying the shared ConfigMap's hash, so a
/// config change rolls the pods.
const CONFIG_HASH: &str = "storekeeper.dev/config-hash";
/// Prometheus' annotation-based discovery convention: scrape this pod...
const PROMETHEUS_SCRAPE: &str = "prometheus.io/scrape";
/// ...on this port...
const PROMETHEUS_PORT: &str = "prometheus.io/port";
/// ...at this path.
const PROMETHEUS_PATH: &str = "prometheus.io/path";

/// Deployment, Service and PDB for every service.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let mut out = Vec::new();
    for service in ShopService::ALL {
        let step = if service == ShopService::Storefront {
            Step::Storefront
        } else {
            Step::Backend
        };
        let name = ctx.name(service.name());
        out.push(Object::new(
            ChildKind::Service,
            step,
            &name,
            &k8s_service(ctx, service),
        )?);
        out.push(Object::new(
            ChildKind::Deployment,
            step,
            &name,
            &deployment(ctx, service),
        )?);
        out.push(Object::new(
            ChildKind::PodDisruptionBudget,
            step,
            &name,
            &pdb(ctx, service),
        )?);
    }
    Ok(out)
}

/// Cluster-internal URL of a service, as its callers see it.
pub fn url(ctx: &Ctx<'_>, service: ShopService) -> String {
    format!("http://{}:{}", ctx.name(service.name()), service.port())
}

/// Full image reference of a service.
pub fn image(ctx: &Ctx<'_>, service: ShopService) -> String {
    let repo = ctx
        .spec
        .services
        .get(service)
        .image
        .clone()
        .unwrap_or_else(|| format!("{}/{}", ctx.spec.image_registry, service.package()));
    format!("{repo}:{}", ctx.service_version(service))
}

/// The service's environment, in a fixed order: the ports, the connections
/// to the data stores it uses, the token key, its own settings, and the
/// `*_URL` of each service it calls — all as the contract says.
pub fn env_vars(ctx: &Ctx<'_>, service: ShopService) -> Vec<EnvVar> {
    let mut e = vec![
        pod::env_value(env::PORT, service.port().to_string()),
        pod::env_value(env::ADMIN_PORT, admin::PORT.to_string()),
    ];
    if let Some(db) = service.database() {
        e.extend(connection(
            &ctx.spec.postgres,
            env::DATABASE_URL,
            ("DATABASE_PASSWORD", &secrets::postgres(&ctx.store), db),
            db,
            &format!(
                "postgres://{db}:$(DATABASE_PASSWORD)@{}:{}/{db}",
                ctx.name(postgres::COMPONENT),
                postgres::PORT
            ),
        ));
    }
    if service.uses_redis() {
        e.extend(connection(
            &ctx.spec.redis,
            env::REDIS_URL,
            (
                "REDIS_PASSWORD",
                &secrets::redis(&ctx.store),
                secrets::PASSWORD,
            ),
            secrets::EXTERNAL_URL,
            &format!(
                "redis://:$(REDIS_PASSWORD)@{}:{}",
                ctx.name(redis::COMPONENT),
                redis::PORT
            ),
        ));
    }
    if service.uses_broker() {
        e.extend(connection(
            &ctx.spec.rabbitmq,
            env::AMQP_URL,
            (
                "AMQP_PASSWORD",
                &secrets::rabbitmq(&ctx.store),
                secrets::PASSWORD,
            ),
            secrets::EXTERNAL_URL,
            &format!(
                "amqp://{}:$(AMQP_PASSWORD)@{}:{}/%2f",
                secrets::RABBITMQ_USER,
                ctx.name(rabbitmq::COMPONENT),
                rabbitmq::PORT
            ),
        ));
    }
    let keys = secrets::token_keys(&ctx.store);
    e.push(pod::env_secret(
        env::TOKEN_PUBLIC_KEY,
        &keys,
        secrets::PUBLIC_KEY,
    ));
    if service == ShopService::User {
        e.push(pod::env_secret(
            env::TOKEN_PRIVATE_KEY,
            &keys,
            secrets::PRIVATE_KEY,
        ));
        e.push(pod::env_value(env::ADMIN_EMAIL, admin_email(ctx)));
        e.push(pod::env_secret(
            env::ADMIN_PASSWORD,
            &secrets::admin(&ctx.store),
            secrets::PASSWORD,
        ));
    }
    if service == ShopService::Storefront {
        e.push(pod::env_secret(
            env::SESSION_KEY,
            &secrets::session(&ctx.store),
            secrets::SESSION_KEY,
        ));
        e.push(pod::env_value(
            env::COOKIE_SECURE,
            ctx.spec.ingress.tls.is_some().to_string(),
        ));
    }
    for callee in service.calls() {
        if let Some(var) = callee.url_env() {
            e.push(pod::env_value(var, url(ctx, *callee)));
        }
    }
    e
}

/// The admin e-mail: the spec's, or `admin@<host>`.
pub fn admin_email(ctx: &Ctx<'_>) -> String {
    ctx.spec
        .admin_email
        .clone()
        .unwrap_or_else(|| format!("admin@{}", ctx.spec.ingress.host))
}

/// Env entries for one connection URL: a managed store composes it from a
/// generated password (expanded by the kubelet); an external one reads the
/// whole URL from the user's Secret.
fn connection(
    store: &DataStore,
    var: &str,
    (password_var, secret, key): (&str, &str, &str),
    external_key: &str,
    managed_url: &str,
) -> Vec<EnvVar> {
    match &store.external {
        Some(external) => vec![pod::env_secret(var, &external.secret_name, external_key)],
        None => vec![
            pod::env_secret(password_var, secret, key),
            pod::env_value(var, managed_url),
        ],
    }
}

/// How long a terminating service pod keeps serving before SIGTERM.
const PRE_STOP_SECONDS: i64 = 5;

fn container(ctx: &Ctx<'_>, service: ShopService) -> Container {
    let spec = ctx.spec.services.get(service);
    Container {
        name: service.name().to_owned(),
        image: Some(image(ctx, service)),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        ports: Some(vec![
            ContainerPort {
                name: Some(HTTP_PORT_NAME.to_owned()),
                container_port: i32::from(service.port()),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some(METRICS_PORT_NAME.to_owned()),
                container_port: i32::from(admin::PORT),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        env: Some(env_vars(ctx, service)),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: config::name(ctx),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        startup_probe: Some(pod::http_probe(HEALTHZ_PATH, METRICS_PORT_NAME, 2, 30)),
        liveness_probe: Some(pod::http_probe(HEALTHZ_PATH, METRICS_PORT_NAME, 10, 3)),
        readiness_probe: Some(pod::http_probe(READYZ_PATH, METRICS_PORT_NAME, 5, 3)),
        // Endpoints and the ingress controller learn of a terminating pod a
        // moment after the kubelet does: keep serving meanwhile, so a
        // rolling update (or a rollback) drops no request. The kubelet's own
        // sleep action, since the images have no shell.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SECONDS,
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: Some(pod::resources(&spec.resources)),
        security_context: Some(pod::container_security()),
        volume_mounts: Some(vec![pod::mount("tmp", "/tmp")]),
        ..Container::default()
    }
}

fn deployment(ctx: &Ctx<'_>, service: ShopService) -> Deployment {
    let version = ctx.service_version(service);
    let component = service.name();
    let spec = ctx.spec.services.get(service);
    let surge = &ctx.spec.rollout.max_surge;
    let max_surge = match surge.parse::<i32>() {
        Ok(n) => IntOrString::Int(n),
        Err(_) => IntOrString::String(surge.clone()),
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(ctx.labels(component, version)),
            annotations: Some(BTreeMap::from([
                (CONFIG_HASH.to_owned(), config::data_hash()),
                (PROMETHEUS_SCRAPE.to_owned(), "true".to_owned()),
                (PROMETHEUS_PORT.to_owned(), admin::PORT.to_string()),
                (PROMETHEUS_PATH.to_owned(), METRICS_PATH.to_owned()),
            ])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(ctx.name(component)),
            automount_service_account_token: Some(false),
            security_context: Some(pod::pod_security(images::SERVICE_UID)),
            containers: vec![container(ctx, service)],
            volumes: Some(vec![pod::scratch("tmp")]),
            topology_spread_constraints: Some(pod::spread(ctx, component)),
            // The pre-stop pause, then the kit's own drain
            // (`SHUTDOWN_TIMEOUT_SECS`, 25 s), with room to spare.
            termination_grace_period_seconds: Some(PRE_STOP_SECONDS + 30),
            ..PodSpec::default()
        }),
    };
    Deployment {
        metadata: ctx.meta(ctx.name(component), component, version),
        spec: DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: ctx.selector(component),
            template,
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(max_surge),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            progress_deadline_seconds: Some(ctx.spec.rollout.health_timeout_seconds),
            revision_history_limit: Some(5),
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

fn k8s_service(ctx: &Ctx<'_>, service: ShopService) -> Service {
    let component = service.name();
    let port = |name: &str, port: i32| ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    };
    Service {
        metadata: ctx.meta(ctx.name(component), component, ctx.service_version(service)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(ctx.selector_labels(component)),
            ports: Some(vec![
                port(HTTP_PORT_NAME, i32::from(service.port())),
                port(METRICS_PORT_NAME, i32::from(admin::PORT)),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn pdb(ctx: &Ctx<'_>, service: ShopService) -> PodDisruptionBudget {
    let component = service.name();
    PodDisruptionBudget {
        metadata: ctx.meta(ctx.name(component), component, ctx.service_version(service)),
        spec: Some(PodDisruptionBudgetSpec {
            // One pod at a time: a drain never empties a service, yet a
            // single-replica service does not block the drain forever.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(ctx.selector(component)),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
