//! The managed stack as rendered: what exists, that every pod meets the
//! restricted Pod Security profile, that Prometheus' relabelling gives the
//! labels the rules select by (and promtool accepts the configuration),
//! that Loki's and Grafana's files hold what the pods rely on, that the
//! stack gates no rollout step, and what leaving the mode prunes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use chrono::Utc;
use serde_json::{Value, json};
use storekeeper_contract::env;

use super::*;
use crate::api::{ObservabilityMode, Phase, RolloutStep, Store, TracesSpec};
use crate::fixtures::{converged, store, with_status};
use crate::reconcile::{Observed, plan};
use crate::render::{
    ChildKind, OperatorMetrics, Platform, Rendered, Step, render as render_store, render_on,
};
use crate::rollout::health::assess;
use crate::rollout::{Cluster, steps};

const STACK: [&str; 3] = [prometheus::COMPONENT, loki::COMPONENT, grafana::COMPONENT];
/// The NetworkPolicies that come with the stack.
const STACK_POLICIES: [&str; 4] = [
    "shop-prometheus",
    "shop-loki",
    "shop-grafana",
    "shop-telemetry",
];

fn managed_store() -> Store {
    let mut s = store("shop");
    s.spec.observability.mode = ObservabilityMode::Managed;
    s
}

fn component(o: &Object) -> &str {
    o.value
        .pointer("/metadata/labels/app.kubernetes.io~1name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn find<'a>(r: &'a Rendered, kind: ChildKind, name: &str) -> &'a Object {
    r.objects
        .iter()
        .find(|o| o.kind == kind && o.name == name)
        .unwrap_or_else(|| panic!("no {kind:?} {name}"))
}

fn config_text<'a>(r: &'a Rendered, name: &str, key: &str) -> &'a str {
    find(r, ChildKind::ConfigMap, name).value["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {name} has no {key}"))
}

/// The pod spec of a workload object.
fn pod_spec(o: &Object) -> &Value {
    &o.value["spec"]["template"]["spec"]
}

#[test]
fn managed_runs_the_stack_instead_of_the_prometheus_operator_objects() {
    let r = render_store(&managed_store()).unwrap();
    for kind in [ChildKind::PodMonitor, ChildKind::PrometheusRule] {
        assert!(r.objects.iter().all(|o| o.kind != kind), "{kind:?}");
    }
    find(&r, ChildKind::StatefulSet, "shop-prometheus");
    find(&r, ChildKind::StatefulSet, "shop-loki");
    find(&r, ChildKind::Deployment, "shop-grafana");
    find(&r, ChildKind::Role, "shop-prometheus");
    find(&r, ChildKind::RoleBinding, "shop-prometheus");
    find(&r, ChildKind::ConfigMap, "shop-dashboard");
    for name in STACK_POLICIES {
        find(&r, ChildKind::NetworkPolicy, name);
    }
    for c in STACK {
        let name = format!("shop-{c}");
        for kind in [
            ChildKind::ConfigMap,
            ChildKind::Service,
            ChildKind::ServiceAccount,
        ] {
            find(&r, kind, &name);
        }
    }
    let stack: Vec<&Object> = r
        .objects
        .iter()
        .filter(|o| STACK.contains(&component(o)))
        .collect();
    // ConfigMap, ServiceAccount, Service and workload each; Role, RoleBinding.
    assert_eq!(stack.len(), 3 * 4 + 2, "{stack:#?}");
    for o in &stack {
        assert_eq!(o.step, Step::Foundation, "{}", o.name);
        let meta = &o.value["metadata"];
        assert_eq!(meta["labels"]["app.kubernetes.io/instance"], json!("shop"));
        assert_eq!(
            meta["labels"]["app.kubernetes.io/managed-by"],
            json!("storekeeper")
        );
        assert_eq!(
            meta["ownerReferences"][0]["kind"],
            json!("Store"),
            "{}",
            o.name
        );
    }
    let grafana_secret = r.secrets.iter().find(|s| s.name == "shop-grafana").unwrap();
    assert!(grafana_secret.owned);
    assert_eq!(grafana_secret.kind.keys(), ["password"]);
    let role = &find(&r, ChildKind::Role, "shop-prometheus").value["rules"];
    assert_eq!(
        role,
        &json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}])
    );
    let binding = &find(&r, ChildKind::RoleBinding, "shop-prometheus").value;
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "shop-prometheus", "namespace": "shop"}])
    );
    // Auto renders none of it, nor the Grafana Secret.
    let auto = render_store(&store("shop")).unwrap();
    assert!(auto.objects.iter().all(|o| !STACK.contains(&component(o))));
    assert!(auto.secrets.iter().all(|s| s.name != "shop-grafana"));
}

