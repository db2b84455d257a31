//! The Store's Grafana, `<store>-grafana`: the Store's Prometheus and Loki
//! as provisioned data sources and the Store's dashboard (the ConfigMap
//! `<store>-dashboard`, the same one a Grafana sidecar picks up in the
//! `Auto` mode). Its admin password is generated into the Secret
//! `<store>-grafana`, like the operator's other credentials; its own
//! database is scratch space, as everything it shows is provisioned.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use serde_json::json;

use super::super::datastore::image_tag;
use super::super::meta::Ctx;
use super::super::observability::dashboard_name;
use super::super::{ChildKind, Object, Step, config, images, pod, secrets};
use super::config_file::yaml;
use super::workload::{self, Parts};
use super::{loki, prometheus};
use crate::Result;

/// Component name.
pub const COMPONENT: &str = "grafana";
/// Grafana's HTTP port (UI, API, probes).
pub const PORT: i32 = 3000;
const PORT_NAME: &str = "http";
/// The settings file's key in the ConfigMap.
pub const INI_FILE: &str = "grafana.ini";
/// The data sources' provisioning file's key.
pub const DATASOURCES_FILE: &str = "datasources.yaml";
/// The dashboard provider's provisioning file's key.
pub const DASHBOARDS_FILE: &str = "dashboards.yaml";
/// Grafana's settings: `operator/assets/observability/grafana.ini`.
const INI: &str = include_str!("../../../assets/observability/grafana.ini");
const CONFIG_DIR: &str = "/etc/grafana-storekeeper";
const PROVISIONING_DIR: &str = "/etc/grafana/provisioning";
/// Where the dashboard ConfigMap is mounted for the file provider.
const DASHBOARDS_DIR: &str = "/var/lib/storekeeper-dashboards";
/// Grafana's user name for the admin; the password is in the Secret.
pub const ADMIN_USER: &str = "admin";

/// ServiceAccount, ConfigMap, Service and Deployment.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let version = image_tag(images::GRAFANA);
    let name = ctx.name(COMPONENT);
    let data = BTreeMap::from([
        (INI_FILE.to_owned(), INI.to_owned()),
        (DATASOURCES_FILE.to_owned(), datasources(ctx)?),
        (DASHBOARDS_FILE.to_owned(), dashboard_provider()?),
    ]);
    let parts = Parts {
        component: COMPONENT,
        image: images::GRAFANA,
        uid: images::GRAFANA_UID,
        args: Vec::new(),
        env: vec![
            pod::env_value("GF_PATHS_CONFIG", format!("{CONFIG_DIR}/{INI_FILE}")),
            pod::env_value("GF_PATHS_PROVISIONING", PROVISIONING_DIR),
            pod::env_secret(
                "GF_SECURITY_ADMIN_PASSWORD",
                &secrets::grafana(&ctx.store),
                secrets::PASSWORD,
            ),
        ],
        port: (PORT, PORT_NAME),
        readiness: pod::http_probe("/api/health", PORT_NAME, 10, 3),
        liveness: pod::http_probe("/api/health", PORT_NAME, 10, 6),
        resources: workload::resources(("50m", "128Mi"), ("500m", "512Mi")),
        volumes: vec![
            workload::config_volume("config", &name, &[(INI_FILE, INI_FILE)]),
            workload::config_volume(
                "datasources",
                &name,
                &[(DATASOURCES_FILE, DATASOURCES_FILE)],
            ),
            workload::config_volume(
                "dashboard-providers",
                &name,
                &[(DASHBOARDS_FILE, DASHBOARDS_FILE)],
            ),
            workload::config_volume("dashboards", &dashboard_name(ctx), &[]),
            pod::scratch("data"),
            pod::scratch("tmp"),
        ],
        mounts: vec![
            pod::mount("config", CONFIG_DIR),
            pod::mount("datasources", &format!("{PROVISIONING_DIR}/datasources")),
            pod::mount(
                "dashboard-providers",
                &format!("{PROVISIONING_DIR}/dashboards"),
            ),
            pod::mount("dashboards", DASHBOARDS_DIR),
            pod::mount("data", "/var/lib/grafana"),
            pod::mount("tmp", "/tmp"),
        ],
        config: data.clone(),
        api_access: false,
    };
    let service = workload::service(ctx, &parts)?;
    let deployment = Deployment {
        metadata: ctx.meta(name.clone(), COMPONENT, version),
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: ctx.selector(COMPONENT),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            revision_history_limit: Some(5),
            template: workload::template(ctx, parts),
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    };
    Ok(vec![
        workload::config_map(ctx, COMPONENT, images::GRAFANA, data)?,
        config::service_account(ctx, COMPONENT, version)?,
        service,
        Object::new(ChildKind::Deployment, Step::Foundation, &name, &deployment)?,
    ])
}

/// The Store's Prometheus (the default, which the dashboard's `datasource`
/// picker starts on) and Loki, not editable in the UI.
pub fn datasources(ctx: &Ctx<'_>) -> Result<String> {
    yaml(
        &json!({
            "apiVersion": 1,
            "datasources": [
                {
                    "name": "Prometheus",
                    "uid": prometheus::COMPONENT,
                    "type": "prometheus",
                    "access": "proxy",
                    "url": prometheus::url(ctx),
                    "isDefault": true,
                    "editable": false,
                },
                {
                    "name": "Loki",
                    "uid": loki::COMPONENT,
                    "type": "loki",
                    "access": "proxy",
                    "url": loki::url(ctx),
                    "editable": false,
                },
            ],
        }),
        DATASOURCES_FILE,
    )
}

/// A file provider over the mounted dashboard ConfigMap; Grafana rescans
/// it, so a new dashboard shows without a restart.
pub fn dashboard_provider() -> Result<String> {
    yaml(
        &json!({
            "apiVersion": 1,
            "providers": [{
                "name": "storekeeper",
                "type": "file",
                "disableDeletion": true,
                "allowUiUpdates": false,
                "updateIntervalSeconds": 30,
                "options": {"path": DASHBOARDS_DIR},
            }],
        }),
        DASHBOARDS_FILE,
    )
}
