//! A Prometheus for the shop on this machine: `cargo xtask up --prometheus`
//! runs one next to the local shop, and `cargo xtask prometheus-check` (part
//! of `cargo xtask test`) runs one against a throw-away stack, checks that it
//! scrapes all five services and that an alert fires when one stops.
//!
//! The server is Debian's `prometheus` package (`bootstrap/local/deps.sh
//! --prometheus` installs it). The configuration written here scrapes the
//! services' local admin ports (`ShopService::local_admin_port`, `/metrics`)
//! with the target labels the cluster's PodMonitor gives (`namespace`,
//! `store`, `service`, and `pod`, here the service's package), and loads the
//! Store's alert rules (`operator/assets/observability/rules.yaml`) with
//! `$NAMESPACE` and `$STORE` replaced by the same values, so the local shop
//! raises the cluster's alerts.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use storekeeper_contract::{ShopService, admin};
use tokio::process::Command;

use crate::layout;
use crate::process::{Logs, Running};
use crate::stack::{self, Options, Stack};

/// The `store` label of the local shop's series (a Store's name in a cluster).
pub const STORE: &str = "local";
/// The `namespace` label of the local shop's series.
pub const NAMESPACE: &str = "local";
/// Where `cargo xtask up --prometheus` serves Prometheus.
pub const LISTEN: &str = "127.0.0.1:9090";
/// How often `cargo xtask up --prometheus` scrapes and evaluates the rules.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The Store's alert rules, with `$NAMESPACE` and `$STORE` placeholders.
const RULES: &str = include_str!("../../operator/assets/observability/rules.yaml");
/// The scrape job of the five services.
const JOB: &str = "storekeeper";
/// Where the check's Prometheus listens: not 9090, which a running
/// `cargo xtask up --prometheus` or Debian's own `prometheus` service holds.
const CHECK_LISTEN: &str = "127.0.0.1:19090";
/// The check scrapes and evaluates every second.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The `for:` of every alert in the check's copy of the rules.
const CHECK_FOR: &str = "2s";
/// The service the check stops.
const CHECK_STOPPED: ShopService = ShopService::Payment;
/// The alerts that must fire for the stopped service.
const CHECK_ALERTS: [&str; 2] = ["StorekeeperTargetDown", "StorekeeperServiceDown"];

/// The Store's alert rules for the local shop: `rules.yaml` with the local
/// namespace and Store name in its selectors.
pub fn rules() -> String {
    RULES
        .replace("$NAMESPACE", NAMESPACE)
        .replace("$STORE", STORE)
}

/// `rules` with every alert's `for:` set to `duration`, so a test sees an
/// alert fire in seconds rather than minutes.
pub fn with_short_for(rules: &str, duration: &str) -> String {
    let mut out = String::with_capacity(rules.len());
    for line in rules.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("for: ") {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(indent);
            out.push_str("for: ");
            out.push_str(duration);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A duration as Prometheus writes it (`10s`, or `500ms` below a second).
fn prometheus_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// The Prometheus configuration: every `interval` scrape each service's
/// local admin port with the PodMonitor's target labels, and evaluate the
/// rules in `rule_file`. Written as JSON, which Prometheus reads as YAML.
pub fn config(interval: Duration, rule_file: &Path) -> Result<String> {
    let rule_file = rule_file
        .to_str()
        .with_context(|| format!("{} is not UTF-8", rule_file.display()))?;
    let interval_text = prometheus_duration(interval);
    let timeout = prometheus_duration(interval.min(Duration::from_secs(10)));
    let targets: Vec<Value> = ShopService::ALL
        .iter()
        .map(|svc| {
            json!({
                "targets": [format!("127.0.0.1:{}", svc.local_admin_port())],
                "labels": {
                    "namespace": NAMESPACE,
                    "store": STORE,
                    "service": svc.name(),
                    "pod": svc.package(),
                },
            })
        })
        .collect();
    let config = json!({
        "global": {
            "scrape_interval": interval_text,
            "scrape_timeout": timeout,
            "evaluation_interval": interval_text,
        },
        "rule_files": [rule_file],
        "scrape_configs": [{
            "job_name": JOB,
            "metrics_path": admin::METRICS_PATH,
            "static_configs": targets,
        }],
    });
    serde_json::to_string_pretty(&config).context("writing the Prometheus configuration")
}

/// The `prometheus` program on PATH, if any.
pub fn binary() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("prometheus"))
        .find(|path| path.is_file())
}

