//! The five shop services: Deployment, Service and PodDisruptionBudget each,
//! and a HorizontalPodAutoscaler for an autoscaled one (their
//! ServiceAccounts come from `config`). The environment follows the
//! contract crate: a service gets exactly the connections and `*_URL`s
//! `ShopService` says it uses; credentials are only ever references to
//! Secrets, and as files (`secret_files`): keys, passwords and external
//! URLs never enter a container's environment.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, Container, EnvFromSource, EnvVar, Lifecycle, LifecycleHandler, PodSpec,
    PodTemplateSpec, Service, ServicePort, ServiceSpec, SleepAction, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use storekeeper_contract::admin::{
    HEALTHZ_PATH, HTTP_PORT_NAME, METRICS_PATH, METRICS_PORT_NAME, READYZ_PATH,
};
use storekeeper_contract::{ShopService, admin, env};

use super::meta::Ctx;
use super::secret_files::{self, SecretFile};
use super::{ChildKind, Object, Step, components, config, delegated, images, pod, secrets};
use crate::Result;
use crate::api::{DataStore, TokenScopeMode};

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
        if let Some(hpa) = autoscaler(ctx, service) {
            out.push(Object::new(
                ChildKind::HorizontalPodAutoscaler,
                step,
                &name,
                &hpa,
            )?);
        }
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
/// to the data stores it uses, its own settings, the files of its
/// credentials ([`secret_files`]), the resource attributes of its telemetry,
/// and the `*_URL` of each service it calls — all as the contract says.
pub fn env_vars(ctx: &Ctx<'_>, service: ShopService) -> Vec<EnvVar> {
    let mut e = vec![
        pod::env_value(env::PORT, service.port().to_string()),
        pod::env_value(env::ADMIN_PORT, admin::PORT.to_string()),
    ];
    if let Some(db) = service.database() {
        e.extend(database_env(ctx, db));
        // The rollout's migration Job applied them; replicas only check.
        e.push(pod::env_value(env::DATABASE_MIGRATE_ON_START, "false"));
    }
    if service.uses_redis() {
        e.extend(redis_connection(ctx).env());
    }
    if service.uses_broker() {
        e.extend(rabbitmq_connection(ctx).env());
    }
    e.extend(token_scope(ctx));
    e.extend(super::monitoring::telemetry::service_env(ctx));
    if service == ShopService::User {
        e.push(pod::env_value(env::ADMIN_EMAIL, admin_email(ctx)));
    }
    if service == ShopService::Storefront {
        e.push(pod::env_value(
            env::COOKIE_SECURE,
            ctx.spec.ingress.tls.is_some().to_string(),
        ));
    }
    e.extend(credential_files(ctx, service).iter().map(SecretFile::env));
    e.push(pod::env_value(
        env::OTEL_RESOURCE_ATTRIBUTES,
        format!(
            "k8s.namespace.name={},service.namespace={}",
            ctx.namespace, ctx.store
        ),
    ));
    for callee in service.calls() {
        if let Some(var) = callee.url_env() {
            e.push(pod::env_value(var, url(ctx, *callee)));
        }
    }
    e
}

/// The issuer and audience every service signs or checks
/// (`spec.tokenScope`), the same for all: `storekeeper:<namespace>/<store>`.
fn token_scope(ctx: &Ctx<'_>) -> Vec<EnvVar> {
    if ctx.spec.token_scope == TokenScopeMode::Off {
        return Vec::new();
    }
    let scope = format!("storekeeper:{}/{}", ctx.namespace, ctx.store);
    let mut e = vec![
        pod::env_value(env::TOKEN_ISSUER, scope.clone()),
        pod::env_value(env::TOKEN_AUDIENCE, scope),
    ];
    if ctx.spec.token_scope == TokenScopeMode::Require {
        e.push(pod::env_value(env::TOKEN_CLAIMS_REQUIRED, "true"));
    }
    e
}

/// The Secret keys `service` reads as files: the password of a managed
/// data store or the URL of an external one, the token keys, the admin
/// password, the session key — each only where the contract says the
/// service reads it.
pub fn credential_files(ctx: &Ctx<'_>, service: ShopService) -> Vec<SecretFile> {
    let mut files: Vec<SecretFile> = service
        .database()
        .map(|database| database_file(ctx, database))
        .into_iter()
        .collect();
    if service.uses_redis() {
        files.push(redis_connection(ctx).file());
    }
    if service.uses_broker() {
        files.push(rabbitmq_connection(ctx).file());
    }
    let keys = secrets::token_keys(&ctx.store);
    files.push(SecretFile::new(
        env::TOKEN_PUBLIC_KEY,
        &keys,
        secrets::PUBLIC_KEY,
    ));
    if service == ShopService::User {
        files.push(SecretFile::new(
            env::TOKEN_PRIVATE_KEY,
            &keys,
            secrets::PRIVATE_KEY,
        ));
        files.push(SecretFile::new(
            env::ADMIN_PASSWORD,
            &secrets::admin(&ctx.store),
            secrets::PASSWORD,
        ));
    }
    if service == ShopService::Storefront {
        files.push(SecretFile::new(
            env::SESSION_KEY,
            &secrets::session(&ctx.store),
            secrets::SESSION_KEY,
        ));
    }
    files
}

/// How a service reaches one data store. A managed store's URL carries no
/// password — a plain value — and its generated password is a file the kit
/// puts into the URL (`<STORE>_PASSWORD_FILE`); an external store's whole
/// URL is a file from the user's Secret (`<STORE>_URL_FILE`). So no
/// credential is ever in a service's environment.
struct Connection<'a> {
    store: &'a DataStore,
    url_var: &'static str,
    password_var: &'static str,
    /// The generated Secret and key of a managed store's password.
    password: (String, &'a str),
    /// The key of the URL in the user's Secret.
    external_key: &'a str,
    /// A managed store's URL, without its password.
    managed_url: String,
}

