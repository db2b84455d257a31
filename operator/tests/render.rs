//! Rendering tests: snapshots of the examples, each service's environment
//! and network policy as the contract crate describes the shop, and
//! invariants over hundreds of generated Stores.

// Helpers outside `#[test]` functions may panic too: this whole file is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use example_stores::example;

use kube::ResourceExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use storekeeper::api::{External, Managed, Store, TlsSpec};
use storekeeper::render::object::{APPLIED_HASH, hash_value};
use storekeeper::render::{ChildKind, Rendered, render, to_yaml};
use storekeeper_contract::{ShopService, labels};

mod example_stores;

#[test]
fn examples_render_as_snapshotted() {
    for name in ["store", "full", "delegated"] {
        let mut rendered = render(&example(name)).unwrap();
        // The alert rules and the dashboard are files of their own, with
        // tests of their own (observability_assets.rs): here only where
        // they go, not what they say.
        for o in &mut rendered.objects {
            let value = std::sync::Arc::make_mut(&mut o.value);
            let content = match o.kind {
                ChildKind::PrometheusRule => value.pointer_mut("/spec/groups"),
                ChildKind::ConfigMap if o.name.ends_with("-dashboard") => {
                    value.pointer_mut("/data")
                }
                _ => None,
            };
            if let Some(content) = content {
                *content = json!("<operator/assets/observability>");
                value["metadata"]["annotations"][APPLIED_HASH] = json!("<hash of the assets>");
            }
        }
        insta::assert_snapshot!(name, to_yaml(&rendered).unwrap());
    }
}

fn workload<'a>(r: &'a Rendered, kind: ChildKind, name: &str) -> &'a Value {
    &r.objects
        .iter()
        .find(|o| o.kind == kind && o.name == name)
        .unwrap()
        .value
}

fn env_names(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The Secret and key a `*_FILE` variable's file is projected from, checking
/// the file is in a read-only mount of the pod's credentials volume.
fn credential(deployment: &Value, file_var: &str) -> (String, String) {
    let path = env_value(deployment, file_var);
    let path = path.as_str().unwrap();
    let (dir, file) = path.rsplit_once('/').unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == json!(dir))
        .unwrap_or_else(|| panic!("{path} is in no mount"));
    assert_eq!(mount["readOnly"], json!(true), "{path}");
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["projected"]["defaultMode"], json!(0o440));
    volume["projected"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|source| {
            let secret = &source["secret"];
            secret["items"].as_array()?.iter().find_map(|item| {
                (item["path"] == json!(file)).then(|| {
                    (
                        secret["name"].as_str().unwrap().to_owned(),
                        item["key"].as_str().unwrap().to_owned(),
                    )
                })
            })
        })
        .unwrap_or_else(|| panic!("{path} is projected from no Secret"))
}

/// The `value` of a plain env var, or the whole entry for a `valueFrom` one.
fn env_value(deployment: &Value, name: &str) -> Value {
    let entry = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == json!(name))
        .unwrap_or_else(|| panic!("no env var {name}"));
    entry.get("value").cloned().unwrap_or_else(|| entry.clone())
}

