//! The observability assets the operator renders per Store
//! (`operator/assets/observability/`): the PrometheusRule's rule file and the
//! Grafana dashboard parse, every alert carries its annotations and a
//! runbook, every query is kept to one Store, the operator's own
//! `storekeeper_*` metrics they read exist with the labels they use, and
//! `promtool check rules` / `promtool test rules` (rules_test.yaml) pass.
//!
//! promtool comes with Debian's `prometheus` package, which
//! `bootstrap/local/deps.sh --promtool` installs (`cargo xtask test` asks
//! for it). Without promtool on PATH the promtool test fails under CI (`CI`
//! set) and is skipped with a note elsewhere.
//!
//! The services' metrics are checked against their real `/metrics` by
//! `services/shop-tests/tests/observability_queries.rs`.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

#[path = "observability_assets/queries.rs"]
mod queries;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use prometheus_client::registry::Registry;
use queries::{DASHBOARD, RULES, panels, uses};
use storekeeper::{
    api::StoreStatus,
    metrics::{Metrics, OutcomeLabel, StepLabel, StoreLabel},
};

/// The alerts the Store's owner was promised (docs/observability.md).
const ALERTS: [&str; 11] = [
    "StorekeeperCheckoutErrorRatioHigh",
    "StorekeeperServiceLatencyHigh",
    "StorekeeperTargetDown",
    "StorekeeperServiceDown",
    "StorekeeperServiceNotReady",
    "StorekeeperDependencyDegraded",
    "StorekeeperOrdersStuck",
    "StorekeeperDeadLetters",
    "StorekeeperOutboxBacklogGrowing",
    "StorekeeperStoreRolledBack",
    "StorekeeperStoreStalled",
];

/// The names the unit tests give the placeholders.
const NAMESPACE: &str = "shop";
const STORE: &str = "demo";

fn rules() -> serde_yaml::Value {
    serde_yaml::from_str(RULES).expect("rules.yaml parses")
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(DASHBOARD).expect("dashboard.json parses")
}

fn alerts(rules: &serde_yaml::Value) -> Vec<&serde_yaml::Value> {
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("rules"))
        .filter(|rule| rule.get("alert").is_some())
        .collect()
}

#[test]
fn every_alert_has_a_severity_a_summary_a_description_and_a_runbook() {
    let rules = rules();
    let alerts = alerts(&rules);
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "alert names repeat: {names:?}");
    assert_eq!(
        unique,
        ALERTS.into_iter().collect(),
        "the alerts differ from the documented ones"
    );
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        assert!(
            matches!(
                alert["labels"]["severity"].as_str(),
                Some("critical" | "warning")
            ),
            "{name}: severity must be critical or warning"
        );
        for key in ["summary", "description", "runbook"] {
            let text = alert["annotations"][key].as_str().unwrap_or_default();
            assert!(
                text.trim().len() > 20,
                "{name}: annotation {key} is missing or empty"
            );
        }
        let runbook = alert["annotations"]["runbook"].as_str().unwrap();
        for part in ["What it means", "What to look at", "What to do"] {
            assert!(runbook.contains(part), "{name}: the runbook lacks {part:?}");
        }
    }
}

#[test]
fn every_rule_selector_is_kept_to_its_store() {
    for query in queries::asset_queries()
        .iter()
        .filter(|q| q.origin.starts_with("rule "))
    {
        for selector in uses(&query.expr).selectors {
            for (label, placeholder) in [("namespace", "$NAMESPACE"), ("store", "$STORE")] {
                assert!(
                    selector
                        .matchers
                        .contains(&(label.into(), "=".into(), placeholder.into())),
                    "{}: {} does not select {label}=\"{placeholder}\"",
                    query.origin,
                    selector.metric
                );
            }
        }
    }
}

#[test]
fn the_dashboard_is_one_store_s_with_unique_panels() {
    let dashboard = dashboard();
    let title = dashboard["title"].as_str().unwrap();
    assert!(
        title.contains("$NAMESPACE") && title.contains("$STORE"),
        "{title}"
    );
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("variable {name} missing"))
    };
    assert_eq!(variable("namespace")["query"], "$NAMESPACE");
    assert_eq!(variable("store")["query"], "$STORE");
    assert_eq!(variable("datasource")["type"], "datasource");
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(
            ids.insert(panel["id"].as_u64().expect("a panel has an id")),
            "panel id repeats: {title}"
        );
        assert!(
            panel["gridPos"]["w"].as_u64().is_some(),
            "{title}: no gridPos"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert!(
            panel["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{title}: no description"
        );
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        assert!(
            !panel["targets"].as_array().unwrap().is_empty(),
            "{title}: no query"
        );
    }
    // Every selector of a metric with a `store` label is kept to this
    // Store (the operator's rollout counter has none: it is operator-wide).
    let series = operator_series();
    for query in queries::asset_queries()
        .iter()
        .filter(|q| q.origin.starts_with("panel "))
    {
        for selector in uses(&query.expr).selectors {
            let has_store = series
                .get(&selector.metric)
                .is_none_or(|labels| labels.contains("store"));
            if !has_store {
                continue;
            }
            for (label, variable) in [("namespace", "$namespace"), ("store", "$store")] {
                assert!(
                    selector
                        .matchers
                        .contains(&(label.into(), "=".into(), variable.into())),
                    "{}: {} does not select {label}=\"{variable}\"",
                    query.origin,
                    selector.metric
                );
            }
        }
    }
}

