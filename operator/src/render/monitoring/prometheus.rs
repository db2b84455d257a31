//! The Store's Prometheus, `<store>-prometheus`: it finds the five services'
//! pods through Kubernetes service discovery, limited to the Store's
//! namespace and labels, scrapes their `metrics` port and relabels each
//! target to the `namespace`, `store`, `service`, `pod` labels a PodMonitor
//! gives them, so `rules.yaml` — the PrometheusRule's rule file — is loaded
//! unchanged. A namespaced Role lets it list and watch that namespace's
//! pods, and nothing else. Where the operator knows its own metrics Service
//! (the chart tells it), a second job scrapes the operator's series of this
//! Store, so the Stalled and RolledBack alerts work here too.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use serde_json::{Value, json};
use storekeeper_contract::admin::{METRICS_PATH, METRICS_PORT_NAME};
use storekeeper_contract::{ShopService, labels};

use super::super::datastore::{DATA_VOLUME, image_tag};
use super::super::meta::Ctx;
use super::super::observability::{
    SCRAPE_INTERVAL, SERVICE_LABEL, STORE_LABEL, meta_label, rules_file,
};
use super::super::{ChildKind, Object, OperatorMetrics, Step, config, images, pod};
use super::config_file::yaml;
use super::workload::{self, Parts};
use crate::Result;
use crate::admin::{NAMESPACE_PARAM, STORE_PARAM};

/// Component name.
pub const COMPONENT: &str = "prometheus";
/// Prometheus' HTTP port (API, UI, probes).
pub const PORT: i32 = 9090;
const PORT_NAME: &str = "http";
/// The scrape job's name (`job` label), as the local Prometheus calls it.
pub const JOB: &str = "storekeeper";
/// The job that scrapes the operator's series of this Store.
pub const OPERATOR_JOB: &str = "storekeeper-operator";
/// The configuration file's key in the ConfigMap.
pub const CONFIG_FILE: &str = "prometheus.yml";
/// The rule file's key, named relative to the configuration file (Prometheus
/// resolves `rule_files` against the configuration's directory).
pub const RULES_FILE: &str = "rules.yaml";
const CONFIG_DIR: &str = "/etc/prometheus";
const DATA_DIR: &str = "/prometheus";

/// The URL Grafana queries.
pub fn url(ctx: &Ctx<'_>) -> String {
    format!("http://{}:{PORT}", ctx.name(COMPONENT))
}

/// ConfigMap, ServiceAccount, Role, RoleBinding, Service and StatefulSet.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let version = image_tag(images::PROMETHEUS);
    let data = BTreeMap::from([
        (CONFIG_FILE.to_owned(), config(ctx)?),
        (RULES_FILE.to_owned(), rules_file(ctx)),
    ]);
    let managed = &ctx.spec.observability.managed;
    let parts = Parts {
        component: COMPONENT,
        image: images::PROMETHEUS,
        uid: images::PROMETHEUS_UID,
        args: vec![
            format!("--config.file={CONFIG_DIR}/{CONFIG_FILE}"),
            format!("--storage.tsdb.path={DATA_DIR}"),
            format!("--storage.tsdb.retention.time={}d", managed.retention_days),
            format!(
                "--storage.tsdb.retention.size={}",
                retention_size(&managed.prometheus_storage)
            ),
            format!("--web.listen-address=:{PORT}"),
        ],
        env: Vec::new(),
        port: (PORT, PORT_NAME),
        readiness: pod::http_probe("/-/ready", PORT_NAME, 10, 3),
        // Replaying a large write-ahead log takes a while; healthy answers
        // meanwhile, ready does not.
        liveness: pod::http_probe("/-/healthy", PORT_NAME, 10, 6),
        resources: workload::resources(("100m", "256Mi"), ("1", "1Gi")),
        volumes: vec![workload::config_volume("config", &ctx.name(COMPONENT), &[])],
        mounts: vec![
            pod::mount(DATA_VOLUME, DATA_DIR),
            pod::mount("config", CONFIG_DIR),
        ],
        config: data.clone(),
        api_access: true,
    };
    Ok(vec![
        workload::config_map(ctx, COMPONENT, images::PROMETHEUS, data)?,
        config::service_account(ctx, COMPONENT, version)?,
        role(ctx, version)?,
        role_binding(ctx, version)?,
        workload::service(ctx, &parts)?,
        workload::stateful_set(ctx, parts, &managed.prometheus_storage)?,
    ])
}

