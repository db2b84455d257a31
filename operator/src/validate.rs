//! Rules a Store must follow, checked in Rust.
//!
//! The schema (OpenAPI + CEL) already enforces most of these at admission,
//! but the same rules run here so that offline `storekeeper render`, a Store
//! created before the CRD carried a rule, and cross-field rules the schema
//! cannot express (names that collide with the operator's own Secrets) are
//! all caught before anything is applied. The reconciler turns a failure into
//! `Stalled=True` and applies nothing.

use kube::ResourceExt;
use storekeeper_contract::ShopService;

use crate::api::{
    Autoscaling, DataStore, IngressSpec, ResourceAmounts, RolloutSpec, Store, StoreSpec,
};
use crate::error::Invalid;
use crate::render::{delegated, images, secrets};
use crate::rollout::analysis::basis_points;

/// Longest Store name: `<name>-rabbitmq-<revision hash>` must fit a 63-character label.
pub const MAX_NAME_LEN: usize = 40;

/// Checks every rule; `Err` lists all that are broken.
pub fn validate(store: &Store) -> Result<(), Invalid> {
    let mut p = Problems::default();
    let name = store.name_any();
    if name.is_empty() {
        p.add("metadata.name", "is required");
    } else if name.len() > MAX_NAME_LEN || !is_dns_label(&name) {
        p.add(
            "metadata.name",
            format!("must be a DNS label of at most {MAX_NAME_LEN} characters"),
        );
    }
    let spec = &store.spec;
    check_tag(&mut p, "spec.version", &spec.version);
    if spec.image_registry.is_empty() || spec.image_registry.ends_with('/') {
        p.add(
            "spec.imageRegistry",
            "must be a registry path without a trailing '/'",
        );
    }
    if let Some(email) = &spec.admin_email
        && !is_email(email)
    {
        p.add("spec.adminEmail", "must look like name@domain");
    }
    for service in ShopService::ALL {
        let s = spec.services.get(service);
        let at = format!("spec.services.{}", service.name());
        if !(1..=20).contains(&s.replicas) {
            p.add(format!("{at}.replicas"), "must be between 1 and 20");
        }
        if let Some(a) = &s.autoscaling {
            check_autoscaling(&mut p, &format!("{at}.autoscaling"), a);
        }
        if let Some(v) = &s.version {
            check_tag(&mut p, &format!("{at}.version"), v);
        }
        if let Some(image) = &s.image
            && (image.is_empty() || has_tag(image))
        {
            p.add(
                format!("{at}.image"),
                "must be an image without a tag; set version instead",
            );
        }
        check_amounts(
            &mut p,
            &format!("{at}.resources.requests"),
            &s.resources.requests,
        );
        check_amounts(
            &mut p,
            &format!("{at}.resources.limits"),
            &s.resources.limits,
        );
    }
    let generated = secrets::generated_names(&name);
    check_ingress(&mut p, &spec.ingress, &generated);
    for (field, ds) in [
        ("spec.postgres", &spec.postgres),
        ("spec.redis", &spec.redis),
        ("spec.rabbitmq", &spec.rabbitmq),
    ] {
        check_data_store(&mut p, field, ds, &generated);
    }
    for (field, problem) in delegated::provider::rules(spec) {
        p.add(field, problem);
    }
    if !(30..=3600).contains(&spec.rollout.health_timeout_seconds) {
        p.add(
            "spec.rollout.healthTimeoutSeconds",
            "must be between 30 and 3600",
        );
    }
    if !is_surge(&spec.rollout.max_surge) {
        p.add(
            "spec.rollout.maxSurge",
            "must be a count (1-100) or a percentage like 25%",
        );
    }
    check_rollout(&mut p, &spec.rollout);
    check_observability(&mut p, &spec.observability);
    for (key, value) in &spec.observability.labels {
        let at = format!("spec.observability.labels[{key}]");
        if !is_label_key(key) {
            p.add(&at, "must be a label key: [prefix/]name, the name 1-63 characters of letters, digits, '-', '_', '.'");
        } else if key.starts_with("app.kubernetes.io/") {
            p.add(&at, "app.kubernetes.io/* labels are the operator's own");
        }
        if !is_label_value(value) {
            p.add(&at, "must be a label value: at most 63 letters, digits, '-', '_', '.', starting and ending alphanumeric");
        }
    }
    p.finish()
}

/// A label value: empty, or up to 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