/// What a Prometheus is started with.
pub struct Setup<'a> {
    /// The `prometheus` program.
    pub binary: &'a Path,
    /// Where the configuration and the rules are written.
    pub config_dir: PathBuf,
    /// The rule file's text.
    pub rules: String,
    /// Scrape and evaluation interval.
    pub interval: Duration,
    /// The address to listen on.
    pub listen: &'static str,
    /// Where its output goes.
    pub logs: Logs<'a>,
}

/// A Prometheus this task started, its data in a temporary folder removed
/// when it stops.
pub struct Prometheus {
    running: Running,
    data_dir: PathBuf,
    listen: &'static str,
    client: reqwest::Client,
}

impl Prometheus {
    /// Writes the configuration and rules into `setup.config_dir` and starts
    /// Prometheus, returning once it answers ready.
    pub async fn start(setup: Setup<'_>) -> Result<Self> {
        if TcpListener::bind(setup.listen).is_err() {
            bail!(
                "{} is in use (another Prometheus? Debian's package starts a `prometheus` service where systemd runs: `sudo systemctl disable --now prometheus`)",
                setup.listen
            );
        }
        std::fs::create_dir_all(&setup.config_dir)
            .with_context(|| format!("creating {}", setup.config_dir.display()))?;
        let rule_file = setup.config_dir.join("rules.yaml");
        std::fs::write(&rule_file, &setup.rules)
            .with_context(|| format!("writing {}", rule_file.display()))?;
        let config_file = setup.config_dir.join("prometheus.yml");
        std::fs::write(&config_file, config(setup.interval, &rule_file)?)
            .with_context(|| format!("writing {}", config_file.display()))?;

        let data_dir = std::env::temp_dir().join(format!(
            "storekeeper-prometheus-{}-{}",
            std::process::id(),
            setup.listen.replace([':', '.'], "-")
        ));
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)
                .with_context(|| format!("emptying {}", data_dir.display()))?;
        }
        let mut command = Command::new(setup.binary);
        command
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg(format!("--web.listen-address={}", setup.listen))
            .arg("--log.level=warn")
            .current_dir(&setup.config_dir);
        let running = Running::spawn("prometheus", command, setup.logs)?;
        let mut prometheus = Self {
            running,
            data_dir,
            listen: setup.listen,
            client: reqwest::Client::new(),
        };
        if let Err(err) = prometheus.wait_ready().await {
            prometheus.stop().await?;
            return Err(err);
        }
        Ok(prometheus)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let url = self.url("/-/ready");
        for _ in 0..60 {
            self.running.ensure_alive()?;
            if let Ok(resp) = self
                .client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && resp.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("Prometheus was not ready within 30 s ({url})")
    }

    /// The URL of `path` on this Prometheus.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// The URL of the alerts page: Debian's build serves only the classic
    /// UI, under `/classic/`; an upstream build serves `/alerts`.
    pub async fn alerts_page(&self) -> String {
        let classic = self.url("/classic/alerts");
        match self.client.get(&classic).send().await {
            Ok(resp) if resp.status().is_success() => classic,
            _ => self.url("/alerts"),
        }
    }

    async fn api<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T> {
        let url = self.url(path);
        let body: ApiResponse<T> = self
            .client
            .get(&url)
            .query(query)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .with_context(|| format!("asking {url}"))?
            .error_for_status()
            .with_context(|| format!("asking {url}"))?
            .json()
            .await
            .with_context(|| format!("reading {url}"))?;
        match body.data {
            Some(data) if body.status == "success" => Ok(data),
            _ => bail!(
                "{url} answered {}: {}",
                body.status,
                body.error.unwrap_or_default()
            ),
        }
    }

    /// An instant query's samples (`/api/v1/query`).
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>> {
        let data: QueryData = self.api("/api/v1/query", &[("query", promql)]).await?;
        if data.result_type != "vector" {
            bail!("`{promql}` is a {}, not a vector", data.result_type);
        }
        Ok(data.result)
    }

    /// The alerts pending or firing (`/api/v1/alerts`).
    pub async fn alerts(&self) -> Result<Vec<Alert>> {
        let data: AlertsData = self.api("/api/v1/alerts", &[]).await?;
        Ok(data.alerts)
    }

    /// Stops Prometheus and removes its data.
    pub async fn stop(self) -> Result<()> {
        self.running.stop().await?;
        std::fs::remove_dir_all(&self.data_dir)
            .or_else(|err| {
                if err.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(err)
                }
            })
            .with_context(|| format!("removing {}", self.data_dir.display()))
    }
}

