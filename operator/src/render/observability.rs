//! The monitoring objects of a Store (`spec.observability`): a PodMonitor
//! that has a Prometheus Operator's Prometheus scrape the five services'
//! admin port, a PrometheusRule with the shop's alerts, and a Grafana
//! dashboard ConfigMap for the Grafana sidecar (label `grafana_dashboard`).
//! The rules and the dashboard are files (`operator/assets/observability/`)
//! checked by their own tests (promtool, and every metric they name exists
//! on the services' `/metrics`); here they only get the Store's name and
//! namespace. Whether the cluster serves the PodMonitor and PrometheusRule
//! kinds is the controller's to know: render stays pure and renders them,
//! the controller drops kinds the API does not serve. In the `Managed` mode
//! only the dashboard ConfigMap is rendered here: the Store's own Grafana
//! reads it, and its own Prometheus (`super::monitoring`) reads the rules
//! from a file and finds the services itself.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};
use storekeeper_contract::admin::{METRICS_PATH, METRICS_PORT_NAME};
use storekeeper_contract::{ShopService, labels};

use super::meta::Ctx;
use super::{ChildKind, Object, Step};
use crate::api::ObservabilityMode;
use crate::{Error, Result};

/// Component label of the monitoring objects.
pub const COMPONENT: &str = "monitoring";
/// The label Grafana's dashboard sidecar (kube-prometheus-stack's default)
/// picks ConfigMaps up by.
pub const DASHBOARD_LABEL: &str = "grafana_dashboard";
/// Label the scraped series carry the Store's name in.
pub const STORE_LABEL: &str = "store";
/// Label the scraped series carry the component (`order`, ...) in.
pub const SERVICE_LABEL: &str = "service";

/// The alert rules: a Prometheus rule file with `$STORE` and `$NAMESPACE`
/// where the Store's name and namespace go.
const RULES: &str = include_str!("../../assets/observability/rules.yaml");
/// The Grafana dashboard, with the same placeholders.
const DASHBOARD: &str = include_str!("../../assets/observability/dashboard.json");
/// How often Prometheus scrapes the services.
pub const SCRAPE_INTERVAL: &str = "30s";

/// The PodMonitor, the PrometheusRule and the dashboard ConfigMap with
/// `Auto`, the dashboard ConfigMap alone with `Managed`, nothing with `Off`.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let spec = &ctx.spec.observability;
    if spec.mode == ObservabilityMode::Off {
        return Ok(Vec::new());
    }
    let dashboard = dashboard(ctx)?;
    if spec.mode == ObservabilityMode::Managed {
        return Ok(vec![dashboard]);
    }
    let name = ctx.name(COMPONENT);
    let mut metadata = serde_json::to_value(ctx.meta(name.clone(), COMPONENT, &ctx.spec.version))
        .map_err(|source| Error::Serialize {
        what: format!("monitoring metadata of {}", ctx.store),
        source,
    })?;
    for (k, v) in &spec.labels {
        metadata["labels"][k] = json!(v);
    }
    let pod_monitor = Object::from_json(
        ChildKind::PodMonitor,
        Step::Foundation,
        &name,
        json!({"metadata": metadata, "spec": pod_monitor_spec(ctx)}),
    );
    let rule_name = ctx.name("alerts");
    let mut rule_meta = metadata.clone();
    rule_meta["name"] = json!(rule_name);
    let rules = Object::from_json(
        ChildKind::PrometheusRule,
        Step::Foundation,
        &rule_name,
        json!({"metadata": rule_meta, "spec": rules_spec(ctx)?}),
    );
    Ok(vec![dashboard, pod_monitor, rules])
}

/// Name of the dashboard ConfigMap.
pub fn dashboard_name(ctx: &Ctx<'_>) -> String {
    ctx.name("dashboard")
}

/// The dashboard ConfigMap, for a Grafana sidecar or the Store's Grafana.
fn dashboard(ctx: &Ctx<'_>) -> Result<Object> {
    let spec = &ctx.spec.observability;
    let dashboard_name = dashboard_name(ctx);
    let mut dashboard_meta = ctx.meta(dashboard_name.clone(), COMPONENT, &ctx.spec.version);
    let mut dashboard_labels = dashboard_meta.labels.take().unwrap_or_default();
    dashboard_labels.insert(DASHBOARD_LABEL.to_owned(), "1".to_owned());
    dashboard_labels.extend(spec.labels.clone());
    dashboard_meta.labels = Some(dashboard_labels);
    let dashboard = ConfigMap {
        metadata: dashboard_meta,
        data: Some(BTreeMap::from([(
            format!("storekeeper-{}-{}.json", ctx.namespace, ctx.store),
            substitute(ctx, DASHBOARD),
        )])),
        ..ConfigMap::default()
    };
    Object::new(
        ChildKind::ConfigMap,
        Step::Foundation,
        &dashboard_name,
        &dashboard,
    )
}