/// A label key: an optional DNS-name prefix and `/`, then a non-empty value.
fn is_label_key(s: &str) -> bool {
    let (prefix, name) = s.rsplit_once('/').map_or((None, s), |(p, n)| (Some(p), n));
    !name.is_empty() && is_label_value(name) && prefix.is_none_or(is_dns_name)
}

/// The CRD's transition rules on managed data stores, for a Store whose
/// spec moved from `old` (the stable revision's) to `new` before the CRD
/// carried them: a StatefulSet's volume claim template cannot change, so
/// such a spec would wedge the rollout instead of being refused.
pub fn storage_unchanged(old: &StoreSpec, new: &StoreSpec) -> Result<(), Invalid> {
    let mut p = Problems::default();
    for (field, before, after) in [
        ("spec.postgres", &old.postgres, &new.postgres),
        ("spec.redis", &old.redis, &new.redis),
        ("spec.rabbitmq", &old.rabbitmq, &new.rabbitmq),
    ] {
        let (Some(before), Some(after)) = (&before.managed, &after.managed) else {
            continue;
        };
        if before.storage != after.storage {
            p.add(
                format!("{field}.managed.storage"),
                "storage cannot change: a StatefulSet's volume claim template is immutable (expand the PersistentVolumeClaim itself instead)",
            );
        }
        if before.storage_class_name != after.storage_class_name {
            p.add(
                format!("{field}.managed.storageClassName"),
                "storageClassName cannot change: a StatefulSet's volume claim template is immutable",
            );
        }
    }
    p.finish()
}

/// Checks a Store's `external` data-store Secrets against what the cluster
/// holds: `lookup(name)` returns the keys of that Secret, or `None` when it
/// does not exist. The schema cannot see other objects, so this runs in the
/// reconciler (an unmet reference stalls the Store like any invalid spec).
pub fn external_secrets(
    store: &Store,
    lookup: impl Fn(&str) -> Option<Vec<String>>,
) -> Result<(), Invalid> {
    let mut p = Problems::default();
    for (component, ds) in [
        ("postgres", &store.spec.postgres),
        ("redis", &store.spec.redis),
        ("rabbitmq", &store.spec.rabbitmq),
    ] {
        let Some(external) = &ds.external else {
            continue;
        };
        let field = format!("spec.{component}.external.secretName");
        match lookup(&external.secret_name) {
            None => p.add(field, format!("Secret {} not found", external.secret_name)),
            Some(keys) => {
                let missing: Vec<&str> = secrets::external_keys(component)
                    .into_iter()
                    .filter(|k| !keys.iter().any(|have| have == k))
                    .collect();
                if !missing.is_empty() {
                    p.add(
                        field,
                        format!(
                            "Secret {} lacks key(s) {}",
                            external.secret_name,
                            missing.join(", ")
                        ),
                    );
                }
            }
        }
    }
    p.finish()
}

#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    fn finish(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid { problems: self.0 })
        }
    }
}

fn check_rollout(p: &mut Problems, rollout: &RolloutSpec) {
    if !(1..=50).contains(&rollout.revision_history_limit) {
        p.add(
            "spec.rollout.revisionHistoryLimit",
            "must be between 1 and 50",
        );
    }
    let Some(analysis) = &rollout.analysis else {
        return;
    };
    let at = "spec.rollout.analysis";
    if !(10..=3600).contains(&analysis.bake_seconds) {
        p.add(format!("{at}.bakeSeconds"), "must be between 10 and 3600");
    }
    if let Some(ratio) = &analysis.max_error_ratio
        && basis_points(ratio).is_none()
    {
        p.add(
            format!("{at}.maxErrorRatio"),
            "must be a decimal from \"0\" to \"1\" with at most four decimals, like \"0.01\"",
        );
    }
    if let Some(ms) = analysis.max_p99_milliseconds
        && !(1..=60_000).contains(&ms)
    {
        p.add(
            format!("{at}.maxP99Milliseconds"),
            "must be between 1 and 60000",
        );
    }
    if !(1..=1_000_000).contains(&analysis.min_requests) {
        p.add(format!("{at}.minRequests"), "must be between 1 and 1000000");
    }
}