/// The envelope of every Prometheus HTTP API answer.
#[derive(Deserialize)]
struct ApiResponse<T> {
    status: String,
    data: Option<T>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: Vec<Sample>,
}

/// One series of an instant vector.
#[derive(Debug, Deserialize)]
pub struct Sample {
    /// Its labels.
    pub metric: std::collections::BTreeMap<String, String>,
    /// Evaluation time and value (a string, as Prometheus sends it).
    pub value: (f64, String),
}

#[derive(Deserialize)]
struct AlertsData {
    alerts: Vec<Alert>,
}

/// An active alert.
#[derive(Debug, Deserialize)]
pub struct Alert {
    /// Its labels, `alertname` among them.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `pending` or `firing`.
    pub state: String,
}

impl Alert {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    fn describe(&self) -> String {
        format!(
            "{}{{service=\"{}\"}} {}",
            self.label("alertname"),
            self.label("service"),
            self.state
        )
    }
}

/// Starts `cargo xtask up`'s Prometheus next to the local shop, installing
/// Debian's package first when `prometheus` is missing.
pub async fn start_for_up() -> Result<Prometheus> {
    let binary = if let Some(binary) = binary() {
        binary
    } else {
        crate::local_deps::deps(&["--prometheus"]).await?;
        binary().context(
            "`prometheus` is still not on PATH after bootstrap/local/deps.sh --prometheus",
        )?
    };
    Prometheus::start(Setup {
        binary: &binary,
        config_dir: layout::state_dir().join("prometheus"),
        rules: rules(),
        interval: INTERVAL,
        listen: LISTEN,
        logs: Logs::Terminal,
    })
    .await
}

/// `cargo xtask prometheus-check`: a throw-away stack and a Prometheus
/// scraping it every second with a copy of the rules whose `for:` is two
/// seconds; every service must be scraped (`up == 1`), and the target-down
/// and service-down alerts must not fire until payment-service stops, then
/// fire for it. Without `prometheus` on PATH it fails under CI (`CI`
/// set) and is skipped with a note elsewhere.
pub async fn check() -> Result<()> {
    let Some(binary) = binary() else {
        if std::env::var_os("CI").is_some() {
            bail!(
                "`prometheus` is not on PATH; CI must have it (bootstrap/local/deps.sh --prometheus installs Debian's prometheus package)"
            );
        }
        println!(
            "note: `prometheus` is not on PATH, so the local Prometheus check was skipped; `bootstrap/local/deps.sh --prometheus` installs it"
        );
        return Ok(());
    };
    let started = Instant::now();
    let logs = stack::log_dir("prometheus-check-logs")?;
    let options = Options {
        release: false,
        database_prefix: "promcheck_",
        fresh_databases: true,
        logs: Logs::Folder(&logs),
    };
    let mut stack = match Stack::start(&options).await {
        Ok(stack) => stack,
        Err(err) => {
            stack::print_log_tails(&logs);
            return Err(err);
        }
    };
    println!(
        "prometheus-check: the stack is up after {:.0?}",
        started.elapsed()
    );
    let prometheus = match Prometheus::start(Setup {
        binary: &binary,
        config_dir: logs.join("config"),
        rules: with_short_for(&rules(), CHECK_FOR),
        interval: CHECK_INTERVAL,
        listen: CHECK_LISTEN,
        logs: Logs::Folder(&logs),
    })
    .await
    {
        Ok(prometheus) => prometheus,
        Err(err) => {
            stack.stop().await?;
            let log = logs.join("prometheus.log");
            return Err(err.context(format!("Prometheus's log is {}", log.display())));
        }
    };
    let outcome = scraped_then_alerted(&prometheus, &mut stack).await;
    let prometheus_stopped = prometheus.stop().await;
    stack.stop().await?;
    prometheus_stopped?;
    if let Err(err) = outcome {
        stack::print_log_tails(&logs);
        return Err(err.context(format!(
            "Prometheus's configuration and log are in {}",
            logs.display()
        )));
    }
    println!("prometheus-check passed in {:.0?}", started.elapsed());
    Ok(())
}