/// Each service gets exactly the connections it uses and the `*_URL` of
/// exactly the services it calls: order-service reaches payment-service only
/// through events, only user and product use Redis, and only product, payment
/// and order use the broker.
#[test]
fn service_environment_follows_the_contract() {
    let r = render(&example("store")).unwrap();
    let expected: [(&str, &[&str]); 5] = [
        (
            "shop-user",
            &[
                "PORT",
                "ADMIN_PORT",
                "DATABASE_URL",
                "DATABASE_MIGRATE_ON_START",
                "REDIS_URL",
                "ADMIN_EMAIL",
                "DATABASE_PASSWORD_FILE",
                "REDIS_PASSWORD_FILE",
                "TOKEN_PUBLIC_KEY_FILE",
                "TOKEN_PRIVATE_KEY_FILE",
                "ADMIN_PASSWORD_FILE",
                "OTEL_RESOURCE_ATTRIBUTES",
            ],
        ),
        (
            "shop-product",
            &[
                "PORT",
                "ADMIN_PORT",
                "DATABASE_URL",
                "DATABASE_MIGRATE_ON_START",
                "REDIS_URL",
                "AMQP_URL",
                "DATABASE_PASSWORD_FILE",
                "REDIS_PASSWORD_FILE",
                "AMQP_PASSWORD_FILE",
                "TOKEN_PUBLIC_KEY_FILE",
                "OTEL_RESOURCE_ATTRIBUTES",
            ],
        ),
        (
            "shop-payment",
            &[
                "PORT",
                "ADMIN_PORT",
                "DATABASE_URL",
                "DATABASE_MIGRATE_ON_START",
                "AMQP_URL",
                "DATABASE_PASSWORD_FILE",
                "AMQP_PASSWORD_FILE",
                "TOKEN_PUBLIC_KEY_FILE",
                "OTEL_RESOURCE_ATTRIBUTES",
            ],
        ),
        (
            "shop-order",
            &[
                "PORT",
                "ADMIN_PORT",
                "DATABASE_URL",
                "DATABASE_MIGRATE_ON_START",
                "AMQP_URL",
                "DATABASE_PASSWORD_FILE",
                "AMQP_PASSWORD_FILE",
                "TOKEN_PUBLIC_KEY_FILE",
                "OTEL_RESOURCE_ATTRIBUTES",
                "PRODUCT_URL",
            ],
        ),
        (
            "shop-storefront",
            &[
                "PORT",
                "ADMIN_PORT",
                "COOKIE_SECURE",
                "TOKEN_PUBLIC_KEY_FILE",
                "SESSION_KEY_FILE",
                "OTEL_RESOURCE_ATTRIBUTES",
                "USER_URL",
                "PRODUCT_URL",
                "PAYMENT_URL",
                "ORDER_URL",
            ],
        ),
    ];
    for (name, env) in expected {
        assert_eq!(
            env_names(workload(&r, ChildKind::Deployment, name)),
            env,
            "{name}"
        );
    }
}

