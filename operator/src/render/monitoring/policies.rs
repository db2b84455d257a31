//! NetworkPolicies of the managed stack, on top of the Store's default-deny
//! and DNS policies (which select these pods too, being the Store's):
//! Prometheus reaches the services' metrics port, the API server and the
//! operator's metrics port (when the operator says where it is) and
//! takes queries from Grafana only; Loki takes log records from the five
//! services and queries from Grafana only; Grafana takes connections from
//! the Store's namespace (`kubectl port-forward` is the way in) and reaches
//! its Prometheus and Loki only. And the services' own way out to their
//! telemetry: Loki, and the trace receiver's port.

use k8s_openapi::api::networking::v1::{
    NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use storekeeper_contract::{ShopService, admin, labels};

use super::super::Object;
use super::super::meta::Ctx;
use super::super::netpol::{any_namespace, anywhere, namespace, pods, policy, port};
use super::telemetry::managed;
use super::{grafana, loki, prometheus, traces};
use crate::Result;

/// Ports the API server may listen on behind its Service: 443 on the
/// `kubernetes` Service's ClusterIP, 6443 on the control plane's nodes
/// (which policies judge after the Service's address is translated).
const API_SERVER_PORTS: [i32; 2] = [443, 6443];

/// The pods of the five shop services.
fn services(ctx: &Ctx<'_>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(ctx.store_labels()),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: labels::NAME.to_owned(),
            operator: "In".to_owned(),
            values: Some(
                ShopService::ALL
                    .iter()
                    .map(|s| s.name().to_owned())
                    .collect(),
            ),
        }]),
    }
}

fn services_peer(ctx: &Ctx<'_>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(services(ctx)),
        ..NetworkPolicyPeer::default()
    }
}

/// Both directions are policed; what is not allowed here is denied.
fn both() -> Vec<String> {
    vec!["Ingress".to_owned(), "Egress".to_owned()]
}

/// The three policies of the stack's pods.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let from_grafana = || Some(vec![pods(ctx, grafana::COMPONENT)]);
    let prometheus = policy(
        ctx,
        prometheus::COMPONENT,
        ctx.selector(prometheus::COMPONENT),
        NetworkPolicySpec {
            policy_types: Some(both()),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: from_grafana(),
                ports: Some(vec![port(prometheus::PORT, "TCP")]),
            }]),
            egress: Some(
                [
                    NetworkPolicyEgressRule {
                        to: Some(vec![services_peer(ctx)]),
                        ports: Some(vec![port(i32::from(admin::PORT), "TCP")]),
                    },
                    NetworkPolicyEgressRule {
                        to: Some(vec![anywhere()]),
                        ports: Some(API_SERVER_PORTS.map(|p| port(p, "TCP")).to_vec()),
                    },
                ]
                .into_iter()
                .chain(operator_metrics(ctx))
                .collect(),
            ),
            ..NetworkPolicySpec::default()
        },
    )?;
    let loki = policy(
        ctx,
        loki::COMPONENT,
        ctx.selector(loki::COMPONENT),
        NetworkPolicySpec {
            policy_types: Some(both()),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![services_peer(ctx), pods(ctx, grafana::COMPONENT)]),
                ports: Some(vec![port(loki::PORT, "TCP")]),
            }]),
            ..NetworkPolicySpec::default()
        },
    )?;
    let grafana = policy(
        ctx,
        grafana::COMPONENT,
        ctx.selector(grafana::COMPONENT),
        NetworkPolicySpec {
            policy_types: Some(both()),
            ingress: Some(vec![NetworkPolicyIngressRule {
                // Any pod of the Store's namespace; `kubectl port-forward`
                // reaches the pod through its kubelet, not this policy.
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector::default()),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![port(grafana::PORT, "TCP")]),
            }]),
            egress: Some(vec![
                NetworkPolicyEgressRule {
                    to: Some(vec![pods(ctx, prometheus::COMPONENT)]),
                    ports: Some(vec![port(prometheus::PORT, "TCP")]),
                },
                NetworkPolicyEgressRule {
                    to: Some(vec![pods(ctx, loki::COMPONENT)]),
                    ports: Some(vec![port(loki::PORT, "TCP")]),
                },
            ]),
            ..NetworkPolicySpec::default()
        },
    )?;
    Ok(vec![prometheus, loki, grafana])
}

/// Prometheus' way to the operator's metrics port, in the operator's
/// namespace (the chart's policy lets any namespace in on that port).
fn operator_metrics(ctx: &Ctx<'_>) -> Option<NetworkPolicyEgressRule> {
    let operator = ctx.platform.operator_metrics.as_ref()?;
    Some(NetworkPolicyEgressRule {
        to: Some(vec![namespace(&operator.namespace)]),
        ports: Some(vec![port(i32::from(operator.port), "TCP")]),
    })
}

/// `<store>-telemetry`: the five services may send log records to the
/// Store's Loki (`Managed`) and spans to the trace receiver's port
/// (`traces`), wherever it runs, in the cluster or outside; nothing when
/// they send neither.
pub fn telemetry(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let mut egress = Vec::new();
    if managed(ctx) {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![pods(ctx, loki::COMPONENT)]),
            ports: Some(vec![port(loki::PORT, "TCP")]),
        });
    }
    let receiver = ctx.spec.observability.traces.as_ref();
    if let Some(number) = receiver.and_then(|t| traces::port(&t.endpoint)) {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![any_namespace(), anywhere()]),
            ports: Some(vec![port(i32::from(number), "TCP")]),
        });
    }
    if egress.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![policy(
        ctx,
        "telemetry",
        services(ctx),
        NetworkPolicySpec {
            policy_types: Some(vec!["Egress".to_owned()]),
            egress: Some(egress),
            ..NetworkPolicySpec::default()
        },
    )?])
}