/// The check itself, against a running stack and Prometheus.
async fn scraped_then_alerted(prometheus: &Prometheus, stack: &mut Stack) -> Result<()> {
    let started = Instant::now();
    let up = format!("up{{namespace=\"{NAMESPACE}\", store=\"{STORE}\", job=\"{JOB}\"}}");
    let up = &up;
    wait_for("every service scraped (up == 1)", move || async move {
        let samples = prometheus.query(up).await?;
        let missing: Vec<&str> = ShopService::ALL
            .iter()
            .map(|svc| svc.name())
            .filter(|name| {
                !samples.iter().any(|s| {
                    s.metric.get("service").map(String::as_str) == Some(*name) && s.value.1 == "1"
                })
            })
            .collect();
        Ok(if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("not up: {}", missing.join(", ")))
        })
    })
    .await?;
    println!(
        "prometheus-check: all five services are scraped ({:.1?} after Prometheus started)",
        started.elapsed()
    );

    // A few evaluations later the alerts the check waits for must not fire
    // yet, or their firing would prove nothing. Others may: the broker's
    // queues are shared with other tests, whose dead letters this stack's
    // services count too.
    tokio::time::sleep(CHECK_INTERVAL * 3).await;
    let alerts = prometheus.alerts().await?;
    let firing: Vec<&Alert> = alerts
        .iter()
        .filter(|alert| alert.state == "firing")
        .collect();
    let early: Vec<String> = firing
        .iter()
        .filter(|alert| CHECK_ALERTS.contains(&alert.label("alertname")))
        .map(|alert| alert.describe())
        .collect();
    if !early.is_empty() {
        bail!(
            "alerts fire before any service stopped: {}",
            early.join(", ")
        );
    }
    if !firing.is_empty() {
        let others: Vec<String> = firing.iter().map(|alert| alert.describe()).collect();
        println!(
            "prometheus-check: also firing (not part of the check): {}",
            others.join(", ")
        );
    }

    stack.stop_service(CHECK_STOPPED).await?;
    let stopped = Instant::now();
    wait_for(
        "the target-down and service-down alerts",
        move || async move {
            let alerts = prometheus.alerts().await?;
            let missing: Vec<&str> = CHECK_ALERTS
                .into_iter()
                .filter(|name| {
                    !alerts.iter().any(|alert| {
                        alert.state == "firing"
                            && alert.label("alertname") == *name
                            && alert.label("service") == CHECK_STOPPED.name()
                            && alert.label("namespace") == NAMESPACE
                            && alert.label("store") == STORE
                    })
                })
                .collect();
            let seen: Vec<String> = alerts.iter().map(Alert::describe).collect();
            Ok(if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "not firing: {} (active: {})",
                    missing.join(", "),
                    seen.join(", ")
                ))
            })
        },
    )
    .await?;
    println!(
        "prometheus-check: {} fire for {} ({:.1?} after it stopped)",
        CHECK_ALERTS.join(" and "),
        CHECK_STOPPED.name(),
        stopped.elapsed()
    );
    Ok(())
}

