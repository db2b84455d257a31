//! The shape all three managed data stores share: a one-replica StatefulSet
//! with a PersistentVolumeClaim, a headless Service and a ServiceAccount.
//! Each store's module fills in image, port, environment and probes.

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec,
    Probe, Service, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::meta::Ctx;
use super::{ChildKind, Object, Step, config, images, pod};
use crate::Result;
use crate::api::{DeletionPolicy, Managed};

/// Name of the persistent volume (claim template) of every data store.
pub const DATA_VOLUME: &str = "data";

/// What differs between PostgreSQL, Redis and RabbitMQ.
pub struct Parts {
    /// Component name (`postgres`, `redis`, `rabbitmq`).
    pub component: &'static str,
    /// Image: the Store's override or the pinned one (see [`image`]).
    pub image: String,
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

/// Tag part of a pinned image (also of `name:tag@sha256:...`), used as the
/// version label.
pub fn image_tag(image: &str) -> &str {
    images::tag(image).unwrap_or(image)
}

/// The image a managed store runs: the Store's `image` when set (a mirror,
/// a newer minor release), else the one this operator release pins.
pub fn image<'a>(managed: &'a Managed, pinned: &'static str) -> &'a str {
    managed.image.as_deref().unwrap_or(pinned)
}

/// What happens to a data store's volume: kept when the StatefulSet goes
/// (with the Store) unless the Store's `deletionPolicy` is `Delete`, and
/// always kept on a scale-down. Set explicitly, not left to the API
/// server's default, because the generated credentials follow the same
/// policy (`secrets::SecretSpec::owned`) and the two must agree.
pub fn claim_retention(policy: DeletionPolicy) -> StatefulSetPersistentVolumeClaimRetentionPolicy {
    let when_deleted = match policy {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    };
    StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted: Some(when_deleted.to_owned()),
        when_scaled: Some("Retain".to_owned()),
    }
}

/// StatefulSet, headless Service and ServiceAccount for one managed store.
pub fn render(ctx: &Ctx<'_>, managed: &Managed, parts: Parts) -> Result<Vec<Object>> {
    let name = ctx.name(parts.component);
    let version = image_tag(&parts.image);
    let mut mounts = vec![pod::mount(DATA_VOLUME, parts.data_path)];
    mounts.extend(parts.mounts);
    let container = Container {
        name: parts.component.to_owned(),
        image: Some(parts.image.clone()),
        args: (!parts.args.is_empty()).then_some(parts.args),
        env: Some(parts.env),
        ports: Some(vec![pod::named_container_port(parts.port)]),
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
            persistent_volume_claim_retention_policy: Some(claim_retention(
                ctx.spec.deletion_policy,
            )),
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
            ports: Some(vec![pod::named_service_port(parts.port)]),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::store;
    use crate::render::{components, render};

    /// A one-replica store gets no PodDisruptionBudget (docs/operator.md,
    /// "PodDisruptionBudgets"): `minAvailable: 1` would block every drain,
    /// `maxUnavailable: 1` would protect nothing.
    #[test]
    fn no_disruption_budget_selects_a_data_store() {
        let mut s = store("shop");
        if let Some(m) = s.spec.postgres.managed.as_mut() {
            m.backup = Some(crate::api::Backup::default());
        }
        let rendered = render(&s).unwrap();
        let budgets: Vec<&Object> = rendered
            .objects
            .iter()
            .filter(|o| o.kind == ChildKind::PodDisruptionBudget)
            .collect();
        assert!(!budgets.is_empty(), "the services have theirs");
        for pdb in budgets {
            let name = &pdb.value["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"];
            for component in [
                components::POSTGRES,
                components::REDIS,
                components::RABBITMQ,
            ] {
                assert_ne!(name, component, "{}", pdb.name);
            }
        }
    }

    #[test]
    fn an_image_override_replaces_the_pinned_image_and_its_version_label() {
        let mut s = store("shop");
        if let Some(m) = s.spec.redis.managed.as_mut() {
            m.image = Some("mirror.example/redis:8.2.2-bookworm".to_owned());
        }
        let rendered = render(&s).unwrap();
        let sts = rendered
            .objects
            .iter()
            .find(|o| o.kind == ChildKind::StatefulSet && o.name == "shop-redis")
            .unwrap();
        let spec = &sts.value["spec"]["template"];
        assert_eq!(
            spec["spec"]["containers"][0]["image"],
            "mirror.example/redis:8.2.2-bookworm"
        );
        assert_eq!(
            spec["metadata"]["labels"]["app.kubernetes.io/version"],
            "8.2.2-bookworm"
        );
        let pg = rendered
            .objects
            .iter()
            .find(|o| o.kind == ChildKind::StatefulSet && o.name == "shop-postgres")
            .unwrap();
        assert_eq!(
            pg.value["spec"]["template"]["spec"]["containers"][0]["image"],
            images::POSTGRES
        );
    }
}