#[test]
fn every_managed_pod_meets_the_restricted_profile() {
    let r = render_store(&managed_store()).unwrap();
    let workloads: Vec<&Object> = r
        .objects
        .iter()
        .filter(|o| matches!(o.kind, ChildKind::StatefulSet | ChildKind::Deployment))
        .filter(|o| STACK.contains(&component(o)))
        .collect();
    assert_eq!(workloads.len(), 3);
    for w in workloads {
        let spec = pod_spec(w);
        let at = &w.name;
        let sc = &spec["securityContext"];
        assert_eq!(sc["runAsNonRoot"], json!(true), "{at}");
        assert!(sc["runAsUser"].as_i64().is_some_and(|u| u > 0), "{at}");
        assert_eq!(
            sc["seccompProfile"]["type"],
            json!("RuntimeDefault"),
            "{at}"
        );
        for forbidden in ["hostNetwork", "hostPID", "hostIPC"] {
            assert!(spec.get(forbidden).is_none(), "{at}: {forbidden}");
        }
        let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        for v in &volumes {
            let sources: Vec<&String> = v
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "name")
                .collect();
            assert!(
                sources
                    .iter()
                    .all(|k| ["configMap", "emptyDir", "secret"].contains(&k.as_str())),
                "{at}: volume {v}"
            );
        }
        let containers = spec["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1);
        for c in containers {
            let csc = &c["securityContext"];
            assert_eq!(csc["allowPrivilegeEscalation"], json!(false), "{at}");
            assert_eq!(csc["readOnlyRootFilesystem"], json!(true), "{at}");
            assert_eq!(csc["runAsNonRoot"], json!(true), "{at}");
            assert_eq!(csc["capabilities"]["drop"], json!(["ALL"]), "{at}");
            assert!(csc["capabilities"].get("add").is_none(), "{at}");
            assert!(csc.get("privileged").is_none(), "{at}");
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        c["resources"][bound][resource].is_string(),
                        "{at}: {bound}.{resource}"
                    );
                }
            }
            assert!(c["readinessProbe"].is_object(), "{at}");
            assert!(c["livenessProbe"].is_object(), "{at}");
            for p in c["ports"].as_array().unwrap() {
                assert!(p.get("hostPort").is_none(), "{at}");
            }
            // Every mount is a volume of the pod or its claim template.
            let claims: Vec<Value> = w.value["spec"]["volumeClaimTemplates"]
                .as_array()
                .map(|t| t.iter().map(|c| c["metadata"]["name"].clone()).collect())
                .unwrap_or_default();
            for m in c["volumeMounts"].as_array().unwrap() {
                assert!(
                    volumes.iter().any(|v| v["name"] == m["name"]) || claims.contains(&m["name"]),
                    "{at}: mount {m}"
                );
            }
        }
    }
}