#[test]
fn service_environment_values() {
    let r = render(&example("store")).unwrap();
    let user = workload(&r, ChildKind::Deployment, "shop-user");
    assert_eq!(env_value(user, "PORT"), json!("3001"));
    assert_eq!(env_value(user, "ADMIN_PORT"), json!("9000"));
    assert_eq!(
        env_value(user, "DATABASE_URL"),
        json!("postgres://users@shop-postgres:5432/users")
    );
    assert_eq!(
        credential(user, "DATABASE_PASSWORD_FILE"),
        ("shop-postgres".to_owned(), "users".to_owned()),
        "the kit puts the password into the URL"
    );
    assert_eq!(
        env_value(user, "REDIS_URL"),
        json!("redis://shop-redis:6379")
    );
    assert_eq!(
        env_value(user, "ADMIN_EMAIL"),
        json!("admin@shop.example.com")
    );
    let order = workload(&r, ChildKind::Deployment, "shop-order");
    assert_eq!(
        env_value(order, "PRODUCT_URL"),
        json!("http://shop-product:3002")
    );
    assert_eq!(
        env_value(order, "AMQP_URL"),
        json!("amqp://storekeeper@shop-rabbitmq:5672/%2f")
    );
    let front = workload(&r, ChildKind::Deployment, "shop-storefront");
    assert_eq!(
        credential(front, "SESSION_KEY_FILE"),
        ("shop-session".to_owned(), "session-key".to_owned()),
        "every replica reads one generated cookie key"
    );
    assert_eq!(
        env_value(front, "OTEL_RESOURCE_ATTRIBUTES"),
        json!("k8s.namespace.name=shop,service.namespace=shop")
    );
    assert_eq!(env_value(front, "COOKIE_SECURE"), json!("false"), "no TLS");
    let tls = render(&example("full")).unwrap();
    let front = workload(&tls, ChildKind::Deployment, "acme-storefront");
    assert_eq!(env_value(front, "COOKIE_SECURE"), json!("true"));
    let cm = workload(&r, ChildKind::ConfigMap, "shop-config");
    assert_eq!(cm["data"]["LOG_FORMAT"], json!("json"));
    assert_eq!(
        cm["data"]["TRUSTED_PROXY_HOPS"],
        json!("1"),
        "every service is one hop behind the ingress or the storefront"
    );
    let c = &user["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], json!("/healthz"));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], json!("/readyz"));
    assert_eq!(c["ports"][1]["containerPort"], json!(9000));
}

/// Keys, passwords and URLs with passwords reach the shop's pods as files
/// only: no service or migration container has a `secretKeyRef`.
#[test]
fn no_credential_is_in_a_shop_pods_environment() {
    for name in ["store", "full", "delegated"] {
        let r = render(&example(name)).unwrap();
        let shop = r.objects.iter().filter(|o| {
            let component = o.value["metadata"]["labels"][labels::NAME]
                .as_str()
                .unwrap_or("");
            ShopService::ALL.iter().any(|s| s.name() == component)
                || component.ends_with("-migrations")
        });
        let mut pods = 0;
        for o in shop {
            let Some(pod) = o.value.pointer("/spec/template/spec") else {
                continue;
            };
            pods += 1;
            let env = pod["containers"][0]["env"].to_string();
            assert!(!env.contains("secretKeyRef"), "{name}: {}: {env}", o.name);
        }
        assert_eq!(pods, 9, "{name}: five services and four migration Jobs");
    }
}

/// The components a list of NetworkPolicy peers selects by pod label.
fn peer_components(peers: &Value) -> Vec<String> {
    peers
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.pointer("/podSelector/matchLabels")?[labels::NAME].as_str())
        .map(str::to_owned)
        .collect()
}