/// The operator's registry as `/metrics` shows it, with one series in each
/// family so that every label shows.
fn operator_series() -> BTreeMap<String, BTreeSet<String>> {
    let mut registry = Registry::default();
    let metrics = Metrics::default().register(&mut registry);
    let store = StoreLabel {
        namespace: NAMESPACE.into(),
        store: STORE.into(),
    };
    metrics.store_status(&store, &StoreStatus::default());
    metrics.current_step.get_or_create(&store).set(0);
    metrics
        .rollouts
        .get_or_create(&OutcomeLabel {
            outcome: "started".into(),
        })
        .inc();
    metrics
        .step_duration
        .get_or_create(&StepLabel {
            step: "Backends".into(),
        })
        .observe(1.0);
    metrics.failure("Test".into());
    metrics.api_request(&http::Method::GET, &"/api".parse().unwrap());
    drop(metrics.count_and_measure());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    queries::exposition(&text)
}

#[test]
fn the_operator_metrics_the_assets_read_exist_with_their_labels() {
    let series = operator_series();
    let mut problems = Vec::new();
    for query in queries::asset_queries() {
        // Scraped from the operator's own job: its series keep their own
        // `namespace` and `store` (honorLabels) and gain job and instance.
        problems.extend(queries::problems(
            &query,
            &series,
            &["job", "instance"],
            |metric| metric.starts_with("storekeeper_"),
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let conditions = queries::asset_queries()
        .iter()
        .filter(|q| q.origin.starts_with("rule "))
        .flat_map(|q| uses(&q.expr).selectors)
        .filter(|s| s.metric == "storekeeper_store_condition")
        .count();
    assert!(
        conditions >= 2,
        "the Stalled and RolledBack alerts read the conditions"
    );
}

/// A directory of its own under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("storekeeper-rules-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn substitute(text: &str) -> String {
    text.replace("$NAMESPACE", NAMESPACE)
        .replace("$STORE", STORE)
}

/// `promtool` on PATH, if any.
fn promtool() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("promtool"))
        .find(|path| path.is_file())
}

fn run(promtool: &Path, dir: &Path, args: &[&str]) {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promtool");
    assert!(
        output.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let Some(promtool) = promtool() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not on PATH; CI must have it (bootstrap/local/deps.sh --promtool installs Debian's prometheus package)"
        );
        eprintln!(
            "note: promtool is not on PATH, so the alert rules were not checked by promtool; \
             `bootstrap/local/deps.sh --promtool` installs it (cargo xtask test does)"
        );
        return;
    };
    let checked = TempDir::new();
    std::fs::write(checked.0.join("rules.yaml"), substitute(RULES)).unwrap();
    run(&promtool, &checked.0, &["check", "rules", "rules.yaml"]);

    // promtool compares annotations verbatim, so the unit tests run on the
    // rules without them (their templates were checked above).
    let tested = TempDir::new();
    let mut rules: serde_yaml::Value = serde_yaml::from_str(&substitute(RULES)).unwrap();
    for group in rules["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            rule.as_mapping_mut().unwrap().remove("annotations");
        }
    }
    std::fs::write(
        tested.0.join("rules.yaml"),
        serde_yaml::to_string(&rules).unwrap(),
    )
    .unwrap();
    std::fs::write(
        tested.0.join("rules_test.yaml"),
        substitute(include_str!("../assets/observability/rules_test.yaml")),
    )
    .unwrap();
    run(&promtool, &tested.0, &["test", "rules", "rules_test.yaml"]);
}

#[test]
fn the_unit_tests_fire_every_alert() {
    let tests: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../assets/observability/rules_test.yaml")).unwrap();
    let fired: BTreeSet<&str> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|test| test["alert_rule_test"].as_sequence().unwrap())
        .filter(|case| {
            case["exp_alerts"]
                .as_sequence()
                .is_some_and(|alerts| !alerts.is_empty())
        })
        .map(|case| case["alertname"].as_str().unwrap())
        .collect();
    assert_eq!(fired, ALERTS.into_iter().collect());
}
