//! What `provider: Auto` means for one Store in one cluster, decided before
//! rendering (rendering itself treats `Auto` as `Builtin`, so `storekeeper
//! render` and a cluster without the data-store operators render exactly as
//! before the field existed).
//!
//! `Auto` never moves a store's data. The generated credentials tell which
//! kind of store holds it — the built-in stores' Secrets (`<store>-postgres`,
//! `<store>-rabbitmq`) differ from the delegated ones'
//! (`<store>-postgres-<database>`, `<store>-rabbitmq-default-user`), and
//! under `deletionPolicy: Retain` they outlive the Store with its volumes:
//!
//! 1. built-in credentials or StatefulSet found: `Builtin`;
//! 2. else delegated credentials or object found: the delegate;
//! 3. else (a new store, no data yet): the delegate when the cluster serves
//!    its kinds and the operator may use them, else `Builtin`.
//!
//! A store that resolves to a delegate whose kinds are not served (its
//! operator uninstalled, or never allowed) is refused with the field named,
//! rather than started empty on the other kind.

use storekeeper_contract::ShopService;

use super::{cnpg, rabbitmq_cluster};
use crate::api::{Managed, Provider, Store, StoreSpec};
use crate::error::Invalid;
use crate::reconcile::Observed;
use crate::render::{ChildKind, components, secrets};

/// Which delegates the operator may use in this cluster: their kinds are
/// served and it was installed to use them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Available {
    /// CloudNativePG's `postgresql.cnpg.io/v1` kinds.
    pub cloudnative_pg: bool,
    /// The Barman Cloud plugin's `barmancloud.cnpg.io/v1` `ObjectStore`.
    pub barman_cloud: bool,
    /// The RabbitMQ Cluster Operator's `rabbitmq.com/v1beta1` `RabbitmqCluster`.
    pub rabbitmq_cluster_operator: bool,
}

/// The Store with every `Auto` that means a delegate made explicit, or
/// `None` when rendering it as it is is right; `Err` when the providers it
/// comes to cannot run here (a delegate whose kinds are not served) or do
/// not fit the rest of its spec.
pub fn resolve(
    store: &Store,
    available: Available,
    observed: &Observed,
) -> Result<Option<Store>, Invalid> {
    let name = store.metadata.name.as_deref().unwrap_or_default();
    let mut resolved = store.clone();
    let mut problems = Vec::new();
    if let Some(m) = resolved.spec.postgres.managed.as_mut() {
        let first_db = ShopService::ALL
            .into_iter()
            .find_map(ShopService::database)
            .unwrap_or(components::POSTGRES);
        let workload = format!("{name}-{}", components::POSTGRES);
        let found = Found::in_cluster(
            observed,
            [
                (ChildKind::Secret, secrets::postgres(name)),
                (ChildKind::StatefulSet, workload.clone()),
            ],
            [
                (ChildKind::Secret, cnpg::role_secret(name, first_db)),
                (ChildKind::CnpgCluster, workload),
            ],
        );
        problems.extend(settle(m, Provider::CloudNativePg, found, available));
    }
    if let Some(m) = resolved.spec.rabbitmq.managed.as_mut() {
        let workload = format!("{name}-{}", components::RABBITMQ);
        let found = Found::in_cluster(
            observed,
            [
                (ChildKind::Secret, secrets::rabbitmq(name)),
                (ChildKind::StatefulSet, workload.clone()),
            ],
            [
                (
                    ChildKind::Secret,
                    rabbitmq_cluster::default_user_secret(name),
                ),
                (ChildKind::RabbitmqCluster, workload),
            ],
        );
        problems.extend(settle(
            m,
            Provider::RabbitmqClusterOperator,
            found,
            available,
        ));
    }
    problems.extend(combinations(&resolved.spec));
    if !problems.is_empty() {
        return Err(Invalid { problems });
    }
    let delegates = |s: &StoreSpec| {
        [&s.postgres.managed, &s.rabbitmq.managed]
            .map(|m| m.as_ref().is_some_and(|m| m.provider.delegates()))
    };
    let changed = delegates(&resolved.spec) != delegates(&store.spec);
    Ok(changed.then_some(resolved))
}