impl Connection<'_> {
    /// The URL as a plain value (a managed store only).
    fn env(&self) -> Option<EnvVar> {
        self.store
            .external
            .is_none()
            .then(|| pod::env_value(self.url_var, self.managed_url.clone()))
    }

    /// The credential file: a managed store's password, an external one's URL.
    fn file(&self) -> SecretFile {
        match &self.store.external {
            Some(external) => {
                SecretFile::new(self.url_var, &external.secret_name, self.external_key)
            }
            None => SecretFile::new(self.password_var, &self.password.0, self.password.1),
        }
    }
}

fn database_connection<'a>(ctx: &'a Ctx<'_>, database: &'a str) -> Connection<'a> {
    // CloudNativePG: each role's login Secret, and the primary's Service.
    let (password, host) = if delegated::postgres(ctx.spec) {
        (
            (
                delegated::cnpg::role_secret(&ctx.store, database),
                secrets::PASSWORD,
            ),
            delegated::cnpg::host(ctx),
        )
    } else {
        (
            (secrets::postgres(&ctx.store), database),
            ctx.name(components::POSTGRES),
        )
    };
    Connection {
        store: &ctx.spec.postgres,
        url_var: env::DATABASE_URL,
        password_var: env::DATABASE_PASSWORD,
        password,
        external_key: database,
        managed_url: format!(
            "postgres://{database}@{host}:{}/{database}",
            components::POSTGRES_PORT
        ),
    }
}

fn redis_connection<'a>(ctx: &'a Ctx<'_>) -> Connection<'a> {
    Connection {
        store: &ctx.spec.redis,
        url_var: env::REDIS_URL,
        password_var: env::REDIS_PASSWORD,
        password: (secrets::redis(&ctx.store), secrets::PASSWORD),
        external_key: secrets::EXTERNAL_URL,
        managed_url: format!(
            "redis://{}:{}",
            ctx.name(components::REDIS),
            components::REDIS_PORT
        ),
    }
}

fn rabbitmq_connection<'a>(ctx: &'a Ctx<'_>) -> Connection<'a> {
    Connection {
        store: &ctx.spec.rabbitmq,
        url_var: env::AMQP_URL,
        password_var: env::AMQP_PASSWORD,
        password: (
            if delegated::rabbitmq(ctx.spec) {
                delegated::rabbitmq_cluster::default_user_secret(&ctx.store)
            } else {
                secrets::rabbitmq(&ctx.store)
            },
            secrets::PASSWORD,
        ),
        external_key: secrets::EXTERNAL_URL,
        managed_url: format!(
            "amqp://{}@{}:{}/%2f",
            secrets::RABBITMQ_USER,
            ctx.name(components::RABBITMQ),
            components::RABBITMQ_PORT
        ),
    }
}

/// A managed database's `DATABASE_URL` without its password (nothing for
/// an external one), for the service and its migration Job alike.
pub fn database_env(ctx: &Ctx<'_>, database_name: &str) -> Vec<EnvVar> {
    database_connection(ctx, database_name)
        .env()
        .into_iter()
        .collect()
}

/// The database's credential file ([`Connection`]), for the service and
/// its migration Job alike.
pub fn database_file(ctx: &Ctx<'_>, database_name: &str) -> SecretFile {
    database_connection(ctx, database_name).file()
}

/// The admin e-mail: the spec's, or `admin@<host>`.
pub fn admin_email(ctx: &Ctx<'_>) -> String {
    ctx.spec
        .admin_email
        .clone()
        .unwrap_or_else(|| format!("admin@{}", ctx.spec.ingress.host))
}

/// How long a terminating service pod keeps serving before SIGTERM.
const PRE_STOP_SECONDS: i64 = 5;

fn container(ctx: &Ctx<'_>, service: ShopService, mounts: Vec<VolumeMount>) -> Container {
    let spec = ctx.spec.services.get(service);
    Container {
        name: service.name().to_owned(),
        image: Some(image(ctx, service)),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        ports: Some(vec![
            pod::named_container_port((i32::from(service.port()), HTTP_PORT_NAME)),
            pod::named_container_port((i32::from(admin::PORT), METRICS_PORT_NAME)),
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
        volume_mounts: Some(mounts),
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
    let (mounts, volumes) = secret_files::with_scratch(&credential_files(ctx, service));
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
            containers: vec![container(ctx, service, mounts)],
            volumes: Some(volumes),
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
            // An autoscaled Deployment's replica count is the autoscaler's:
            // left out of what the operator applies, it is neither owned
            // by the operator's field manager nor compared for drift.
            replicas: spec.autoscaling.is_none().then_some(spec.replicas),
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

/// The service's HorizontalPodAutoscaler (`autoscaling/v2`, CPU utilisation
/// of the pods' requests), or `None` when its replicas are fixed.
fn autoscaler(ctx: &Ctx<'_>, service: ShopService) -> Option<HorizontalPodAutoscaler> {
    let scaling = ctx.spec.services.get(service).autoscaling.as_ref()?;
    let component = service.name();
    Some(HorizontalPodAutoscaler {
        metadata: ctx.meta(ctx.name(component), component, ctx.service_version(service)),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some(ChildKind::Deployment.api_version()),
                kind: ChildKind::Deployment.kind().to_owned(),
                name: ctx.name(component),
            },
            min_replicas: Some(scaling.min_replicas),
            max_replicas: scaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(scaling.target_cpu_utilization_percentage),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        },
        ..HorizontalPodAutoscaler::default()
    })
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
