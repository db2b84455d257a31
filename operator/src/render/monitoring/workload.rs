//! What the three monitoring workloads share: one pod (restricted Pod
//! Security, its config's hash on the template so a config change restarts
//! it), a ClusterIP Service, a ConfigMap, and for Prometheus and Loki a
//! one-replica StatefulSet with a volume.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, KeyToPath, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, Probe, Service, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::datastore::{DATA_VOLUME, claim_retention, image_tag};
use super::super::meta::Ctx;
use super::super::object::short_hash;
use super::super::{ChildKind, Object, Step, pod};
use crate::Result;
use crate::api::{ResourceAmounts, Resources};

/// Pod-template annotation with the hash of the workload's ConfigMap: none
/// of the three reloads its configuration by itself.
pub const CONFIG_HASH: &str = "storekeeper.dev/config-hash";

/// What differs between Prometheus, Loki and Grafana.
pub struct Parts {
    /// Component name, also the container's.
    pub component: &'static str,
    /// Pinned image.
    pub image: &'static str,
    /// The user the image runs as.
    pub uid: i64,
    /// Container arguments.
    pub args: Vec<String>,
    /// Container environment.
    pub env: Vec<EnvVar>,
    /// The HTTP port and its name.
    pub port: (i32, &'static str),
    /// Readiness probe.
    pub readiness: Probe,
    /// Liveness probe.
    pub liveness: Probe,
    /// Requests and limits.
    pub resources: Resources,
    /// Volumes besides the data volume.
    pub volumes: Vec<Volume>,
    /// Their mounts (and the data volume's, for a StatefulSet).
    pub mounts: Vec<VolumeMount>,
    /// The configuration the pod reads at start, hashed onto the template.
    pub config: BTreeMap<String, String>,
    /// Whether the pod gets an API token (Prometheus' service discovery).
    pub api_access: bool,
}

/// Requests and limits from four quantities.
pub fn resources(requests: (&str, &str), limits: (&str, &str)) -> Resources {
    let amounts = |(cpu, memory): (&str, &str)| ResourceAmounts {
        cpu: cpu.to_owned(),
        memory: memory.to_owned(),
    };
    Resources {
        requests: amounts(requests),
        limits: amounts(limits),
    }
}

/// A volume of ConfigMap `config_map`, all keys or only `items` (key, path).
pub fn config_volume(name: &str, config_map: &str, items: &[(&str, &str)]) -> Volume {
    let items: Vec<KeyToPath> = items
        .iter()
        .map(|(key, path)| KeyToPath {
            key: (*key).to_owned(),
            path: (*path).to_owned(),
            ..KeyToPath::default()
        })
        .collect();
    Volume {
        name: name.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map.to_owned(),
            items: (!items.is_empty()).then_some(items),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The component's ConfigMap, `<store>-<component>`.
pub fn config_map(
    ctx: &Ctx<'_>,
    component: &str,
    image: &str,
    data: BTreeMap<String, String>,
) -> Result<Object> {
    let name = ctx.name(component);
    let cm = ConfigMap {
        metadata: ctx.meta(name.clone(), component, image_tag(image)),
        data: Some(data),
        ..ConfigMap::default()
    };
    Object::new(ChildKind::ConfigMap, Step::Foundation, &name, &cm)
}

/// The component's Service, `<store>-<component>`, on its HTTP port.
pub fn service(ctx: &Ctx<'_>, parts: &Parts) -> Result<Object> {
    let name = ctx.name(parts.component);
    let svc = Service {
        metadata: ctx.meta(name.clone(), parts.component, image_tag(parts.image)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(ctx.selector_labels(parts.component)),
            ports: Some(vec![pod::named_service_port(parts.port)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    Object::new(ChildKind::Service, Step::Foundation, &name, &svc)
}

/// The pod: one container, read-only root, non-root, no capabilities.
pub fn template(ctx: &Ctx<'_>, parts: Parts) -> PodTemplateSpec {
    let container = Container {
        name: parts.component.to_owned(),
        image: Some(parts.image.to_owned()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: (!parts.args.is_empty()).then_some(parts.args),
        env: (!parts.env.is_empty()).then_some(parts.env),
        ports: Some(vec![pod::named_container_port(parts.port)]),
        readiness_probe: Some(parts.readiness),
        liveness_probe: Some(parts.liveness),
        resources: Some(pod::resources(&parts.resources)),
        security_context: Some(pod::container_security()),
        volume_mounts: Some(parts.mounts),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(ctx.labels(parts.component, image_tag(parts.image))),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH.to_owned(),
                short_hash(&parts.config),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(ctx.name(parts.component)),
            automount_service_account_token: Some(parts.api_access),
            security_context: Some(pod::pod_security(parts.uid)),
            containers: vec![container],
            volumes: (!parts.volumes.is_empty()).then_some(parts.volumes),
            ..PodSpec::default()
        }),
    }
}

/// A one-replica StatefulSet whose pod keeps its data on a volume of
/// `storage` (mounted as `data`, see `DATA_VOLUME`), kept or deleted with
/// the Store as `deletionPolicy` says, like the data stores' volumes.
pub fn stateful_set(ctx: &Ctx<'_>, parts: Parts, storage: &str) -> Result<Object> {
    let component = parts.component;
    let version = image_tag(parts.image);
    let name = ctx.name(component);
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_owned()),
            labels: Some(ctx.selector_labels(component)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: ctx.spec.observability.managed.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some([("storage".to_owned(), Quantity(storage.to_owned()))].into()),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    let sts = StatefulSet {
        metadata: ctx.meta(name.clone(), component, version),
        spec: StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name.clone()),
            selector: ctx.selector(component),
            template: template(ctx, parts),
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: Some(claim_retention(
                ctx.spec.deletion_policy,
            )),
            revision_history_limit: Some(5),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    };
    Object::new(ChildKind::StatefulSet, Step::Foundation, &name, &sts)
}