/// Makes `managed.provider` concrete (`delegate` being the one this store
/// can have) and says why it cannot run here, if it cannot.
fn settle(
    managed: &mut Managed,
    delegate: Provider,
    found: Found,
    available: Available,
) -> Vec<(String, String)> {
    let wanted = managed.provider;
    managed.provider = concrete(wanted, delegate, found, available.serves(delegate));
    let mut problems = Vec::new();
    if managed.provider != delegate {
        return problems;
    }
    let (at, kind, flag) = if delegate == Provider::CloudNativePg {
        (
            "spec.postgres.managed",
            "CloudNativePG's postgresql.cnpg.io/v1 Cluster",
            "cloudnative-pg",
        )
    } else {
        (
            "spec.rabbitmq.managed",
            "the RabbitMQ Cluster Operator's rabbitmq.com/v1beta1 RabbitmqCluster",
            "rabbitmq-cluster-operator",
        )
    };
    if !available.serves(delegate) {
        let why = if wanted == Provider::Auto {
            "this store's data is there, but "
        } else {
            ""
        };
        problems.push((
            format!("{at}.provider"),
            format!(
                "{why}this cluster does not serve {kind}, or the operator was not installed to use it (storekeeper run --delegate {flag}; the chart's delegation values)"
            ),
        ));
    }
    if managed
        .backup
        .as_ref()
        .is_some_and(|b| b.object_store.is_some())
        && !available.barman_cloud
    {
        problems.push((
            format!("{at}.backup.objectStore"),
            "this cluster does not serve the Barman Cloud plugin's barmancloud.cnpg.io/v1 ObjectStore: install the plugin, or remove backup".to_owned(),
        ));
    }
    problems
}

impl Available {
    /// Whether the operator `delegate` names may be used.
    fn serves(self, delegate: Provider) -> bool {
        match delegate {
            Provider::CloudNativePg => self.cloudnative_pg,
            Provider::RabbitmqClusterOperator => self.rabbitmq_cluster_operator,
            Provider::Auto | Provider::Builtin => false,
        }
    }
}

/// What the cluster holds of one data store.
#[derive(Clone, Copy)]
struct Found {
    /// Built-in credentials (possibly kept from a deleted Store) or the StatefulSet.
    builtin: bool,
    /// The delegate's credentials or object.
    delegated: bool,
}

impl Found {
    /// Whether any of the `builtin` and any of the `delegated` objects exist.
    fn in_cluster(
        observed: &Observed,
        builtin: [(ChildKind, String); 2],
        delegated: [(ChildKind, String); 2],
    ) -> Self {
        let any = |objects: [(ChildKind, String); 2]| {
            objects
                .iter()
                .any(|(kind, name)| observed.get(*kind, name).is_some())
        };
        Self {
            builtin: any(builtin),
            delegated: any(delegated),
        }
    }
}

/// The provider `wanted` comes to, `delegate` being the one this store can have.
fn concrete(wanted: Provider, delegate: Provider, found: Found, available: bool) -> Provider {
    match wanted {
        Provider::Auto if found.builtin => Provider::Builtin,
        Provider::Auto if found.delegated || available => delegate,
        Provider::Auto => Provider::Builtin,
        explicit => explicit,
    }
}