/// Scrape the five services' admin port (not the data stores, nor the
/// migration Jobs), labelling every series with the Store and the service.
fn pod_monitor_spec(ctx: &Ctx<'_>) -> Value {
    let services: Vec<&str> = ShopService::ALL.iter().map(|s| s.name()).collect();
    json!({
        "selector": {
            "matchLabels": {labels::INSTANCE: ctx.store, labels::PART_OF: labels::STOREKEEPER},
            "matchExpressions": [{"key": labels::NAME, "operator": "In", "values": services}],
        },
        "podMetricsEndpoints": [{
            "port": METRICS_PORT_NAME,
            "path": METRICS_PATH,
            "interval": SCRAPE_INTERVAL,
            "relabelings": [
                {"sourceLabels": [meta_label(labels::INSTANCE)], "targetLabel": STORE_LABEL},
                {"sourceLabels": [meta_label(labels::NAME)], "targetLabel": SERVICE_LABEL},
            ],
        }],
    })
}

/// The name Prometheus' Kubernetes service discovery gives a pod label.
pub fn meta_label(label: &str) -> String {
    format!(
        "__meta_kubernetes_pod_label_{}",
        label.replace(['.', '/', '-'], "_")
    )
}

/// The rule file with the Store's name and namespace, as Prometheus reads it.
pub fn rules_file(ctx: &Ctx<'_>) -> String {
    substitute(ctx, RULES)
}

/// The rule file as the PrometheusRule's spec.
fn rules_spec(ctx: &Ctx<'_>) -> Result<Value> {
    serde_yaml::from_str(&rules_file(ctx)).map_err(|e| Error::Serialize {
        what: "assets/observability/rules.yaml".to_owned(),
        source: serde_json::Error::io(std::io::Error::other(e.to_string())),
    })
}

fn substitute(ctx: &Ctx<'_>, text: &str) -> String {
    text.replace("$NAMESPACE", &ctx.namespace)
        .replace("$STORE", &ctx.store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::store;
    use crate::render::render as render_store;

    fn of(kind: ChildKind, s: &crate::api::Store) -> Vec<Object> {
        render_store(s)
            .unwrap()
            .objects
            .into_iter()
            .filter(|o| {
                o.kind == kind
                    && o.value.pointer("/metadata/labels/app.kubernetes.io~1name")
                        == Some(&json!(COMPONENT))
            })
            .collect()
    }

    #[test]
    fn auto_renders_the_three_and_off_none() {
        let s = store("shop");
        let monitors = of(ChildKind::PodMonitor, &s);
        assert_eq!(monitors.len(), 1);
        let spec = &monitors[0].value["spec"];
        assert_eq!(spec["podMetricsEndpoints"][0]["port"], json!("metrics"));
        assert_eq!(
            spec["selector"]["matchExpressions"][0]["values"],
            json!(["user", "product", "payment", "order", "storefront"])
        );
        let rules = of(ChildKind::PrometheusRule, &s);
        assert_eq!(rules.len(), 1);
        let text = rules[0].value["spec"].to_string();
        assert!(rules[0].value["spec"]["groups"].is_array(), "{text}");
        assert!(
            !text.contains("$STORE") && !text.contains("$NAMESPACE"),
            "{text}"
        );
        let dashboards = of(ChildKind::ConfigMap, &s);
        assert_eq!(dashboards.len(), 1);
        let d = &dashboards[0].value;
        assert_eq!(d["metadata"]["labels"][DASHBOARD_LABEL], json!("1"));
        let json_text = d["data"]["storekeeper-shop-shop.json"].as_str().unwrap();
        let parsed: Value = serde_json::from_str(json_text).unwrap();
        assert!(parsed.is_object());

        let mut off = store("shop");
        off.spec.observability.mode = ObservabilityMode::Off;
        for kind in [
            ChildKind::PodMonitor,
            ChildKind::PrometheusRule,
            ChildKind::ConfigMap,
        ] {
            assert!(of(kind, &off).is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn extra_labels_reach_every_monitoring_object() {
        let mut s = store("shop");
        s.spec
            .observability
            .labels
            .insert("release".into(), "kube-prometheus-stack".into());
        for kind in [
            ChildKind::PodMonitor,
            ChildKind::PrometheusRule,
            ChildKind::ConfigMap,
        ] {
            let o = &of(kind, &s)[0];
            assert_eq!(
                o.value["metadata"]["labels"]["release"],
                json!("kube-prometheus-stack"),
                "{kind:?}"
            );
            assert_eq!(
                o.value["metadata"]["labels"][labels::INSTANCE],
                json!("shop"),
                "{kind:?}"
            );
        }
    }
}