/// The managed stack's volumes and retention, and the trace receiver.
fn check_observability(p: &mut Problems, o: &crate::api::ObservabilitySpec) {
    let at = "spec.observability";
    if !(1..=365).contains(&o.managed.retention_days) {
        p.add(
            format!("{at}.managed.retentionDays"),
            "must be between 1 and 365",
        );
    }
    for (field, size) in [
        ("prometheusStorage", &o.managed.prometheus_storage),
        ("lokiStorage", &o.managed.loki_storage),
    ] {
        if !is_storage(size) {
            p.add(format!("{at}.managed.{field}"), "must be a size like 10Gi");
        }
    }
    let Some(traces) = &o.traces else {
        return;
    };
    if crate::render::monitoring::traces::port(&traces.endpoint).is_none() {
        p.add(
            format!("{at}.traces.endpoint"),
            "must be an http:// or https:// URL with a host and no user, query or fragment, like http://collector.observability:4318",
        );
    }
    if let Some(ratio) = &traces.sample_ratio
        && basis_points(ratio).is_none()
    {
        p.add(
            format!("{at}.traces.sampleRatio"),
            "must be a decimal from \"0\" to \"1\" with at most four decimals, like \"0.1\"",
        );
    }
}

fn check_data_store(p: &mut Problems, field: &str, ds: &DataStore, generated: &[String]) {
    match (&ds.managed, &ds.external) {
        (Some(_), Some(_)) | (None, None) => p.add(field, "set exactly one of managed or external"),
        (Some(m), None) => {
            if !is_storage(&m.storage) {
                p.add(
                    format!("{field}.managed.storage"),
                    "must be a size like 5Gi",
                );
            }
            check_amounts(
                p,
                &format!("{field}.managed.resources.requests"),
                &m.resources.requests,
            );
            check_amounts(
                p,
                &format!("{field}.managed.resources.limits"),
                &m.resources.limits,
            );
            check_managed_extras(p, &format!("{field}.managed"), m);
        }
        (None, Some(e)) => {
            if e.secret_name.is_empty() || generated.contains(&e.secret_name) {
                p.add(
                    format!("{field}.external.secretName"),
                    "must name your own Secret, not one the operator generates",
                );
            }
        }
    }
}

/// A managed store's image override (a tag that can be a label value,
/// optionally pinned as `name:tag@sha256:...`) and backup (PostgreSQL's
/// only: the schema's rule on `redis` and `rabbitmq`).
fn check_managed_extras(p: &mut Problems, at: &str, m: &crate::api::Managed) {
    if let Some(image) = &m.image {
        let field = format!("{at}.image");
        let reference = images::Reference::parse(image);
        match reference.tag {
            Some(tag) => check_tag(p, &field, tag),
            None => p.add(&field, "image must carry a tag"),
        }
        if reference
            .digest
            .is_some_and(|digest| !images::is_digest(digest))
        {
            p.add(
                field,
                "a digest must be sha256: and 64 lower-case hex digits (name:tag@sha256:...)",
            );
        }
    }
    let Some(backup) = &m.backup else {
        return;
    };
    if at != "spec.postgres.managed" {
        p.add(format!("{at}.backup"), "backup is for PostgreSQL only");
    }
    if !is_schedule(&backup.schedule) {
        p.add(
            format!("{at}.backup.schedule"),
            "must be a cron schedule of five fields, like \"17 3 * * *\", or a macro like @daily",
        );
    }
    if !(1..=100).contains(&backup.retain) {
        p.add(format!("{at}.backup.retain"), "must be between 1 and 100");
    }
    if !is_storage(&backup.storage) {
        p.add(format!("{at}.backup.storage"), "must be a size like 5Gi");
    }
}

/// A CronJob schedule as the schema's pattern has it: five fields, or one
/// of the macros Kubernetes knows.
fn is_schedule(s: &str) -> bool {
    const MACROS: [&str; 7] = [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@hourly",
    ];
    MACROS.contains(&s) || (s.trim() == s && s.split_whitespace().count() == 5)
}

/// The schema's autoscaling bounds and its `minReplicas <= maxReplicas` rule.
fn check_autoscaling(p: &mut Problems, at: &str, a: &Autoscaling) {
    if !(1..=100).contains(&a.min_replicas) || !(1..=100).contains(&a.max_replicas) {
        p.add(
            at.to_owned(),
            "minReplicas and maxReplicas must be between 1 and 100",
        );
    } else if a.min_replicas > a.max_replicas {
        p.add(at.to_owned(), "minReplicas must not exceed maxReplicas");
    }
    if !(10..=100).contains(&a.target_cpu_utilization_percentage) {
        p.add(
            format!("{at}.targetCPUUtilizationPercentage"),
            "must be between 10 and 100",
        );
    }
}