/// Every component a policy lets its pods reach.
fn egress_components(policy: &Value) -> Vec<String> {
    policy["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| peer_components(&rule["to"]))
        .collect()
}

/// A policy lets through the same flows the environment configures: callers
/// to callees as `calls()` says, and each service to the data stores it uses.
#[test]
fn network_policies_follow_the_contract() {
    let r = render(&example("store")).unwrap();
    let policy = |name: &str| workload(&r, ChildKind::NetworkPolicy, name);
    let expected: [(&str, &[&str], &[&str]); 5] = [
        ("shop-user", &["storefront"], &["postgres", "redis"]),
        (
            "shop-product",
            &["order", "storefront"],
            &["postgres", "redis", "rabbitmq"],
        ),
        ("shop-payment", &["storefront"], &["postgres", "rabbitmq"]),
        (
            "shop-order",
            &["storefront"],
            &["product", "postgres", "rabbitmq"],
        ),
        (
            "shop-storefront",
            &[],
            &["user", "product", "payment", "order"],
        ),
    ];
    for (name, callers, egress) in expected {
        let p = policy(name);
        assert_eq!(
            peer_components(&p["spec"]["ingress"][0]["from"]),
            callers,
            "{name}: callers"
        );
        assert_eq!(egress_components(p), egress, "{name}: egress");
    }
    for (name, clients) in [
        (
            "shop-postgres",
            &["user", "product", "payment", "order"][..],
        ),
        ("shop-redis", &["user", "product"]),
        ("shop-rabbitmq", &["product", "payment", "order"]),
    ] {
        assert_eq!(
            peer_components(&policy(name)["spec"]["ingress"][0]["from"]),
            clients,
            "{name}: clients"
        );
    }
}

#[test]
fn external_stores_read_urls_from_the_users_secret() {
    let r = render(&example("full")).unwrap();
    let user = workload(&r, ChildKind::Deployment, "acme-user");
    assert_eq!(
        credential(user, "DATABASE_URL_FILE"),
        ("acme-postgres-urls".to_owned(), "users".to_owned())
    );
    assert!(!env_names(user).contains(&"DATABASE_URL".to_owned()));
    assert!(
        !r.objects
            .iter()
            .any(|o| o.name == "acme-postgres" && o.kind == ChildKind::StatefulSet)
    );
    assert!(!r.secrets.iter().any(|s| s.name == "acme-postgres"));
}

#[test]
fn ingress_routes_follow_the_contract() {
    let r = render(&example("full")).unwrap();
    let ing = workload(&r, ChildKind::Ingress, "acme-ingress");
    let routes: Vec<(String, String)> = ing["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_owned(),
                p["backend"]["service"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("/api/users", "acme-user"),
        ("/api/products", "acme-product"),
        ("/api/categories", "acme-product"),
        ("/api/cart", "acme-order"),
        ("/api/orders", "acme-order"),
        ("/api/payments", "acme-payment"),
        ("/", "acme-storefront"),
    ];
    for (path, svc) in want {
        assert!(
            routes.contains(&(path.to_owned(), svc.to_owned())),
            "{path} -> {svc} missing"
        );
    }
    assert_eq!(ing["spec"]["tls"][0]["secretName"], json!("shop-acme-tls"));
    assert_eq!(ing["spec"]["ingressClassName"], json!("nginx"));
}

// --- invariants over generated Stores --------------------------------------

fn label(rng: &mut StdRng, max: usize) -> String {
    let len = rng.gen_range(1..=max);
    let chars: Vec<char> = "abcdefghijklmnopqrstuvwxyz0123456789-".chars().collect();
    let mut s: String = (0..len).map(|_| *chars.choose(rng).unwrap()).collect();
    s.replace_range(0..1, "s");
    if s.ends_with('-') {
        s.pop();
        s.push('x');
    }
    s
}

fn generated(seed: u64) -> Store {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut store = example("store");
    let name = label(&mut rng, 40);
    store.metadata.name = Some(name.clone());
    store.metadata.namespace = Some(label(&mut rng, 30));
    store.metadata.uid = Some(format!("uid-{seed}"));
    let spec = &mut store.spec;
    spec.version = ["1.0.0", "2.3.4-rc.1", "v9", "sha-0123abc"]
        .choose(&mut rng)
        .unwrap()
        .to_string();
    spec.ingress.host = format!("{}.example.com", label(&mut rng, 20));
    if rng.gen_bool(0.5) {
        spec.ingress.tls = Some(TlsSpec {
            secret_name: format!("{}-tls", label(&mut rng, 10)),
            issuer: None,
        });
    }
    for service in ShopService::ALL {
        let s = match service {
            ShopService::User => &mut spec.services.user,
            ShopService::Product => &mut spec.services.product,
            ShopService::Order => &mut spec.services.order,
            ShopService::Payment => &mut spec.services.payment,
            ShopService::Storefront => &mut spec.services.storefront,
        };
        s.replicas = rng.gen_range(1..=20);
        if rng.gen_bool(0.3) {
            s.version = Some("3.1.4".into());
        }
        if rng.gen_bool(0.2) {
            s.image = Some("registry.example.com:5000/shop/custom".into());
        }
        s.resources.requests.cpu = ["50m", "1", "0.5"].choose(&mut rng).unwrap().to_string();
    }
    for (i, ds) in [&mut spec.postgres, &mut spec.redis, &mut spec.rabbitmq]
        .into_iter()
        .enumerate()
    {
        if rng.gen_bool(0.4) {
            ds.managed = None;
            ds.external = Some(External {
                secret_name: format!("ext-{i}"),
            });
        } else {
            ds.managed = Some(Managed {
                storage: "10Gi".into(),
                storage_class_name: rng.gen_bool(0.5).then(|| "fast".to_owned()),
                ..Managed::default()
            });
        }
    }
    spec.rollout.max_surge = ["25%", "1", "3", "100%"]
        .choose(&mut rng)
        .unwrap()
        .to_string();
    store
}

fn pod_spec(v: &Value) -> Option<&Value> {
    v.pointer("/spec/template/spec")
}

fn generated_keys(r: &Rendered) -> BTreeSet<(String, String)> {
    r.secrets
        .iter()
        .flat_map(|s| s.kind.keys().into_iter().map(move |k| (s.name.clone(), k)))
        .collect()
}

/// Namespace, name, labels, controller owner, hash annotation.
fn check_metadata(store: &Store, o: &storekeeper::render::Object) {
    let (name, ns) = (store.name_any(), store.namespace().unwrap());
    let m = &o.value["metadata"];
    let what = format!("{} {}", o.kind.kind(), o.name);
    assert_eq!(m["namespace"], json!(ns), "{what}: namespace");
    assert!(o.name.starts_with(&format!("{name}-")), "{what}: name");
    assert!(o.name.len() <= 63, "{what}: name too long");
    for key in [
        labels::NAME,
        labels::INSTANCE,
        labels::PART_OF,
        labels::MANAGED_BY,
        labels::VERSION,
    ] {
        assert!(m["labels"][key].is_string(), "{what}: label {key}");
    }
    assert_eq!(m["labels"][labels::INSTANCE], json!(name));
    assert_eq!(m["labels"][labels::MANAGED_BY], json!("storekeeper"));
    let owners = m["ownerReferences"].as_array().unwrap();
    assert_eq!(owners.len(), 1, "{what}: owners");
    assert_eq!(owners[0]["controller"], json!(true));
    assert_eq!(owners[0]["uid"], json!(store.uid().unwrap()));
    assert_eq!(owners[0]["kind"], json!("Store"));
    let mut unstamped = Value::clone(&o.value);
    let annotations = unstamped["metadata"]["annotations"]
        .as_object_mut()
        .unwrap();
    annotations.remove(APPLIED_HASH);
    if annotations.is_empty() {
        unstamped["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
    }
    assert_eq!(hash_value(&unstamped), o.hash, "{what}: hash");
}

/// Restricted security, resources, pinned images, probes, credentials only from Secrets.
fn check_pod(what: &str, pod: &Value, keys: &BTreeSet<(String, String)>) {
    assert_eq!(pod["automountServiceAccountToken"], json!(false), "{what}");
    assert_eq!(
        pod["securityContext"]["runAsNonRoot"],
        json!(true),
        "{what}"
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        json!("RuntimeDefault"),
        "{what}"
    );
    for c in pod["containers"].as_array().unwrap() {
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], json!(false), "{what}");
        assert_eq!(sc["readOnlyRootFilesystem"], json!(true), "{what}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{what}");
        for section in ["requests", "limits"] {
            for res in ["cpu", "memory"] {
                assert!(
                    c["resources"][section][res].is_string(),
                    "{what}: {section}.{res}"
                );
            }
        }
        let image = c["image"].as_str().unwrap();
        let (_, tag) = image.rsplit_once(':').unwrap();
        assert!(
            !tag.contains('/') && tag != "latest",
            "{what}: image {image}"
        );
        // A Job's pod runs to an end: no probes to answer.
        let runs_once = pod["restartPolicy"] == json!("Never");
        assert!(
            runs_once || (c["readinessProbe"].is_object() && c["livenessProbe"].is_object()),
            "{what}: probes"
        );
        for e in c["env"].as_array().unwrap() {
            let env = e["name"].as_str().unwrap();
            if env.ends_with("PASSWORD") || env.ends_with("_KEY") || env.ends_with("_PASS") {
                assert!(
                    e["value"].is_null(),
                    "{what}: {env} must come from a Secret"
                );
            }
            if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
                check_generated(
                    what,
                    r["name"].as_str().unwrap(),
                    r["key"].as_str().unwrap(),
                    keys,
                );
            }
        }
    }
    let projected = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["projected"]["sources"].as_array())
        .flatten();
    for source in projected {
        let secret = &source["secret"];
        for item in secret["items"].as_array().unwrap() {
            check_generated(
                what,
                secret["name"].as_str().unwrap(),
                item["key"].as_str().unwrap(),
                keys,
            );
        }
    }
}