/// Polls `probe` every half second for up to 30 s until it reports `Ok(())`;
/// fails with its last reason.
async fn wait_for<F, Fut>(what: &str, mut probe: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<std::result::Result<(), String>>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reason = match probe().await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(reason)) => reason,
            Err(err) => format!("{err:#}"),
        };
        if Instant::now() > deadline {
            bail!("waited 30 s for {what}: {reason}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(interval: Duration) -> Value {
        let text = config(interval, Path::new("/tmp/x/rules.yaml")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn every_service_is_scraped_on_its_local_admin_port_with_the_pod_monitors_labels() {
        let config = parsed(INTERVAL);
        let jobs = config["scrape_configs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0]["metrics_path"], "/metrics");
        let targets = jobs[0]["static_configs"].as_array().unwrap();
        assert_eq!(targets.len(), ShopService::ALL.len());
        for svc in ShopService::ALL {
            let target = targets
                .iter()
                .find(|t| t["labels"]["service"] == svc.name())
                .unwrap_or_else(|| panic!("{svc} is not scraped"));
            assert_eq!(
                target["targets"],
                json!([format!("127.0.0.1:{}", svc.local_admin_port())])
            );
            assert_eq!(
                target["labels"],
                json!({
                    "namespace": "local",
                    "store": "local",
                    "service": svc.name(),
                    "pod": svc.package(),
                })
            );
        }
    }

    #[test]
    fn the_rules_are_loaded_and_the_intervals_are_valid() {
        let config = parsed(INTERVAL);
        assert_eq!(config["rule_files"], json!(["/tmp/x/rules.yaml"]));
        assert_eq!(config["global"]["scrape_interval"], "10s");
        assert_eq!(config["global"]["evaluation_interval"], "10s");
        assert_eq!(config["global"]["scrape_timeout"], "10s");
        // Prometheus refuses a scrape timeout longer than the interval.
        let quick = parsed(Duration::from_secs(1));
        assert_eq!(quick["global"]["scrape_interval"], "1s");
        assert_eq!(quick["global"]["scrape_timeout"], "1s");
        let slow = parsed(Duration::from_secs(30));
        assert_eq!(slow["global"]["scrape_timeout"], "10s");
        assert_eq!(prometheus_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn the_rules_select_the_local_shop() {
        let rules = rules();
        assert!(!rules.contains("$NAMESPACE") && !rules.contains("$STORE"));
        assert!(rules.contains(r#"up{namespace="local", store="local"} == 0"#));
        assert!(rules.contains("alert: StorekeeperServiceDown"));
    }

    fn fors(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.trim_start().starts_with("for: "))
            .map(str::trim)
            .collect()
    }

    #[test]
    fn the_checks_rules_differ_only_in_their_for() {
        let rules = rules();
        let quick = with_short_for(&rules, "2s");
        assert!(fors(&rules).len() >= CHECK_ALERTS.len());
        assert_eq!(fors(&quick).len(), fors(&rules).len());
        assert!(fors(&quick).iter().all(|l| *l == "for: 2s"));
        let others = |text: &str| {
            text.lines()
                .filter(|l| !l.trim_start().starts_with("for: "))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(others(&quick), others(&rules));
        for alert in CHECK_ALERTS {
            assert!(rules.contains(&format!("alert: {alert}\n")), "{alert}");
        }
    }

    /// promtool (Debian's prometheus package) accepts the configuration with
    /// the rules of `up` and with the check's. Without promtool on PATH this
    /// fails under CI and is skipped, with a note, elsewhere.
    #[test]
    fn promtool_accepts_the_configuration_and_both_rule_files() {
        let Some(promtool) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("promtool"))
            .find(|path| path.is_file())
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not on PATH; CI must have it (bootstrap/local/deps.sh --promtool)"
            );
            println!("note: promtool is not on PATH; the generated configuration was not checked");
            return;
        };
        let dir = std::env::temp_dir().join(format!("xtask-promtool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (rules, interval) in [
            (rules(), INTERVAL),
            (with_short_for(&rules(), CHECK_FOR), CHECK_INTERVAL),
        ] {
            let rule_file = dir.join("rules.yaml");
            std::fs::write(&rule_file, rules).unwrap();
            let config_file = dir.join("prometheus.yml");
            std::fs::write(&config_file, config(interval, &rule_file).unwrap()).unwrap();
            let output = std::process::Command::new(&promtool)
                .args(["check", "config"])
                .arg(&config_file)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "promtool check config failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