/// Prometheus' relabelling of one target, for the rules this config uses:
/// `keep`, `drop` and the default `replace` of one source label, whose
/// regexes are alternations of literal words.
fn relabel(
    rules: &[Value],
    mut labels: BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    for rule in rules {
        let source = rule["source_labels"][0].as_str().unwrap();
        let value = labels.get(source).cloned().unwrap_or_default();
        let regex = rule["regex"].as_str();
        let matches = |re: &str| {
            assert!(
                re.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'|' || b == b'_'),
                "{re}"
            );
            re.split('|').any(|alt| alt == value)
        };
        match rule["action"].as_str().unwrap_or("replace") {
            "keep" if !matches(regex.unwrap()) => return None,
            "drop" if matches(regex.unwrap()) => return None,
            "keep" | "drop" => {}
            "replace" => {
                assert!(
                    regex.is_none() && rule.get("replacement").is_none(),
                    "{rule}"
                );
                let target = rule["target_label"].as_str().unwrap().to_owned();
                labels.insert(target, value);
            }
            other => panic!("unexpected action {other}"),
        }
    }
    labels.retain(|k, _| !k.starts_with("__"));
    Some(labels)
}

/// What Kubernetes service discovery (role pod) says about one container port.
fn target(name: &str, port: &str, phase: &str) -> BTreeMap<String, String> {
    [
        ("__meta_kubernetes_namespace", "shop"),
        ("__meta_kubernetes_pod_name", "shop-order-5d9c7-x2x4q"),
        ("__meta_kubernetes_pod_phase", phase),
        ("__meta_kubernetes_pod_container_port_name", port),
        ("__meta_kubernetes_pod_label_app_kubernetes_io_name", name),
        (
            "__meta_kubernetes_pod_label_app_kubernetes_io_instance",
            "shop",
        ),
        (
            "__meta_kubernetes_pod_label_app_kubernetes_io_part_of",
            "storekeeper",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn prometheus_relabels_to_the_labels_the_unchanged_rules_select_by() {
    let s = managed_store();
    let r = render_store(&s).unwrap();
    let config: Value =
        serde_yaml::from_str(config_text(&r, "shop-prometheus", prometheus::CONFIG_FILE)).unwrap();
    assert_eq!(config["rule_files"], json!([prometheus::RULES_FILE]));
    let job = &config["scrape_configs"][0];
    assert_eq!(job["metrics_path"], json!("/metrics"));
    let sd = &job["kubernetes_sd_configs"][0];
    assert_eq!(sd["role"], json!("pod"));
    assert_eq!(sd["namespaces"]["names"], json!(["shop"]));
    let rules = job["relabel_configs"].as_array().unwrap();

    let kept = relabel(rules, target("order", "metrics", "Running")).unwrap();
    let want: BTreeMap<String, String> = [
        ("namespace", "shop"),
        ("store", "shop"),
        ("service", "order"),
        ("pod", "shop-order-5d9c7-x2x4q"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(kept, want);
    for (name, port, phase) in [
        ("order", "http", "Running"),
        ("postgres", "metrics", "Running"),
        ("order-migrations", "metrics", "Running"),
        ("order", "metrics", "Succeeded"),
    ] {
        assert_eq!(
            relabel(rules, target(name, port, phase)),
            None,
            "{name} {port} {phase}"
        );
    }

    // The rule file is the PrometheusRule's, untouched, and every label
    // the relabelling makes is one its selectors use.
    let file = config_text(&r, "shop-prometheus", prometheus::RULES_FILE);
    let ctx = Ctx::new(&s).unwrap();
    assert_eq!(file, crate::render::observability::rules_file(&ctx));
    assert!(file.contains(r#"namespace="shop", store="shop""#));
    for label in want.keys() {
        assert!(file.contains(label.as_str()), "the rules never use {label}");
    }
}

/// `promtool` on PATH, if any.
fn promtool() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("promtool"))
        .find(|path| path.is_file())
}

#[test]
fn promtool_accepts_the_prometheus_configuration_and_its_rules() {
    let Some(promtool) = promtool() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not on PATH; CI must have it (bootstrap/local/deps.sh --promtool installs Debian's prometheus package)"
        );
        eprintln!(
            "note: promtool is not on PATH, so the managed Prometheus' configuration was not checked; \
             `bootstrap/local/deps.sh --promtool` installs it"
        );
        return;
    };
    for r in [
        render_store(&managed_store()).unwrap(),
        render_on(&managed_store(), &installed()).unwrap(),
    ] {
        check_prometheus_files(&promtool, &r);
    }
}

fn check_prometheus_files(promtool: &PathBuf, r: &Rendered) {
    let config = config_text(r, "shop-prometheus", prometheus::CONFIG_FILE);
    let rules = config_text(r, "shop-prometheus", prometheus::RULES_FILE);
    let (ok, said) = check_config(promtool, config, rules);
    if !ok && said.contains("field kubernetes_sd_configs not found") {
        // Debian's build leaves Kubernetes discovery out; everything else
        // (the relabelling, the rule file) is checked with a static target
        // in its place.
        eprintln!(
            "note: this promtool has no Kubernetes service discovery (Debian's build); \
             checking the configuration with a static target in place of kubernetes_sd_configs"
        );
        let mut value: Value = serde_yaml::from_str(config).unwrap();
        let job = &mut value["scrape_configs"][0];
        job.as_object_mut().unwrap().remove("kubernetes_sd_configs");
        job["static_configs"] = json!([{"targets": ["127.0.0.1:9000"]}]);
        let (ok, said) = check_config(promtool, &serde_yaml::to_string(&value).unwrap(), rules);
        assert!(ok, "promtool check config failed:\n{said}");
        assert!(
            said.contains("rules found"),
            "the rule file was not checked:\n{said}"
        );
        return;
    }
    assert!(ok, "promtool check config failed:\n{said}");
    assert!(
        said.contains("rules found"),
        "the rule file was not checked:\n{said}"
    );
}

/// `promtool check config` on `config` next to `rules`: success, and what it said.
fn check_config(promtool: &PathBuf, config: &str, rules: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!(
        "storekeeper-managed-prometheus-{}-{}",
        std::process::id(),
        &crate::render::object::hash_value(&json!(config))[..12]
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(prometheus::CONFIG_FILE), config).unwrap();
    std::fs::write(dir.join(prometheus::RULES_FILE), rules).unwrap();
    let output = Command::new(promtool)
        .args(["check", "config", prometheus::CONFIG_FILE])
        .current_dir(&dir)
        .output()
        .expect("running promtool");
    let _ = std::fs::remove_dir_all(&dir);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

#[test]
fn loki_configuration_holds_what_the_pod_relies_on() {
    let mut s = managed_store();
    s.spec.observability.managed.retention_days = 7;
    let r = render_store(&s).unwrap();
    let text = config_text(&r, "shop-loki", loki::CONFIG_FILE);
    assert!(!text.contains('$'), "{text}");
    let c: Value = serde_yaml::from_str(text).unwrap();
    assert_eq!(c["auth_enabled"], json!(false));
    assert_eq!(c["server"]["http_listen_port"], json!(loki::PORT));
    assert_eq!(c["common"]["path_prefix"], json!("/loki"));
    assert!(
        c["common"]["storage"]["filesystem"]["chunks_directory"]
            .as_str()
            .unwrap()
            .starts_with("/loki/")
    );
    assert_eq!(
        c["schema_config"]["configs"][0]["object_store"],
        json!("filesystem")
    );
    assert_eq!(c["limits_config"]["retention_period"], json!("168h"));
    assert_eq!(c["compactor"]["retention_enabled"], json!(true));
    assert!(
        c["compactor"]["working_directory"]
            .as_str()
            .unwrap()
            .starts_with("/loki/")
    );
    // The volume is mounted where the configuration keeps everything.
    let sts = find(&r, ChildKind::StatefulSet, "shop-loki");
    let mounts = &pod_spec(sts)["containers"][0]["volumeMounts"];
    assert!(
        mounts
            .as_array()
            .unwrap()
            .contains(&json!({"name": "data", "mountPath": "/loki"}))
    );
    assert_eq!(
        pod_spec(sts)["containers"][0]["args"],
        json!(["-config.file=/etc/loki/loki.yaml"])
    );
    assert_eq!(
        loki::otlp_logs_url(&Ctx::new(&s).unwrap()),
        "http://shop-loki:3100/otlp/v1/logs"
    );
}

/// A minimal INI reader: `[section]` headers, `key = value`, `;` comments.
fn ini(text: &str) -> BTreeMap<(String, String), String> {
    let mut section = String::new();
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not INI: {line}"));
        out.insert(
            (section.clone(), key.trim().to_owned()),
            value.trim().to_owned(),
        );
    }
    out
}

#[test]
fn grafana_files_hold_what_the_pod_relies_on() {
    let r = render_store(&managed_store()).unwrap();
    let settings = ini(config_text(&r, "shop-grafana", grafana::INI_FILE));
    let get = |section: &str, key: &str| {
        settings
            .get(&(section.to_owned(), key.to_owned()))
            .map(String::as_str)
    };
    assert_eq!(get("server", "http_port"), Some("3000"));
    assert_eq!(get("security", "admin_user"), Some(grafana::ADMIN_USER));
    assert_eq!(get("users", "allow_sign_up"), Some("false"));
    assert_eq!(get("auth.anonymous", "enabled"), Some("false"));
    assert_eq!(get("paths", "data"), Some("/var/lib/grafana"));
    assert!(
        settings.keys().all(|(_, k)| k != "admin_password"),
        "no password in the file"
    );

    let sources: Value =
        serde_yaml::from_str(config_text(&r, "shop-grafana", grafana::DATASOURCES_FILE)).unwrap();
    assert_eq!(
        sources["datasources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (
                d["type"].as_str().unwrap(),
                d["url"].as_str().unwrap(),
                d["isDefault"] == json!(true)
            ))
            .collect::<Vec<_>>(),
        [
            ("prometheus", "http://shop-prometheus:9090", true),
            ("loki", "http://shop-loki:3100", false)
        ]
    );
    let providers: Value =
        serde_yaml::from_str(config_text(&r, "shop-grafana", grafana::DASHBOARDS_FILE)).unwrap();
    let dashboards_dir = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();

    let deployment = find(&r, ChildKind::Deployment, "shop-grafana");
    let spec = pod_spec(deployment);
    let container = &spec["containers"][0];
    let mount_of = |volume: &str| {
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == json!(volume))
            .map(|m| m["mountPath"].as_str().unwrap().to_owned())
    };
    let volume = |name: &str| {
        spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == json!(name))
            .unwrap()
            .clone()
    };
    assert_eq!(
        volume("dashboards")["configMap"]["name"],
        json!("shop-dashboard")
    );
    assert_eq!(mount_of("dashboards").as_deref(), Some(dashboards_dir));
    assert_eq!(mount_of("data").as_deref(), get("paths", "data"));
    assert!(volume("data").get("emptyDir").is_some());
    let env: BTreeMap<&str, &Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    assert_eq!(
        env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"],
        json!({"name": "shop-grafana", "key": "password", "optional": false})
    );
    let config_path = env["GF_PATHS_CONFIG"]["value"].as_str().unwrap();
    assert_eq!(
        Some(format!(
            "{}/{}",
            mount_of("config").unwrap(),
            grafana::INI_FILE
        ))
        .as_deref(),
        Some(config_path)
    );
    let provisioning = env["GF_PATHS_PROVISIONING"]["value"].as_str().unwrap();
    assert_eq!(
        mount_of("datasources"),
        Some(format!("{provisioning}/datasources"))
    );
    assert_eq!(
        mount_of("dashboard-providers"),
        Some(format!("{provisioning}/dashboards"))
    );
}

fn env_of(r: &Rendered, deployment: &str) -> BTreeMap<String, Value> {
    pod_spec(find(r, ChildKind::Deployment, deployment))["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["value"].clone()))
        .collect()
}

#[test]
fn services_are_told_where_their_logs_and_spans_go() {
    let services = [
        "shop-user",
        "shop-product",
        "shop-order",
        "shop-payment",
        "shop-storefront",
    ];
    let telemetry = [
        env::OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
        env::OTEL_EXPORTER_OTLP_ENDPOINT,
        env::OTEL_TRACES_SAMPLER_ARG,
    ];
    let auto = render_store(&store("shop")).unwrap();
    for d in services {
        let e = env_of(&auto, d);
        assert!(telemetry.iter().all(|t| !e.contains_key(*t)), "{d}");
    }
    assert!(auto.objects.iter().all(|o| o.name != "shop-telemetry"));

    let mut s = managed_store();
    s.spec.observability.traces = Some(TracesSpec {
        endpoint: "http://collector.observability:4318".into(),
        sample_ratio: Some("0.25".into()),
    });
    let r = render_store(&s).unwrap();
    for d in services {
        let e = env_of(&r, d);
        assert_eq!(
            e[env::OTEL_EXPORTER_OTLP_LOGS_ENDPOINT],
            json!("http://shop-loki:3100/otlp/v1/logs"),
            "{d}"
        );
        assert_eq!(
            e[env::OTEL_EXPORTER_OTLP_ENDPOINT],
            json!("http://collector.observability:4318"),
            "{d}"
        );
        assert_eq!(e[env::OTEL_TRACES_SAMPLER_ARG], json!("0.25"), "{d}");
    }
    let egress = &find(&r, ChildKind::NetworkPolicy, "shop-telemetry").value["spec"]["egress"];
    assert_eq!(
        egress[0]["ports"],
        json!([{"port": 3100, "protocol": "TCP"}])
    );
    assert_eq!(
        egress[0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        json!("loki")
    );
    assert_eq!(
        egress[1]["ports"],
        json!([{"port": 4318, "protocol": "TCP"}])
    );

    // Traces alone need no stack: the endpoint, and only its port opened.
    let mut traced = store("shop");
    traced.spec.observability.traces = Some(TracesSpec {
        endpoint: "https://otlp.example.com".into(),
        sample_ratio: None,
    });
    let r = render_store(&traced).unwrap();
    let e = env_of(&r, "shop-order");
    assert_eq!(
        e[env::OTEL_EXPORTER_OTLP_ENDPOINT],
        json!("https://otlp.example.com")
    );
    assert!(!e.contains_key(env::OTEL_TRACES_SAMPLER_ARG));
    assert!(!e.contains_key(env::OTEL_EXPORTER_OTLP_LOGS_ENDPOINT));
    let egress = &find(&r, ChildKind::NetworkPolicy, "shop-telemetry").value["spec"]["egress"];
    assert_eq!(egress.as_array().unwrap().len(), 1);
    assert_eq!(
        egress[0]["ports"],
        json!([{"port": 443, "protocol": "TCP"}])
    );
}

#[test]
fn the_policies_allow_the_flows_the_stack_needs_and_no_more() {
    let r = render_store(&managed_store()).unwrap();
    let spec = |name: &str| find(&r, ChildKind::NetworkPolicy, name).value["spec"].clone();
    let components = |peers: &Value| -> BTreeSet<String> {
        peers
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let sel = &p["podSelector"];
                match sel["matchLabels"]["app.kubernetes.io/name"].as_str() {
                    Some(c) => c.to_owned(),
                    None if sel["matchExpressions"].is_array() => "services".to_owned(),
                    None if p.get("ipBlock").is_some() => "anywhere".to_owned(),
                    None => "namespace".to_owned(),
                }
            })
            .collect()
    };
    let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();

    let p = spec("shop-prometheus");
    assert_eq!(p["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(components(&p["ingress"][0]["from"]), set(&["grafana"]));
    assert_eq!(
        p["ingress"][0]["ports"],
        json!([{"port": 9090, "protocol": "TCP"}])
    );
    assert_eq!(components(&p["egress"][0]["to"]), set(&["services"]));
    assert_eq!(
        p["egress"][0]["ports"],
        json!([{"port": 9000, "protocol": "TCP"}])
    );
    assert_eq!(components(&p["egress"][1]["to"]), set(&["anywhere"]));
    assert_eq!(
        p["egress"][1]["ports"],
        json!([{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}])
    );

    let l = spec("shop-loki");
    assert_eq!(
        components(&l["ingress"][0]["from"]),
        set(&["services", "grafana"])
    );
    assert_eq!(
        l["ingress"][0]["ports"],
        json!([{"port": 3100, "protocol": "TCP"}])
    );
    assert!(l.get("egress").is_none(), "Loki reaches nothing but DNS");

    let g = spec("shop-grafana");
    assert_eq!(components(&g["ingress"][0]["from"]), set(&["namespace"]));
    assert_eq!(components(&g["egress"][0]["to"]), set(&["prometheus"]));
    assert_eq!(components(&g["egress"][1]["to"]), set(&["loki"]));
    assert_eq!(g["egress"].as_array().unwrap().len(), 2);

    // The five services' selector names exactly the five.
    let services = &l["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0];
    assert_eq!(
        services["values"],
        json!(["user", "product", "payment", "order", "storefront"])
    );
}

/// An operator installed by the chart, which names its metrics Service.
fn installed() -> Platform {
    Platform {
        operator_metrics: Some(OperatorMetrics {
            namespace: "storekeeper-system".into(),
            service: "storekeeper-metrics".into(),
            port: 8080,
        }),
    }
}

#[test]
fn prometheus_scrapes_the_operators_series_of_its_store_where_the_operator_says() {
    let jobs = |r: &Rendered| -> Value {
        serde_yaml::from_str::<Value>(config_text(r, "shop-prometheus", prometheus::CONFIG_FILE))
            .unwrap()["scrape_configs"]
            .clone()
    };
    let egress = |r: &Rendered| {
        find(r, ChildKind::NetworkPolicy, "shop-prometheus").value["spec"]["egress"].clone()
    };

    let with_operator = render_on(&managed_store(), &installed()).unwrap();
    let operator = &jobs(&with_operator)[1];
    assert_eq!(
        operator,
        &json!({
            "job_name": "storekeeper-operator",
            "metrics_path": "/metrics",
            "params": {"namespace": ["shop"], "store": ["shop"]},
            "static_configs": [{"targets": ["storekeeper-metrics.storekeeper-system.svc:8080"]}],
        })
    );
    assert_eq!(
        egress(&with_operator)[2],
        json!({
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "storekeeper-system"}}}],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        })
    );

    // Without the operator's address (`storekeeper render`, an operator
    // run outside the chart) nothing about it is rendered.
    let alone = render_store(&managed_store()).unwrap();
    assert_eq!(jobs(&alone).as_array().unwrap().len(), 1);
    assert_eq!(egress(&alone).as_array().unwrap().len(), 2);
    // And a Store without the managed stack is the same either way.
    assert_eq!(
        render_on(&store("shop"), &installed()).unwrap(),
        render_store(&store("shop")).unwrap()
    );
}

