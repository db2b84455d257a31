//! Whether a Store runs its own monitoring stack, and what every shop
//! service is told about telemetry because of it.

use k8s_openapi::api::core::v1::EnvVar;
use storekeeper_contract::env;

use super::loki;
use crate::api::ObservabilityMode;
use crate::render::meta::Ctx;
use crate::render::pod;

/// Whether the Store runs its own monitoring stack.
pub fn managed(ctx: &Ctx<'_>) -> bool {
    ctx.spec.observability.mode == ObservabilityMode::Managed
}

/// What every shop service is told about telemetry: where its logs go (the
/// Store's Loki, in the `Managed` mode) and where its spans go, with which
/// sampling ratio (`spec.observability.traces`).
pub fn service_env(ctx: &Ctx<'_>) -> Vec<EnvVar> {
    let mut e = Vec::new();
    if managed(ctx) {
        e.push(pod::env_value(
            env::OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
            loki::otlp_logs_url(ctx),
        ));
    }
    if let Some(traces) = &ctx.spec.observability.traces {
        e.push(pod::env_value(
            env::OTEL_EXPORTER_OTLP_ENDPOINT,
            traces.endpoint.clone(),
        ));
        if let Some(ratio) = &traces.sample_ratio {
            e.push(pod::env_value(env::OTEL_TRACES_SAMPLER_ARG, ratio.clone()));
        }
    }
    e
}