/// The host, the TLS Secret's name (not one the operator generates) and a
/// cert-manager issuer only where it can work (an Ingress, not a Gateway).
fn check_ingress(p: &mut Problems, ingress: &IngressSpec, generated: &[String]) {
    if !is_dns_name(&ingress.host) {
        p.add(
            "spec.ingress.host",
            "must be a lower-case DNS name without scheme or port",
        );
    }
    let Some(tls) = &ingress.tls else {
        return;
    };
    if generated.contains(&tls.secret_name) {
        p.add(
            "spec.ingress.tls.secretName",
            "collides with a Secret the operator generates",
        );
    }
    if ingress.gateway.is_some() && tls.issuer.is_some() {
        p.add(
            "spec.ingress.tls.issuer",
            "asks cert-manager for the Ingress's certificate; with a gateway the certificate is the Gateway listener's: annotate the Gateway for cert-manager instead",
        );
    }
}

fn check_tag(p: &mut Problems, field: &str, tag: &str) {
    if tag == "latest" {
        p.add(field, "must name a release, not 'latest'");
    } else if !is_tag(tag) {
        p.add(
            field,
            "must be an image tag usable as a label value (letters, digits, '_', '.', '-'; alphanumeric at both ends; at most 63)",
        );
    }
}

fn check_amounts(p: &mut Problems, field: &str, amounts: &ResourceAmounts) {
    if !is_cpu(&amounts.cpu) {
        p.add(
            format!("{field}.cpu"),
            "must be a CPU quantity like 250m or 1",
        );
    }
    if !is_memory(&amounts.memory) {
        p.add(
            format!("{field}.memory"),
            "must be a memory quantity like 256Mi",
        );
    }
}

/// DNS-1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// An image tag that is also a valid label value (it becomes `app.kubernetes.io/version`).
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn has_tag(image: &str) -> bool {
    match (image.rfind(':'), image.rfind('/')) {
        (Some(colon), Some(slash)) => colon > slash,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn is_email(s: &str) -> bool {
    let mut parts = s.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(user), Some(domain), None) => {
            !user.is_empty() && !domain.is_empty() && !s.chars().any(char::is_whitespace)
        }
        _ => false,
    }
}

fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s.split_at(end)
}

fn is_number(s: &str) -> bool {
    let mut it = s.split('.');
    let int = it.next().unwrap_or_default();
    let frac = it.next();
    !int.is_empty()
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()))
        && it.next().is_none()
}

fn is_cpu(s: &str) -> bool {
    let (num, unit) = split_number(s);
    is_number(num) && matches!(unit, "" | "m")
}

fn is_memory(s: &str) -> bool {
    let (num, unit) = split_number(s);
    !num.contains('.')
        && is_number(num)
        && matches!(unit, "" | "Ki" | "Mi" | "Gi" | "Ti" | "k" | "M" | "G" | "T")
}

fn is_storage(s: &str) -> bool {
    let (num, unit) = split_number(s);
    !num.contains('.') && is_number(num) && matches!(unit, "Mi" | "Gi" | "Ti")
}

