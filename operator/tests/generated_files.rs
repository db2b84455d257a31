//! Checked-in files generated from the code must match it: the CRD (also the
//! chart's copy) and the chart's RBAC rules. The chart must never again ship
//! the CRD in `crds/`, which Helm installs once and never upgrades. `cargo xtask generate` rewrites
//! them all.

// Helpers outside `#[test]` functions may panic too: this whole file is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use storekeeper::render::Delegate;
use storekeeper::{crd, rbac};

/// What every failure here tells the reader to do.
const REGENERATE: &str = "run `cargo xtask generate` and commit the result";

fn read(rel: &str) -> String {
    let path = format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn crd_yaml_matches_the_code() {
    let code = crd::yaml().unwrap();
    // The chart's copy is a file its templates/crd.yaml renders (so the CRD
    // upgrades with the chart), not a crds/ file Helm installs only once.
    for path in ["crds/store.yaml", "charts/storekeeper/files/crd-store.yaml"] {
        assert!(read(path) == code, "{path} is stale: {REGENERATE}");
    }
}

#[test]
fn chart_has_no_crds_directory() {
    let dir = format!("{}/../charts/storekeeper/crds", env!("CARGO_MANIFEST_DIR"));
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} exists: Helm never upgrades a CRD there; the chart renders files/crd-store.yaml from templates/crd.yaml"
    );
}

#[test]
fn chart_rbac_matches_the_code() {
    let rules = [
        (
            "charts/storekeeper/files/cluster-rules.yaml",
            rbac::cluster_rules(),
        ),
        (
            "charts/storekeeper/files/lease-rules.yaml",
            rbac::lease_rules(),
        ),
        (
            "charts/storekeeper/files/cloudnative-pg-rules.yaml",
            rbac::delegation_rules(Delegate::CloudNativePg),
        ),
        (
            "charts/storekeeper/files/rabbitmq-cluster-operator-rules.yaml",
            rbac::delegation_rules(Delegate::RabbitmqClusterOperator),
        ),
    ];
    for (path, rules) in rules {
        assert!(
            read(path) == rbac::yaml(&rules).unwrap(),
            "{path} is stale: {REGENERATE}"
        );
    }
}

#[test]
fn crd_has_the_documented_shape() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crd: CustomResourceDefinition = serde_yaml::from_str(&crd::yaml().unwrap()).unwrap();
    assert_eq!(crd.spec.group, "storekeeper.dev");
    assert_eq!(crd.spec.names.plural, "stores");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.categories, Some(vec!["all".to_owned()]));
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<&str> = v
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Phase", "Version", "Step", "Ready", "URL", "Age"]);
    let schema = serde_json::to_value(v.schema.as_ref().unwrap()).unwrap();
    let root = &schema["openAPIV3Schema"];
    assert!(
        root["x-kubernetes-validations"][0]["rule"]
            .as_str()
            .unwrap()
            .contains("metadata.name")
    );
    let spec = &root["properties"]["spec"]["properties"];
    for store in ["postgres", "redis", "rabbitmq"] {
        assert_eq!(
            spec[store]["x-kubernetes-validations"][0]["rule"],
            serde_json::json!("has(self.managed) != has(self.external)")
        );
    }
    assert_eq!(
        spec["version"]["x-kubernetes-validations"][0]["rule"],
        serde_json::json!("self != 'latest'")
    );
    // A managed data store's volume is refused at admission, not wedged in a StatefulSet.
    for store in ["postgres", "redis", "rabbitmq"] {
        let rules = &spec[store]["properties"]["managed"]["x-kubernetes-validations"];
        let fields: Vec<&str> = rules
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["rule"].as_str().unwrap().contains("oldSelf"))
            .map(|r| r["fieldPath"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [".storage", ".storageClassName"], "{store}");
    }
    let rollout = &spec["rollout"]["properties"];
    assert_eq!(rollout["autoRollback"]["default"], serde_json::json!(true));
    assert_eq!(
        rollout["revisionHistoryLimit"]["default"],
        serde_json::json!(5)
    );
    assert_eq!(
        rollout["revisionHistoryLimit"]["maximum"],
        serde_json::json!(50.0)
    );
    // Every field explains itself to `kubectl explain`.
    described("spec", &root["properties"]["spec"]);
    described("status", &root["properties"]["status"]);
}

/// Asserts every property below `node` has a description.
fn described(path: &str, node: &serde_json::Value) {
    if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
        for (name, child) in props {
            let at = format!("{path}.{name}");
            assert!(
                child.get("description").is_some(),
                "{at} has no description"
            );
            described(&at, child);
        }
    }
    if let Some(items) = node.get("items") {
        described(path, items);
    }
}