/// The converged cluster of `s` with the stack's workloads never ready and
/// Grafana's pod crash-looping.
fn stack_down(s: &Store) -> (Observed, Vec<Value>) {
    let mut observed = converged(s);
    let r = render_store(s).unwrap();
    for o in r
        .objects
        .iter()
        .filter(|o| matches!(o.kind, ChildKind::StatefulSet | ChildKind::Deployment))
    {
        if STACK.contains(&component(o)) {
            let mut live = observed.get(o.kind, &o.name).unwrap().clone();
            live["status"] = json!({"observedGeneration": 1, "replicas": 1});
            observed.insert(o.kind, live);
        }
    }
    let pod = json!({
        "metadata": {"name": "shop-grafana-7c9-abcde", "creationTimestamp": Utc::now().to_rfc3339(),
            "labels": {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": "shop"}},
        "status": {"containerStatuses": [{"name": "grafana", "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
    });
    (observed, vec![pod])
}

/// The objects of `observed` that `keep` keeps.
fn only(observed: &Observed, keep: impl Fn(ChildKind, &str, &Value) -> bool) -> Observed {
    let mut out = Observed::default();
    for (kind, name, v) in observed.iter() {
        if keep(kind, name, v) {
            out.insert(kind, v.clone());
        }
    }
    out
}

#[test]
fn the_stack_never_holds_nor_fails_a_step() {
    let s = managed_store();
    let r = render_store(&s).unwrap();
    let (observed, pods) = stack_down(&s);
    let cluster = Cluster {
        children: &observed,
        pods: &pods,
        replica_sets: &[],
    };
    let since = Utc::now() - chrono::TimeDelta::minutes(1);
    let foundation = assess(steps::objects(&r, RolloutStep::Foundation), &cluster, since);
    assert!(foundation.healthy(), "{foundation:?}");
    // Even with none of the stack created (its apply refused) the step goes on...
    let no_stack = only(&observed, |_, _, v| {
        !STACK.contains(
            &v["metadata"]["labels"]["app.kubernetes.io/name"]
                .as_str()
                .unwrap_or_default(),
        )
    });
    let cluster_without = Cluster {
        children: &no_stack,
        ..cluster
    };
    assert!(
        assess(
            steps::objects(&r, RolloutStep::Foundation),
            &cluster_without,
            since
        )
        .healthy()
    );
    // ...while a missing shop object still holds it.
    let no_config = only(&observed, |kind, name, _| {
        !(kind == ChildKind::ConfigMap && name == "shop-config")
    });
    let held = assess(
        steps::objects(&r, RolloutStep::Foundation),
        &Cluster {
            children: &no_config,
            ..cluster
        },
        since,
    );
    assert!(!held.healthy());
    // And the Store is Ready, five of five, with its monitoring down.
    let status = with_status(s, &observed).status.unwrap();
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(status.ready.as_deref(), Some("5/5"));
}

#[test]
fn leaving_managed_prunes_the_stack_and_nothing_else() {
    let s = managed_store();
    let uid = "0b1c2d3e-0000-4000-8000-000000000001";
    let observed = converged(&s);
    let stack: BTreeSet<(ChildKind, String)> = render_store(&s)
        .unwrap()
        .objects
        .iter()
        .filter(|o| {
            STACK.contains(&component(o))
                || (o.kind == ChildKind::NetworkPolicy && STACK_POLICIES.contains(&o.name.as_str()))
        })
        .map(|o| (o.kind, o.name.clone()))
        .collect();
    for (mode, extra) in [
        (ObservabilityMode::Auto, vec![]),
        (
            ObservabilityMode::Off,
            vec![(ChildKind::ConfigMap, "shop-dashboard".to_owned())],
        ),
    ] {
        let mut after = s.clone();
        after.spec.observability.mode = mode;
        let desired = render_store(&after).unwrap();
        let p = plan(&desired, &observed, uid, false);
        let pruned: BTreeSet<(ChildKind, String)> = p.prune.into_iter().collect();
        let mut want = stack.clone();
        want.extend(extra);
        assert_eq!(pruned, want, "{mode:?}");
        // The Grafana Secret is a generated Secret: kept (never pruned), owned
        // by the Store, reused if the mode comes back.
        assert!(!pruned.iter().any(|(k, _)| *k == ChildKind::Secret));
    }
}

#[test]
fn bad_traces_and_retention_are_refused_naming_the_field() {
    let mut s = managed_store();
    s.spec.observability.managed.retention_days = 0;
    s.spec.observability.managed.loki_storage = "10GB".into();
    s.spec.observability.traces = Some(TracesSpec {
        endpoint: "collector:4318".into(),
        sample_ratio: Some("1.5".into()),
    });
    let fields: Vec<String> = crate::validate::validate(&s)
        .unwrap_err()
        .problems
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(
        fields,
        [
            "spec.observability.managed.retentionDays",
            "spec.observability.managed.lokiStorage",
            "spec.observability.traces.endpoint",
            "spec.observability.traces.sampleRatio",
        ]
    );
    assert!(render_store(&s).is_err(), "nothing is rendered");
    s.spec.observability.managed.retention_days = 30;
    s.spec.observability.managed.loki_storage = "20Gi".into();
    s.spec.observability.traces = Some(TracesSpec {
        endpoint: "http://collector.observability:4318".into(),
        sample_ratio: Some("0.0001".into()),
    });
    assert_eq!(crate::validate::validate(&s), Ok(()));
}