/// A Secret key a pod reads is one the operator generates, or in a user's
/// (`ext-`) Secret.
fn check_generated(what: &str, secret: &str, key: &str, keys: &BTreeSet<(String, String)>) {
    let pair = (secret.to_owned(), key.to_owned());
    assert!(
        secret.starts_with("ext-") || keys.contains(&pair),
        "{what}: {pair:?} is never generated"
    );
}

fn check_invariants(store: &Store, r: &Rendered) {
    let keys = generated_keys(r);
    for o in &r.objects {
        check_metadata(store, o);
        let Some(pod) = pod_spec(&o.value) else {
            continue;
        };
        let what = format!("{} {}", o.kind.kind(), o.name);
        check_pod(&what, pod, &keys);
        let sa = pod["serviceAccountName"].as_str().unwrap();
        assert!(
            r.objects
                .iter()
                .any(|x| x.kind == ChildKind::ServiceAccount && x.name == sa),
            "{what}: SA"
        );
    }
    for svc in r.objects.iter().filter(|o| o.kind == ChildKind::Service) {
        let sel = &svc.value["spec"]["selector"];
        let matched = r
            .objects
            .iter()
            .filter(|o| pod_spec(&o.value).is_some())
            .any(|w| {
                let pod_labels = &w.value["spec"]["template"]["metadata"]["labels"];
                sel.as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| &pod_labels[k] == v)
            });
        assert!(matched, "Service {} selects no pods", svc.name);
    }
}