/// The rules between a data store's concrete provider and its other
/// fields; an `Auto` provider is not judged (it is resolved first).
/// `validate` applies them to the spec as written, `resolve` to the spec
/// it resolved.
pub fn combinations(spec: &StoreSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(m) = &spec.postgres.managed {
        let at = "spec.postgres.managed";
        let object_store = m.backup.as_ref().map(|b| b.object_store.is_some());
        match m.provider {
            Provider::Builtin => {
                if m.instances.is_some_and(|n| n > 1) {
                    out.push((
                        format!("{at}.instances"),
                        "more than one instance needs provider CloudNativePG".to_owned(),
                    ));
                }
                if object_store == Some(true) {
                    out.push((
                        format!("{at}.backup.objectStore"),
                        "backups to object storage need provider CloudNativePG".to_owned(),
                    ));
                }
            }
            Provider::CloudNativePg if object_store == Some(false) => out.push((
                format!("{at}.backup.objectStore"),
                "is required with provider CloudNativePG, which backs up to object storage"
                    .to_owned(),
            )),
            _ => {}
        }
    }
    if let Some(m) = &spec.rabbitmq.managed
        && m.provider == Provider::Builtin
        && m.replicas.is_some_and(|n| n > 1)
    {
        out.push((
            "spec.rabbitmq.managed.replicas".to_owned(),
            "more than one replica needs provider RabbitmqClusterOperator".to_owned(),
        ));
    }
    out
}

/// Every rule of the provider fields, as the schema has them (which
/// provider each store may have, `instances` PostgreSQL's and `replicas`
/// RabbitMQ's, both 1–9, the object store's patterns) and [`combinations`];
/// `crate::validate` reports them with the rest.
pub fn rules(spec: &StoreSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Each store: its delegate, and whether it has `instances` / `replicas`.
    let stores = [
        (
            "spec.postgres",
            &spec.postgres.managed,
            Some(Provider::CloudNativePg),
            (true, false),
        ),
        ("spec.redis", &spec.redis.managed, None, (false, false)),
        (
            "spec.rabbitmq",
            &spec.rabbitmq.managed,
            Some(Provider::RabbitmqClusterOperator),
            (false, true),
        ),
    ];
    for (at, managed, delegate, (instances, replicas)) in stores {
        let Some(m) = managed else { continue };
        if !matches!(m.provider, Provider::Auto | Provider::Builtin) && Some(m.provider) != delegate
        {
            out.push((
                format!("{at}.managed.provider"),
                format!("{:?} cannot run this store", m.provider),
            ));
        }
        for (field, value, allowed) in [
            ("instances", m.instances, instances),
            ("replicas", m.replicas, replicas),
        ] {
            match value {
                Some(_) if !allowed => out.push((
                    format!("{at}.managed.{field}"),
                    "is not a setting of this store".to_owned(),
                )),
                Some(n) if !(1..=9).contains(&n) => out.push((
                    format!("{at}.managed.{field}"),
                    "must be between 1 and 9".to_owned(),
                )),
                _ => {}
            }
        }
        if let Some(store) = m.backup.as_ref().and_then(|b| b.object_store.as_ref()) {
            let field = format!("{at}.managed.backup.objectStore");
            let bad = |s: &str| s.is_empty() || s.chars().any(char::is_whitespace);
            if !store.destination_path.starts_with("s3://") || bad(&store.destination_path) {
                out.push((
                    format!("{field}.destinationPath"),
                    "must be an s3:// URL".to_owned(),
                ));
            }
            if store
                .endpoint_url
                .as_deref()
                .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")) || bad(u))
            {
                out.push((
                    format!("{field}.endpointURL"),
                    "must be an http:// or https:// URL".to_owned(),
                ));
            }
            if store.secret_name.is_empty() {
                out.push((format!("{field}.secretName"), "is required".to_owned()));
            }
            let (number, unit) = store
                .retention_policy
                .split_at(store.retention_policy.len().saturating_sub(1));
            if !matches!(unit, "d" | "w" | "m")
                || number.starts_with('0')
                || number.is_empty()
                || !number.bytes().all(|b| b.is_ascii_digit())
            {
                out.push((
                    format!("{field}.retentionPolicy"),
                    "must be a number and d, w or m, like 30d".to_owned(),
                ));
            }
        }
    }
    out.extend(combinations(spec));
    out
}
