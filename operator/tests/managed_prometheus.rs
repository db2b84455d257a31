//! A Store's own Prometheus (`observability.mode: Managed`) against the
//! operator's real admin endpoint: Debian's `prometheus` runs the operator
//! job of the rendered `prometheus.yml` with the rendered rules, scrapes an
//! admin server holding two Stores' series, keeps only its own Store's, and
//! fires `StorekeeperStoreRolledBack` for it.
//!
//! Debian's build has no Kubernetes service discovery, so the services' job
//! is left out here (promtool checks it in the unit tests), and the operator
//! job's cluster address becomes the local admin server's. Scrape and rule
//! intervals drop to a second. Without `prometheus` on PATH the test fails
//! under CI (`CI` set) and is skipped with a note elsewhere;
//! `bootstrap/local/deps.sh --prometheus` installs it.

// Tests fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use example_stores::example;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use storekeeper::admin::{self, AdminState};
use storekeeper::api::{Condition, ObservabilityMode, Phase, Store, StoreStatus};
use storekeeper::metrics::{Metrics, StoreLabel};
use storekeeper::render::monitoring::prometheus::{CONFIG_FILE, OPERATOR_JOB, RULES_FILE};
use storekeeper::render::{ChildKind, OperatorMetrics, Platform, render_on};

mod example_stores;

/// Kills Prometheus and removes its folder however the test ends.
struct Running {
    child: Child,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn prometheus_binary() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("prometheus"))
        .find(|path| path.is_file())
}

fn managed_store() -> Store {
    let mut store = example("store");
    store.spec.observability.mode = ObservabilityMode::Managed;
    store
}

fn rolled_back() -> StoreStatus {
    let condition = |type_: &str, status: &str| Condition {
        type_: type_.into(),
        status: status.into(),
        reason: "Test".into(),
        message: String::new(),
        observed_generation: None,
        last_transition_time: "2026-01-01T00:00:00Z".into(),
    };
    StoreStatus {
        phase: Some(Phase::Degraded),
        conditions: vec![
            condition("Ready", "False"),
            condition("Stalled", "True"),
            condition("RolledBack", "True"),
        ],
        ..StoreStatus::default()
    }
}

/// The operator's admin server, with `store` and another Store in the same
/// namespace both rolled back.
async fn admin_server(namespace: &str, store: &str) -> SocketAddr {
    let mut registry = Registry::default();
    let metrics = Metrics::default().register(&mut registry);
    for name in [store, "outlet"] {
        let label = StoreLabel {
            namespace: namespace.into(),
            store: name.into(),
        };
        metrics.store_status(&label, &rolled_back());
    }
    let state = Arc::new(AdminState {
        registry,
        ready: true.into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, admin::router(state)).await });
    addr
}

/// The rendered `prometheus.yml` made runnable here: the operator job
/// only, aimed at `operator`, every second.
fn local_config(rendered: &str, operator: SocketAddr) -> String {
    let mut config: Value = serde_yaml::from_str(rendered).unwrap();
    let jobs = config["scrape_configs"].as_array().unwrap();
    let mut job = jobs
        .iter()
        .find(|j| j["job_name"] == OPERATOR_JOB)
        .expect("the rendered configuration has the operator job")
        .clone();
    job["static_configs"] = json!([{"targets": [operator.to_string()]}]);
    config["scrape_configs"] = json!([job]);
    config["global"] = json!({"scrape_interval": "1s", "evaluation_interval": "1s"});
    serde_yaml::to_string(&config).unwrap()
}

async fn api(client: &reqwest::Client, base: &str, path: &str, query: &[(&str, &str)]) -> Value {
    let Ok(response) = client
        .get(format!("{base}{path}"))
        .query(query)
        .send()
        .await
    else {
        return Value::Null;
    };
    response.json().await.unwrap_or(Value::Null)
}

/// Debian's Prometheus on a free port with the rendered files, made
/// runnable here.
fn start_prometheus(binary: &Path, data: &Value, operator: SocketAddr) -> (Running, SocketAddr) {
    let dir = std::env::temp_dir().join(format!(
        "storekeeper-managed-prometheus-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(CONFIG_FILE),
        local_config(data[CONFIG_FILE].as_str().unwrap(), operator),
    )
    .unwrap();
    std::fs::write(dir.join(RULES_FILE), data[RULES_FILE].as_str().unwrap()).unwrap();
    let listen = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let child = Command::new(binary)
        .arg(format!("--config.file={}", dir.join(CONFIG_FILE).display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={listen}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    (Running { child, dir }, listen)
}

#[tokio::test]
async fn a_stores_prometheus_scrapes_its_operator_series_and_fires_the_rollback_alert() {
    let Some(binary) = prometheus_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "`prometheus` is not on PATH; CI must have it (bootstrap/local/deps.sh --prometheus)"
        );
        eprintln!(
            "note: `prometheus` is not on PATH, so the managed Prometheus was not run; \
             `bootstrap/local/deps.sh --prometheus` installs it"
        );
        return;
    };
    let store = managed_store();
    let namespace = store.metadata.namespace.clone().unwrap();
    let name = store.metadata.name.clone().unwrap();
    let operator = admin_server(&namespace, &name).await;
    let platform = Platform {
        operator_metrics: Some(OperatorMetrics {
            namespace: "storekeeper-system".into(),
            service: "storekeeper-metrics".into(),
            port: operator.port(),
        }),
    };
    let rendered = render_on(&store, &platform).unwrap();
    let config_map = rendered
        .objects
        .iter()
        .find(|o| o.kind == ChildKind::ConfigMap && o.name == format!("{name}-prometheus"))
        .unwrap();
    let data = &config_map.value["data"];

    let (_running, listen) = start_prometheus(&binary, data, operator);
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();

    let deadline = Instant::now() + Duration::from_mins(1);
    let firing = loop {
        let alerts = api(&client, &base, "/api/v1/alerts", &[]).await;
        let firing: Vec<Value> = alerts["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .cloned()
            .collect();
        if !firing.is_empty() {
            break firing;
        }
        assert!(
            Instant::now() < deadline,
            "no alert fired within 60 s; last answer: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(
        firing[0]["labels"]["alertname"],
        "StorekeeperStoreRolledBack"
    );
    assert_eq!(firing[0]["labels"]["store"], name.as_str());
    assert_eq!(firing[0]["labels"]["namespace"], namespace.as_str());

    // Only this Store's series were taken in: the other Store's and the
    // operator's own never reached this Prometheus.
    let stores = api(
        &client,
        &base,
        "/api/v1/query",
        &[("query", "count by (store) ({__name__=~\"storekeeper_.+\"})")],
    )
    .await;
    let stores: Vec<&str> = stores["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"]["store"].as_str().unwrap_or("(none)"))
        .collect();
    assert_eq!(stores, [name.as_str()]);
    let up = api(&client, &base, "/api/v1/query", &[("query", "up")]).await;
    assert_eq!(up["data"]["result"][0]["metric"]["job"], OPERATOR_JOB);
    assert_eq!(up["data"]["result"][0]["value"][1], "1");
}