#[test]
fn invariants_hold_for_many_generated_stores() {
    for seed in 0..200 {
        let store = generated(seed);
        let r = render(&store).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        check_invariants(&store, &r);
        let again = render(&store.clone()).unwrap();
        assert_eq!(r, again, "seed {seed}: rendering is not deterministic");
        assert_eq!(to_yaml(&r).unwrap(), to_yaml(&again).unwrap());
        let user = r
            .objects
            .iter()
            .filter(|o| o.kind == ChildKind::Deployment)
            .filter(|o| env_names(&o.value).contains(&"TOKEN_PRIVATE_KEY_FILE".to_owned()));
        assert_eq!(
            user.count(),
            1,
            "seed {seed}: only user-service gets the private key"
        );
    }
}

#[test]
fn invalid_stores_render_nothing() {
    let mut store = example("store");
    store.spec.services.order.replicas = 0;
    let err = render(&store).unwrap_err().to_string();
    assert_eq!(
        err,
        "spec.services.order.replicas: must be between 1 and 20"
    );
}

/// Issue 14: the data stores' volumes and their generated credentials
/// follow one `deletionPolicy`: kept by default (claims retained, Secrets
/// not owned by the Store), deleted with the Store on `Delete`.
#[test]
fn volumes_and_credentials_follow_the_deletion_policy() {
    use storekeeper::api::DeletionPolicy;
    for (policy, when_deleted, owned) in [
        (DeletionPolicy::Retain, "Retain", false),
        (DeletionPolicy::Delete, "Delete", true),
    ] {
        let mut store = example("store");
        store.spec.deletion_policy = policy;
        let r = render(&store).unwrap();
        for sts in ["shop-postgres", "shop-redis", "shop-rabbitmq"] {
            let s = workload(&r, ChildKind::StatefulSet, sts);
            assert_eq!(
                s["spec"]["persistentVolumeClaimRetentionPolicy"],
                json!({"whenDeleted": when_deleted, "whenScaled": "Retain"}),
                "{policy:?} {sts}"
            );
        }
        let data: Vec<_> = r
            .secrets
            .iter()
            .filter(|s| ["postgres", "redis", "rabbitmq"].contains(&s.component))
            .collect();
        assert_eq!(data.len(), 3);
        assert!(
            data.iter().all(|s| s.owned == owned),
            "{policy:?}: {data:?}"
        );
        assert!(
            r.secrets
                .iter()
                .filter(|s| !data.contains(s))
                .all(|s| s.owned),
            "the other Secrets always go with the Store"
        );
    }
}

