//! The Store's Loki, `<store>-loki`: one binary, its index and chunks on a
//! volume, receiving the services' log records over OTLP/HTTP on
//! `/otlp/v1/logs`. Its configuration is
//! `operator/assets/observability/loki.yaml` with the retention filled in.

use std::collections::BTreeMap;

use super::super::datastore::{DATA_VOLUME, image_tag};
use super::super::meta::Ctx;
use super::super::{Object, config, images, pod};
use super::workload::{self, Parts};
use crate::Result;

/// Component name.
pub const COMPONENT: &str = "loki";
/// Loki's HTTP port (push, query, probes).
pub const PORT: i32 = 3100;
const PORT_NAME: &str = "http";
/// The configuration file's key in the ConfigMap.
pub const CONFIG_FILE: &str = "loki.yaml";
/// Where Loki receives OTLP log records.
pub const OTLP_LOGS_PATH: &str = "/otlp/v1/logs";
/// The configuration, with `$RETENTION` where the retention period goes.
const CONFIG: &str = include_str!("../../../assets/observability/loki.yaml");
const CONFIG_DIR: &str = "/etc/loki";
/// Where the volume is mounted (the configuration's `path_prefix`).
const DATA_DIR: &str = "/loki";

/// The URL Grafana queries.
pub fn url(ctx: &Ctx<'_>) -> String {
    format!("http://{}:{PORT}", ctx.name(COMPONENT))
}

/// The full URL the services post their log records to.
pub fn otlp_logs_url(ctx: &Ctx<'_>) -> String {
    format!("{}{OTLP_LOGS_PATH}", url(ctx))
}

/// `loki.yaml` with the Store's retention (in hours, as Loki's examples write it).
pub fn config(ctx: &Ctx<'_>) -> String {
    let hours = ctx.spec.observability.managed.retention_days * 24;
    CONFIG.replace("$RETENTION", &format!("{hours}h"))
}

/// ServiceAccount, ConfigMap, Service and StatefulSet.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let data = BTreeMap::from([(CONFIG_FILE.to_owned(), config(ctx))]);
    let parts = Parts {
        component: COMPONENT,
        image: images::LOKI,
        uid: images::LOKI_UID,
        args: vec![format!("-config.file={CONFIG_DIR}/{CONFIG_FILE}")],
        env: Vec::new(),
        port: (PORT, PORT_NAME),
        // Loki answers ready only some 15 s after its ring settles.
        readiness: pod::http_probe("/ready", PORT_NAME, 10, 6),
        liveness: pod::tcp_probe(PORT, 10, 6),
        resources: workload::resources(("100m", "256Mi"), ("1", "1Gi")),
        volumes: vec![
            workload::config_volume("config", &ctx.name(COMPONENT), &[]),
            pod::scratch("tmp"),
        ],
        mounts: vec![
            pod::mount(DATA_VOLUME, DATA_DIR),
            pod::mount("config", CONFIG_DIR),
            pod::mount("tmp", "/tmp"),
        ],
        config: data.clone(),
        api_access: false,
    };
    Ok(vec![
        workload::config_map(ctx, COMPONENT, images::LOKI, data)?,
        config::service_account(ctx, COMPONENT, image_tag(images::LOKI))?,
        workload::service(ctx, &parts)?,
        workload::stateful_set(ctx, parts, &ctx.spec.observability.managed.loki_storage)?,
    ])
}