fn is_surge(s: &str) -> bool {
    let n = s.strip_suffix('%').unwrap_or(s);
    !n.is_empty()
        && n.len() <= 3
        && n.bytes().all(|c| c.is_ascii_digit())
        && n.parse::<u32>().is_ok_and(|v| (1..=100).contains(&v))
        && !n.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::store;

    #[test]
    fn example_store_is_valid() {
        assert_eq!(validate(&store("shop")), Ok(()));
    }

    #[test]
    fn monitoring_labels_must_be_labels_and_not_the_operators() {
        let mut s = store("shop");
        let labels = &mut s.spec.observability.labels;
        labels.insert("release".into(), "kube-prometheus-stack".into());
        labels.insert("example.com/team".into(), String::new());
        assert_eq!(validate(&s), Ok(()));
        let labels = &mut s.spec.observability.labels;
        labels.insert("app.kubernetes.io/name".into(), "x".into());
        labels.insert("bad key".into(), "x".into());
        labels.insert("team".into(), "-x".into());
        let err = validate(&s).unwrap_err().to_string();
        for field in ["[app.kubernetes.io/name]", "[bad key]", "[team]"] {
            assert!(
                err.contains(&format!("spec.observability.labels{field}")),
                "{err}"
            );
        }
    }

    #[test]
    fn latest_is_refused_naming_the_field() {
        let mut s = store("shop");
        s.spec.version = "latest".into();
        let err = validate(&s).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.version: must name a release, not 'latest'"
        );
    }

    #[test]
    fn both_managed_and_external_is_refused() {
        let mut s = store("shop");
        s.spec.redis.external = Some(crate::api::External {
            secret_name: "r".into(),
        });
        let err = validate(&s).unwrap_err();
        assert!(
            err.to_string().starts_with("spec.redis: set exactly one"),
            "{err}"
        );
    }

    #[test]
    fn long_names_and_bad_hosts_are_refused() {
        let mut s = store(&"a".repeat(41));
        s.spec.ingress.host = "Shop.Example.com:80".into();
        let err = validate(&s).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
    }

    #[test]
    fn tls_secret_may_not_collide_with_generated_secrets() {
        let mut s = store("shop");
        s.spec.ingress.tls = Some(crate::api::TlsSpec {
            secret_name: "shop-admin".into(),
            issuer: None,
        });
        assert!(validate(&s).is_err());
    }

    #[test]
    fn a_cert_manager_issuer_is_for_the_ingress_not_a_gateway() {
        let mut s = store("shop");
        s.spec.ingress.tls = Some(crate::api::TlsSpec {
            secret_name: "shop-tls".into(),
            issuer: Some(crate::api::IssuerRef {
                name: "letsencrypt".into(),
                kind: crate::api::IssuerKind::ClusterIssuer,
            }),
        });
        assert!(validate(&s).is_ok());
        s.spec.ingress.gateway = Some(crate::api::GatewayRef {
            name: "edge".into(),
            namespace: None,
            section_name: None,
        });
        let err = validate(&s).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].0, "spec.ingress.tls.issuer");
    }

    #[test]
    fn external_secrets_must_exist_with_their_keys() {
        let s = store("shop").with_external_redis();
        assert!(external_secrets(&store("shop"), |_| None).is_ok());
        let err = external_secrets(&s, |_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.redis.external.secretName: Secret my-redis not found"
        );
        let err = external_secrets(&s, |_| Some(vec!["URL".into()])).unwrap_err();
        assert!(err.to_string().ends_with("lacks key(s) url"), "{err}");
        assert!(external_secrets(&s, |_| Some(vec!["url".into()])).is_ok());
    }

    #[test]
    fn quantity_and_surge_checks() {
        for ok in ["100m", "1", "0.5", "2"] {
            assert!(is_cpu(ok), "{ok}");
        }
        for bad in ["", "1x", "m", "1.2.3", "-1"] {
            assert!(!is_cpu(bad), "{bad}");
        }
        for ok in ["128Mi", "1Gi", "1000"] {
            assert!(is_memory(ok), "{ok}");
        }
        for ok in ["25%", "1", "100%"] {
            assert!(is_surge(ok), "{ok}");
        }
        for bad in ["101%", "01", "%", "1.5", "0", "0%"] {
            assert!(!is_surge(bad), "{bad}");
        }
        assert!(is_tag("1.2.3-rc.1") && is_tag("v9") && is_tag(&"a".repeat(63)));
        assert!(!is_tag("1.0-") && !is_tag("_x") && !is_tag(&"a".repeat(64)));
        assert!(has_tag("repo/img:1.0"));
        assert!(!has_tag("registry:5000/img"));
    }

    #[test]
    fn rollout_settings_are_checked_naming_the_field() {
        let mut s = store("shop");
        s.spec.rollout.revision_history_limit = 0;
        s.spec.rollout.analysis = Some(crate::api::AnalysisSpec {
            bake_seconds: 5,
            max_error_ratio: Some("5%".into()),
            max_p99_milliseconds: Some(0),
            min_requests: 0,
        });
        let fields: Vec<String> = validate(&s)
            .unwrap_err()
            .problems
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.rollout.revisionHistoryLimit",
                "spec.rollout.analysis.bakeSeconds",
                "spec.rollout.analysis.maxErrorRatio",
                "spec.rollout.analysis.maxP99Milliseconds",
                "spec.rollout.analysis.minRequests",
            ]
        );
        s.spec.rollout.revision_history_limit = 5;
        s.spec.rollout.analysis = Some(crate::api::AnalysisSpec {
            bake_seconds: 60,
            max_error_ratio: Some("0.05".into()),
            max_p99_milliseconds: Some(500),
            min_requests: 100,
        });
        assert_eq!(validate(&s), Ok(()));
    }

    #[test]
    fn data_store_images_carry_tags_and_backups_are_postgres_only() {
        let mut s = store("shop");
        if let Some(m) = s.spec.postgres.managed.as_mut() {
            m.image = Some("registry:5000/postgres".to_owned());
            m.backup = Some(crate::api::Backup {
                schedule: "daily".to_owned(),
                retain: 0,
                ..crate::api::Backup::default()
            });
        }
        if let Some(m) = s.spec.redis.managed.as_mut() {
            m.image = Some("redis:latest".to_owned());
            m.backup = Some(crate::api::Backup::default());
        }
        let message = validate(&s).unwrap_err().to_string();
        for part in [
            "spec.postgres.managed.image: image must carry a tag",
            "spec.postgres.managed.backup.schedule: must be a cron schedule",
            "spec.postgres.managed.backup.retain: must be between 1 and 100",
            "spec.redis.managed.image: must name a release",
            "spec.redis.managed.backup: backup is for PostgreSQL only",
        ] {
            assert!(message.contains(part), "{part} in {message}");
        }
        let mut fine = store("shop");
        if let Some(m) = fine.spec.postgres.managed.as_mut() {
            m.image = Some("registry:5000/postgres:17.7-bookworm".to_owned());
            m.backup = Some(crate::api::Backup {
                schedule: "@daily".to_owned(),
                ..crate::api::Backup::default()
            });
        }
        validate(&fine).unwrap();
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn data_store_images_may_be_pinned_by_digest_after_their_tag() {
        let mut fine = store("shop");
        if let Some(m) = fine.spec.postgres.managed.as_mut() {
            m.image = Some(format!("registry:5000/postgres:17.7-bookworm@{DIGEST}"));
        }
        if let Some(m) = fine.spec.redis.managed.as_mut() {
            m.image = Some(format!("docker.io/library/redis:8.2.1-bookworm@{DIGEST}"));
        }
        assert_eq!(validate(&fine), Ok(()));
        let mut s = store("shop");
        if let Some(m) = s.spec.postgres.managed.as_mut() {
            m.image = Some(format!("registry:5000/postgres@{DIGEST}"));
        }
        if let Some(m) = s.spec.redis.managed.as_mut() {
            m.image = Some(format!("redis:latest@{DIGEST}"));
        }
        if let Some(m) = s.spec.rabbitmq.managed.as_mut() {
            m.image = Some(format!("rabbitmq:4.1.4@{}", DIGEST.to_uppercase()));
        }
        let message = validate(&s).unwrap_err().to_string();
        for part in [
            "spec.postgres.managed.image: image must carry a tag",
            "spec.redis.managed.image: must name a release",
            "spec.rabbitmq.managed.image: a digest must be sha256: and 64 lower-case hex digits",
        ] {
            assert!(message.contains(part), "{part} in {message}");
        }
        assert!(
            !message.contains("spec.postgres.managed.image: a digest"),
            "{message}"
        );
    }

    #[test]
    fn a_managed_volume_cannot_change() {
        let old = store("shop").spec;
        assert_eq!(storage_unchanged(&old, &old), Ok(()));
        let mut new = old.clone();
        new.version = "2.0.0".into();
        if let Some(m) = new.redis.managed.as_mut() {
            m.resources.limits.memory = "1Gi".into();
        }
        assert_eq!(
            storage_unchanged(&old, &new),
            Ok(()),
            "only the volume is fixed"
        );
        if let Some(m) = new.postgres.managed.as_mut() {
            m.storage = "10Gi".into();
        }
        if let Some(m) = new.rabbitmq.managed.as_mut() {
            m.storage_class_name = Some("fast".into());
        }
        let err = storage_unchanged(&old, &new).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(
            err.to_string()
                .starts_with("spec.postgres.managed.storage: storage cannot change"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("spec.rabbitmq.managed.storageClassName: storageClassName cannot change"),
            "{err}"
        );
        let external = store("shop").with_external_redis().spec;
        assert_eq!(
            storage_unchanged(&external, &old),
            Ok(()),
            "a store newly managed has no old volume"
        );
    }
}