/// Issue 14: an autoscaled service gets a HorizontalPodAutoscaler and its
/// Deployment no replica count (the autoscaler's, never the operator's).
#[test]
fn an_autoscaled_service_leaves_its_replicas_to_the_autoscaler() {
    let r = render(&example("full")).unwrap();
    let product = workload(&r, ChildKind::Deployment, "acme-product");
    assert!(product["spec"].get("replicas").is_none(), "{product:#}");
    let hpa = workload(&r, ChildKind::HorizontalPodAutoscaler, "acme-product");
    assert_eq!(hpa["apiVersion"], json!("autoscaling/v2"));
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "acme-product"})
    );
    assert_eq!(hpa["spec"]["minReplicas"], json!(3));
    assert_eq!(hpa["spec"]["maxReplicas"], json!(10));
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"],
        json!({"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}})
    );
    let user = workload(&r, ChildKind::Deployment, "acme-user");
    assert_eq!(user["spec"]["replicas"], json!(2), "fixed replicas stay");
    let hpas = r
        .objects
        .iter()
        .filter(|o| o.kind == ChildKind::HorizontalPodAutoscaler)
        .count();
    assert_eq!(hpas, 1, "only the autoscaled service has one");

    let mut bad = example("full");
    bad.spec
        .services
        .product
        .autoscaling
        .as_mut()
        .unwrap()
        .min_replicas = 11;
    let err = render(&bad).unwrap_err().to_string();
    assert!(
        err.contains("minReplicas must not exceed maxReplicas"),
        "{err}"
    );
}

#[test]
fn token_scope_binds_every_services_tokens_to_the_store() {
    use storekeeper::api::TokenScopeMode;
    let deployments = |mode: TokenScopeMode| {
        let mut store = example("store");
        store.spec.token_scope = mode;
        let namespace = store.metadata.namespace.clone().unwrap_or_default();
        let r = render(&store).unwrap();
        let scope = format!(
            "storekeeper:{namespace}/{}",
            store.metadata.name.clone().unwrap()
        );
        let values: Vec<Value> = r
            .objects
            .iter()
            .filter(|o| o.kind == ChildKind::Deployment)
            .map(|o| Value::clone(&o.value))
            .collect();
        (scope, values)
    };
    let (_, off) = deployments(TokenScopeMode::Off);
    for d in &off {
        assert!(
            !env_names(d).iter().any(|n| n.starts_with("TOKEN_ISSUER")),
            "{d}"
        );
    }
    let (scope, sign) = deployments(TokenScopeMode::Sign);
    assert_eq!(sign.len(), ShopService::ALL.len());
    for d in &sign {
        assert_eq!(env_value(d, "TOKEN_ISSUER"), json!(scope));
        assert_eq!(env_value(d, "TOKEN_AUDIENCE"), json!(scope));
        assert!(!env_names(d).contains(&"TOKEN_CLAIMS_REQUIRED".to_owned()));
    }
    let (_, require) = deployments(TokenScopeMode::Require);
    for d in &require {
        assert_eq!(env_value(d, "TOKEN_CLAIMS_REQUIRED"), json!("true"));
    }
}
