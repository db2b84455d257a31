//! NetworkPolicies: deny everything to and from the Store's pods, then allow
//! only the flows the shop needs — DNS, the ingress controller to the
//! services, callers to callees (from `ShopService::calls`, the same table
//! that sets the `*_URL` variables), services to the data stores they use
//! (the same `ShopService` predicates that set `DATABASE_URL`, `REDIS_URL`
//! and `AMQP_URL`), the migration Jobs to PostgreSQL, and metrics scrapes
//! on the admin port.

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use storekeeper_contract::{ShopService, admin};

use super::meta::Ctx;
use super::{ChildKind, Object, Step, components, delegated, migrations};
use crate::Result;
use crate::api::DataStore;

/// Component label of the policies.
pub const COMPONENT: &str = "network-policy";
const NAMESPACE_LABEL: &str = "kubernetes.io/metadata.name";

pub(super) fn port(number: i32, protocol: &str) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(number)),
        protocol: Some(protocol.to_owned()),
        ..NetworkPolicyPort::default()
    }
}

pub(super) fn namespace(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some([(NAMESPACE_LABEL.to_owned(), name.to_owned())].into()),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

pub(super) fn pods(ctx: &Ctx<'_>, component: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(ctx.selector(component)),
        ..NetworkPolicyPeer::default()
    }
}

/// A managed data store's pods: the built-in StatefulSet's, or those its
/// operator labels when it is delegated.
fn data_store_pods(ctx: &Ctx<'_>, component: &str) -> NetworkPolicyPeer {
    match delegated::pod_selector(ctx, component) {
        Some(selector) => NetworkPolicyPeer {
            pod_selector: Some(selector),
            ..NetworkPolicyPeer::default()
        },
        None => pods(ctx, component),
    }
}

pub(super) fn anywhere() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: "0.0.0.0/0".to_owned(),
            ..IPBlock::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

pub(super) fn any_namespace() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }
}

pub(super) fn policy(
    ctx: &Ctx<'_>,
    name: &str,
    selector: LabelSelector,
    spec: NetworkPolicySpec,
) -> Result<Object> {
    let full = ctx.name(name);
    let np = NetworkPolicy {
        metadata: ctx.meta(full.clone(), COMPONENT, &ctx.spec.version),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector),
            ..spec
        }),
    };
    Object::new(ChildKind::NetworkPolicy, Step::Foundation, &full, &np)
}

/// All policies of the Store.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let all_pods = LabelSelector {
        match_labels: Some(ctx.store_labels()),
        ..LabelSelector::default()
    };
    let mut out = vec![
        policy(
            ctx,
            "default-deny",
            all_pods.clone(),
            NetworkPolicySpec {
                policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
                ..NetworkPolicySpec::default()
            },
        )?,
        policy(
            ctx,
            "allow-dns",
            all_pods,
            NetworkPolicySpec {
                policy_types: Some(vec!["Egress".to_owned()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![namespace("kube-system")]),
                    ports: Some(vec![port(53, "UDP"), port(53, "TCP")]),
                }]),
                ..NetworkPolicySpec::default()
            },
        )?,
    ];
    for service in ShopService::ALL {
        out.push(service_policy(ctx, service)?);
    }
    out.push(migrations_policy(ctx)?);
    for (component, store, number, uses) in data_stores(ctx) {
        // A delegated store's operator runs its pods and their traffic
        // (replication, its own health checks): no policy of ours selects them.
        if store.managed.is_some() && delegated::pod_selector(ctx, component).is_none() {
            let mut clients: Vec<NetworkPolicyPeer> = ShopService::ALL
                .into_iter()
                .filter(|s| uses(*s))
                .map(|s| pods(ctx, s.name()))
                .collect();
            if component == components::POSTGRES {
                clients.push(NetworkPolicyPeer {
                    pod_selector: Some(migrations::selector(ctx)),
                    ..NetworkPolicyPeer::default()
                });
            }
            out.push(policy(
                ctx,
                component,
                ctx.selector(component),
                NetworkPolicySpec {
                    policy_types: Some(vec!["Ingress".to_owned()]),
                    ingress: Some(vec![NetworkPolicyIngressRule {
                        from: Some(clients),
                        ports: Some(vec![port(number, "TCP")]),
                    }]),
                    ..NetworkPolicySpec::default()
                },
            )?);
        }
    }
    Ok(out)
}

/// Whether a service connects to a data store: the same facts that give it
/// the store's URL in `services::env_vars`.
type Uses = fn(ShopService) -> bool;

/// Each data store: component, spec, client port, which services use it.
fn data_stores<'a>(ctx: &'a Ctx<'_>) -> [(&'static str, &'a DataStore, i32, Uses); 3] {
    [
        (
            components::POSTGRES,
            &ctx.spec.postgres,
            components::POSTGRES_PORT,
            |s| s.database().is_some(),
        ),
        (
            components::REDIS,
            &ctx.spec.redis,
            components::REDIS_PORT,
            ShopService::uses_redis,
        ),
        (
            components::RABBITMQ,
            &ctx.spec.rabbitmq,
            components::RABBITMQ_PORT,
            ShopService::uses_broker,
        ),
    ]
}

/// The migration Jobs' pods talk to PostgreSQL only, and nothing talks
/// to them.
fn migrations_policy(ctx: &Ctx<'_>) -> Result<Object> {
    let to = if ctx.spec.postgres.managed.is_some() {
        data_store_pods(ctx, components::POSTGRES)
    } else {
        anywhere()
    };
    policy(
        ctx,
        migrations::COMPONENT,
        migrations::selector(ctx),
        NetworkPolicySpec {
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![to]),
                ports: Some(vec![port(components::POSTGRES_PORT, "TCP")]),
            }]),
            ..NetworkPolicySpec::default()
        },
    )
}

fn service_policy(ctx: &Ctx<'_>, service: ShopService) -> Result<Object> {
    let callers: Vec<NetworkPolicyPeer> = service
        .callers()
        .map(|caller| pods(ctx, caller.name()))
        .chain(std::iter::once(namespace(
            &ctx.spec.ingress.controller_namespace,
        )))
        .collect();
    let ingress = vec![
        NetworkPolicyIngressRule {
            from: Some(callers),
            ports: Some(vec![port(i32::from(service.port()), "TCP")]),
        },
        NetworkPolicyIngressRule {
            from: Some(vec![any_namespace()]),
            ports: Some(vec![port(i32::from(admin::PORT), "TCP")]),
        },
    ];
    let mut egress: Vec<NetworkPolicyEgressRule> = service
        .calls()
        .iter()
        .map(|callee| NetworkPolicyEgressRule {
            to: Some(vec![pods(ctx, callee.name())]),
            ports: Some(vec![port(i32::from(callee.port()), "TCP")]),
        })
        .collect();
    for (component, store, number, uses) in data_stores(ctx) {
        if uses(service) {
            let to = if store.managed.is_some() {
                data_store_pods(ctx, component)
            } else {
                anywhere()
            };
            egress.push(NetworkPolicyEgressRule {
                to: Some(vec![to]),
                ports: Some(vec![port(number, "TCP")]),
            });
        }
    }
    policy(
        ctx,
        service.name(),
        ctx.selector(service.name()),
        NetworkPolicySpec {
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(ingress),
            egress: Some(egress),
            ..NetworkPolicySpec::default()
        },
    )
}