/// `prometheus.yml`: the Store's service pods and, where the operator says
/// where it serves them, its metrics of this Store; with the rules.
pub fn config(ctx: &Ctx<'_>) -> Result<String> {
    yaml(&config_value(ctx), "prometheus.yml")
}

fn config_value(ctx: &Ctx<'_>) -> Value {
    let mut jobs = vec![services_job(ctx)];
    if let Some(operator) = &ctx.platform.operator_metrics {
        jobs.push(operator_job(ctx, operator));
    }
    json!({
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "rule_files": [RULES_FILE],
        "scrape_configs": jobs,
    })
}

/// The operator's `storekeeper_store_*` series of this Store only, which
/// the Stalled and RolledBack alerts and the dashboard's rollout panels
/// read: the operator filters its answer by the `namespace` and `store`
/// parameters, so neither other Stores' names nor its own internals reach
/// this Prometheus. The series keep their own `namespace` and `store`
/// labels, the ones the rules match.
fn operator_job(ctx: &Ctx<'_>, operator: &OperatorMetrics) -> Value {
    json!({
        "job_name": OPERATOR_JOB,
        "metrics_path": METRICS_PATH,
        "params": {
            NAMESPACE_PARAM: [ctx.namespace],
            STORE_PARAM: [ctx.store],
        },
        "static_configs": [{"targets": [operator.target()]}],
    })
}

/// The five services' pods of this Store, labelled as a PodMonitor would.
fn services_job(ctx: &Ctx<'_>) -> Value {
    let services: Vec<&str> = ShopService::ALL.iter().map(|s| s.name()).collect();
    let store_pods = format!(
        "{}={},{}={}",
        labels::INSTANCE,
        ctx.store,
        labels::PART_OF,
        labels::STOREKEEPER
    );
    json!({
        "job_name": JOB,
        "metrics_path": METRICS_PATH,
        "kubernetes_sd_configs": [{
            "role": "pod",
            "namespaces": {"names": [ctx.namespace]},
            // Watched by label on the API server's side, so Prometheus
            // never holds the rest of the namespace's pods.
            "selectors": [{"role": "pod", "label": store_pods}],
        }],
        "relabel_configs": [
            {
                "action": "keep",
                "source_labels": [meta_label(labels::NAME)],
                "regex": services.join("|"),
            },
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": METRICS_PORT_NAME,
            },
            {
                "action": "drop",
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "regex": "Failed|Succeeded",
            },
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": [meta_label(labels::INSTANCE)], "target_label": STORE_LABEL},
            {"source_labels": [meta_label(labels::NAME)], "target_label": SERVICE_LABEL},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    })
}

/// Prometheus' size-based retention: 80 % of the volume (`10Gi` → `8192MB`;
/// Prometheus reads `MB` as MiB), so a full disk never stops ingestion.
fn retention_size(storage: &str) -> String {
    let split = storage
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(storage.len());
    let (number, unit) = storage.split_at(split);
    let mebibytes_per_unit: u64 = match unit {
        "Ti" => 1024 * 1024,
        "Gi" => 1024,
        _ => 1,
    };
    let mebibytes = number.parse::<u64>().unwrap_or(0) * mebibytes_per_unit;
    format!("{}MB", mebibytes * 8 / 10)
}

/// Reading the namespace's pods: what the service discovery needs.
fn role(ctx: &Ctx<'_>, version: &str) -> Result<Object> {
    let name = ctx.name(COMPONENT);
    let role = Role {
        metadata: ctx.meta(name.clone(), COMPONENT, version),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".to_owned()]),
            verbs: ["get", "list", "watch"].map(str::to_owned).to_vec(),
            ..PolicyRule::default()
        }]),
    };
    Object::new(ChildKind::Role, Step::Foundation, &name, &role)
}

fn role_binding(ctx: &Ctx<'_>, version: &str) -> Result<Object> {
    let name = ctx.name(COMPONENT);
    let binding = RoleBinding {
        metadata: ctx.meta(name.clone(), COMPONENT, version),
        role_ref: RoleRef {
            api_group: Some(ChildKind::Role.group().to_owned()),
            kind: ChildKind::Role.kind().to_owned(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: name.clone(),
            namespace: Some(ctx.namespace.clone()),
            ..Subject::default()
        }]),
    };
    Object::new(ChildKind::RoleBinding, Step::Foundation, &name, &binding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_size_is_four_fifths_of_the_volume_in_mebibytes() {
        assert_eq!(retention_size("10Gi"), "8192MB");
        assert_eq!(retention_size("500Mi"), "400MB");
        assert_eq!(retention_size("1Ti"), "838860MB");
    }
}
