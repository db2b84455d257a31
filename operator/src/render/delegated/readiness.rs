//! When a delegated data store is ready, read from its operator's status:
//! a CloudNativePG `Cluster` in phase `Cluster in healthy state` with
//! `readyInstances` equal to its `instances`, each `Database` applied
//! (`status.applied`) at its current generation, a `RabbitmqCluster` whose
//! controller observed its generation with the conditions
//! `AllReplicasReady` and `ClusterAvailable` true. The rollout's Data step
//! and `status.components` both ask here.

use serde_json::Value;

use crate::render::ChildKind;

/// CloudNativePG's phase of a `Cluster` with every instance up and nothing to do.
pub const CNPG_HEALTHY: &str = "Cluster in healthy state";
/// The `RabbitmqCluster` conditions that must be true.
pub const RABBITMQ_CONDITIONS: [&str; 2] = ["AllReplicasReady", "ClusterAvailable"];

/// Whether the Data step waits for objects of `kind` to be ready.
pub fn gates(kind: ChildKind) -> bool {
    matches!(
        kind,
        ChildKind::CnpgCluster | ChildKind::CnpgDatabase | ChildKind::RabbitmqCluster
    )
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// What `live` (an object of a gating kind, as listed) still waits for,
/// in words; `None` once it is ready.
pub fn waiting_for(kind: ChildKind, live: &Value) -> Option<String> {
    match kind {
        ChildKind::CnpgCluster => {
            let (phase, want) = (str_at(live, "/status/phase"), int(live, "/spec/instances"));
            let ready = int(live, "/status/readyInstances");
            (phase != CNPG_HEALTHY || ready < want).then(|| {
                let phase = if phase.is_empty() { "none yet" } else { phase };
                format!("{ready}/{want} PostgreSQL instances ready; CloudNativePG's phase: {phase}")
            })
        }
        ChildKind::CnpgDatabase => {
            let applied = live.pointer("/status/applied").and_then(Value::as_bool) == Some(true);
            let observed =
                int(live, "/status/observedGeneration") >= int(live, "/metadata/generation");
            (!applied || !observed).then(|| {
                let message = str_at(live, "/status/message");
                let database = str_at(live, "/spec/name");
                if message.is_empty() {
                    format!("database {database} not created by CloudNativePG yet")
                } else {
                    format!("database {database} not created by CloudNativePG yet: {message}")
                }
            })
        }
        ChildKind::RabbitmqCluster => {
            if int(live, "/status/observedGeneration") < int(live, "/metadata/generation") {
                return Some(format!(
                    "the RabbitMQ Cluster Operator has not seen generation {} yet",
                    int(live, "/metadata/generation")
                ));
            }
            let missing: Vec<&str> = RABBITMQ_CONDITIONS
                .into_iter()
                .filter(|t| !condition_true(live, t))
                .collect();
            (!missing.is_empty()).then(|| format!("RabbitmqCluster not {}", missing.join(", ")))
        }
        _ => None,
    }
}

fn condition_true(live: &Value, type_: &str) -> bool {
    live.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| str_at(c, "/type") == type_ && str_at(c, "/status") == "True")
        })
}

/// Replicas (instances, nodes) wanted and ready, for `status.components`.
pub fn replicas(kind: ChildKind, live: &Value) -> (i64, i64) {
    match kind {
        ChildKind::CnpgCluster => (
            int(live, "/spec/instances"),
            int(live, "/status/readyInstances"),
        ),
        ChildKind::RabbitmqCluster => {
            let want = int(live, "/spec/replicas").max(1);
            let ready = if condition_true(live, "AllReplicasReady") {
                want
            } else {
                0
            };
            (want, ready)
        }
        _ => (0, 0),
    }
}
