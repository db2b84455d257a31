//! The `Managed` observability mode: for a cluster without a monitoring
//! stack, the Store gets its own — a Prometheus that finds the five
//! services through Kubernetes service discovery in the Store's namespace
//! and evaluates the same alert rules as a PrometheusRule would carry, a
//! Loki the services ship their logs to over OTLP, and a Grafana with both
//! as data sources and the Store's dashboard. Every pod runs under the
//! restricted Pod Security profile behind NetworkPolicies. Also the
//! services' telemetry settings (`telemetry::service_env`), whatever the mode, since
//! `spec.observability.traces` needs no stack of the operator's.
//!
//! The stack goes out in the `Foundation` step, so it watches the rollout
//! from its first step, but it never gates one (`gates_rollout`): a
//! monitoring pod that is not ready is no reason to hold or roll back the
//! shop.

mod config_file;
pub mod grafana;
pub mod loki;
pub mod policies;
pub mod prometheus;
pub mod telemetry;
pub mod traces;
mod workload;

use serde_json::Value;
use storekeeper_contract::labels;

use super::Object;
use super::meta::Ctx;
use crate::Result;

/// Every object of the managed stack, and the services' telemetry
/// NetworkPolicy; nothing for a Store that needs neither.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let mut out = Vec::new();
    if telemetry::managed(ctx) {
        out.extend(prometheus::render(ctx)?);
        out.extend(loki::render(ctx)?);
        out.extend(grafana::render(ctx)?);
        out.extend(policies::render(ctx)?);
    }
    out.extend(policies::telemetry(ctx)?);
    Ok(out)
}

/// Whether a rollout step waits for this object: every object but the
/// managed stack's, which are applied with the step and then left to come
/// up in their own time. An unready Grafana or a Loki whose volume is not
/// bound yet neither holds a step nor fails it into a rollback, and an API
/// server that refuses one of them (say, an operator without the RBAC for
/// Roles) shows as an apply failure in status while the shop rolls on.
pub fn gates_rollout(object: &Object) -> bool {
    let component = object
        .value
        .pointer("/metadata/labels")
        .and_then(|l| l.get(labels::NAME))
        .and_then(Value::as_str);
    !matches!(
        component,
        Some(prometheus::COMPONENT | loki::COMPONENT | grafana::COMPONENT)
    )
}

#[cfg(test)]
mod tests;
