//! Checked-in files generated from the code must match it: the CRD (also the
//! chart's copy) and the chart's RBAC rules. Regenerate with
//! `storekeeper crd > crds/store.yaml` (see docs/operator.md).

// Helpers outside `#[test]` functions may panic too: this whole file is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use storekeeper::{crd, rbac};

fn read(rel: &str) -> String {
    let path = format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn crd_yaml_matches_the_code() {
    let code = crd::yaml().unwrap();
    assert!(
        read("crds/store.yaml") == code,
        "crds/store.yaml is stale: run `storekeeper crd > crds/store.yaml`"
    );
    assert!(
        read("charts/storekeeper/crds/store.yaml") == code,
        "charts/storekeeper/crds/store.yaml is stale: copy crds/store.yaml"
    );
}

#[test]
fn chart_rbac_matches_the_code() {
    assert!(
        read("charts/storekeeper/files/cluster-rules.yaml")
            == rbac::yaml(&rbac::cluster_rules()).unwrap(),
        "chart cluster rules are stale: run `storekeeper rbac > charts/storekeeper/files/cluster-rules.yaml`"
    );
    assert!(
        read("charts/storekeeper/files/lease-rules.yaml")
            == rbac::yaml(&rbac::lease_rules()).unwrap(),
        "chart lease rules are stale: run `storekeeper rbac --lease > charts/storekeeper/files/lease-rules.yaml`"
    );
}
