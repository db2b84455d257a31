//! The shape all three managed data stores share: a one-replica StatefulSet
//! with a PersistentVolumeClaim, a headless Service and a ServiceAccount.
//! Each store's module fills in image, port, environment and probes.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec,
    PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::Ctx;
use super::{ChildKind, Object, Step, config, images, pod};
use crate::Result;
use crate::api::Managed;

/// Name of the persistent volume (claim template) of every data store.
pub const DATA_VOLUME: &str = "data";

/// What differs between PostgreSQL, Redis and RabbitMQ.
pub struct Parts {
    /// Component name (`postgres`, `redis`, `rabbitmq`).
    pub component: &'static str,
    /// Pinned image.
    pub image: &'static str,
    /// The port clients use, and its name.
    pub port: (i32, &'static str),
    /// Container arguments (empty: the image's default command).
    pub args: Vec<String>,
    /// Container environment.
    pub env: Vec<EnvVar>,
    /// Where the persistent volume is mounted.
    pub data_path: &'static str,
    /// Extra volumes (scratch space, init scripts).
    pub volumes: Vec<Volume>,
    /// Mounts of the extra volumes.
    pub mounts: Vec<VolumeMount>,
    /// Readiness probe.
    pub readiness: Probe,
    /// Liveness probe.
    pub liveness: Probe,
}

/// Tag part of a pinned image, used as the version label.
pub fn image_tag(image: &str) -> &str {
    image.rsplit_once(':').map_or(image, |(_, tag)| tag)
}

/// StatefulSet, headless Service and ServiceAccount for one managed store.
pub fn render(ctx: &Ctx<'_>, managed: &Managed, parts: Parts) -> Result<Vec<Object>> {
    let name = ctx.name(parts.component);
    let version = image_tag(parts.image);
    let mut mounts = vec![pod::mount(DATA_VOLUME, parts.data_path)];
    mounts.extend(parts.mounts);
    let container = Container {
        name: parts.component.to_owned(),
        image: Some(parts.image.to_owned()),
        args: (!parts.args.is_empty()).then_some(parts.args),
        env: Some(parts.env),
        ports: Some(vec![ContainerPort {
            name: Some(parts.port.1.to_owned()),
            container_port: parts.port.0,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(parts.readiness),
        liveness_probe: Some(parts.liveness),
        resources: Some(pod::resources(&managed.resources)),
        security_context: Some(pod::container_security()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(ctx.labels(parts.component, version)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(name.clone()),
            automount_service_account_token: Some(false),
            security_context: Some(pod::pod_security(images::DATA_UID)),
            containers: vec![container],
            volumes: (!parts.volumes.is_empty()).then_some(parts.volumes),
            termination_grace_period_seconds: Some(60),
            ..PodSpec::default()
        }),
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_owned()),
            labels: Some(ctx.selector_labels(parts.component)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: managed.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_owned(), Quantity(managed.storage.clone()))].into()),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    let sts = StatefulSet {
        metadata: ctx.meta(name.clone(), parts.component, version),
        spec: StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name.clone()),
            selector: ctx.selector(parts.component),
            template,
            volume_claim_templates: Some(vec![claim]),
            revision_history_limit: Some(5),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    };
    let svc = Service {
        metadata: ctx.meta(name.clone(), parts.component, version),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(ctx.selector_labels(parts.component)),
            ports: Some(vec![ServicePort {
                name: Some(parts.port.1.to_owned()),
                port: parts.port.0,
                target_port: Some(IntOrString::String(parts.port.1.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let mut out = vec![config::service_account(ctx, parts.component, version)?];
    out.push(Object::new(ChildKind::Service, Step::Data, &name, &svc)?);
    out.push(Object::new(
        ChildKind::StatefulSet,
        Step::Data,
        &name,
        &sts,
    )?);
    Ok(out)
}
