//! The edge: one host per Store, the contract's routes
//! (`ShopService::ingress_paths`) — as an Ingress (optional TLS), or, when
//! `spec.ingress.gateway` names a Gateway API Gateway, as an HTTPRoute
//! attached to it (TLS is then the Gateway listener's).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use storekeeper_contract::ShopService;
use storekeeper_contract::admin::HTTP_PORT_NAME;

use serde_json::{Value, json};

use super::meta::Ctx;
use super::{ChildKind, Object, Step};
use crate::api::{GatewayRef, IssuerKind};
use crate::{Error, Result};

/// Component name.
pub const COMPONENT: &str = "ingress";

/// The annotation cert-manager's ingress-shim reads: it creates a
/// Certificate for the Ingress's TLS hosts into its TLS Secret from this
/// issuer, and renews it.
fn issuer_annotation(kind: IssuerKind) -> &'static str {
    match kind {
        IssuerKind::ClusterIssuer => "cert-manager.io/cluster-issuer",
        IssuerKind::Issuer => "cert-manager.io/issuer",
    }
}

/// The storefront URL shoppers use.
pub fn url(ctx: &Ctx<'_>) -> String {
    let scheme = if ctx.spec.ingress.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", ctx.spec.ingress.host)
}

/// Name of the HTTPRoute.
pub const ROUTE_COMPONENT: &str = "edge";

/// The Ingress, or the HTTPRoute when the Store names a Gateway.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    match &ctx.spec.ingress.gateway {
        Some(gateway) => Ok(vec![http_route(ctx, gateway)?]),
        None => ingress(ctx),
    }
}

/// One rule per service: its paths as prefixes, to its Service's API port.
fn http_route(ctx: &Ctx<'_>, gateway: &GatewayRef) -> Result<Object> {
    let rules: Vec<Value> = ShopService::ALL
        .iter()
        .filter(|service| !service.ingress_paths().is_empty())
        .map(|service| {
            let matches: Vec<Value> = service
                .ingress_paths()
                .iter()
                .map(|path| json!({"path": {"type": "PathPrefix", "value": path}}))
                .collect();
            json!({
                "matches": matches,
                "backendRefs": [{"name": ctx.name(service.name()), "port": service.port()}],
            })
        })
        .collect();
    let mut parent = json!({
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": gateway.name,
        "namespace": gateway.namespace.as_deref().unwrap_or(&ctx.namespace),
    });
    if let Some(section) = &gateway.section_name {
        parent["sectionName"] = json!(section);
    }
    let name = ctx.name(ROUTE_COMPONENT);
    let metadata = serde_json::to_value(ctx.meta(name.clone(), COMPONENT, &ctx.spec.version))
        .map_err(|source| Error::Serialize {
            what: format!("HTTPRoute {name}"),
            source,
        })?;
    Ok(Object::from_json(
        ChildKind::HttpRoute,
        Step::Edge,
        &name,
        json!({
            "metadata": metadata,
            "spec": {
                "parentRefs": [parent],
                "hostnames": [ctx.spec.ingress.host],
                "rules": rules,
            },
        }),
    ))
}

/// The Ingress object.
fn ingress(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let paths = ShopService::ALL
        .iter()
        .flat_map(|service| {
            service
                .ingress_paths()
                .iter()
                .map(move |path| HTTPIngressPath {
                    path: Some((*path).to_owned()),
                    path_type: "Prefix".to_owned(),
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: ctx.name(service.name()),
                            port: Some(ServiceBackendPort {
                                name: Some(HTTP_PORT_NAME.to_owned()),
                                ..ServiceBackendPort::default()
                            }),
                        }),
                        ..IngressBackend::default()
                    },
                })
        })
        .collect();
    let spec = &ctx.spec.ingress;
    let name = ctx.name(COMPONENT);
    let mut metadata = ctx.meta(name.clone(), COMPONENT, &ctx.spec.version);
    if let Some(issuer) = spec.tls.as_ref().and_then(|tls| tls.issuer.as_ref()) {
        metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(
                issuer_annotation(issuer.kind).to_owned(),
                issuer.name.clone(),
            );
    }
    let ingress = Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: Some(spec.class_name.clone()),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            tls: spec.tls.as_ref().map(|tls| {
                vec![IngressTLS {
                    hosts: Some(vec![spec.host.clone()]),
                    secret_name: Some(tls.secret_name.clone()),
                }]
            }),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    };
    Ok(vec![Object::new(
        ChildKind::Ingress,
        Step::Edge,
        &name,
        &ingress,
    )?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::store;
    use crate::render::render as render_store;

    #[test]
    fn a_cert_manager_issuer_annotates_the_ingress_for_its_certificate() {
        let ingress_of = |s: &crate::api::Store| {
            render_store(s)
                .unwrap()
                .objects
                .into_iter()
                .find(|o| o.kind == ChildKind::Ingress)
                .unwrap()
                .value
        };
        let mut s = store("shop");
        s.spec.ingress.tls = Some(crate::api::TlsSpec {
            secret_name: "shop-tls".into(),
            issuer: None,
        });
        let own_secret = ingress_of(&s);
        assert!(
            own_secret["metadata"]["annotations"]
                .as_object()
                .is_none_or(|a| a.keys().all(|k| !k.starts_with("cert-manager.io/")))
        );
        for (kind, annotation) in [
            (IssuerKind::ClusterIssuer, "cert-manager.io/cluster-issuer"),
            (IssuerKind::Issuer, "cert-manager.io/issuer"),
        ] {
            s.spec.ingress.tls = Some(crate::api::TlsSpec {
                secret_name: "shop-tls".into(),
                issuer: Some(crate::api::IssuerRef {
                    name: "letsencrypt".into(),
                    kind,
                }),
            });
            let ingress = ingress_of(&s);
            assert_eq!(
                ingress["metadata"]["annotations"][annotation],
                "letsencrypt"
            );
            assert_eq!(
                ingress["spec"]["tls"],
                json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}])
            );
        }
        assert_eq!(url(&Ctx::new(&s).unwrap()), "https://shop.example.com");
    }

    #[test]
    fn a_gateway_gets_an_http_route_instead_of_the_ingress() {
        let mut s = store("shop");
        s.spec.ingress.gateway = Some(GatewayRef {
            name: "shop".into(),
            namespace: Some("storekeeper-edge".into()),
            section_name: Some("https".into()),
        });
        let rendered = render_store(&s).unwrap();
        assert!(
            rendered
                .objects
                .iter()
                .all(|o| o.kind != ChildKind::Ingress)
        );
        let route = rendered
            .objects
            .iter()
            .find(|o| o.kind == ChildKind::HttpRoute)
            .unwrap();
        assert_eq!(route.name, "shop-edge");
        assert_eq!(
            route.value["spec"]["parentRefs"],
            json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shop",
                "namespace": "storekeeper-edge", "sectionName": "https"}])
        );
        assert_eq!(
            route.value["spec"]["hostnames"],
            json!([s.spec.ingress.host])
        );
        let rules = route.value["spec"]["rules"].as_array().unwrap();
        let storefront = rules
            .iter()
            .find(|r| r["backendRefs"][0]["name"] == json!("shop-storefront"))
            .unwrap();
        assert_eq!(
            storefront["backendRefs"][0]["port"],
            json!(ShopService::Storefront.port())
        );
        assert_eq!(
            storefront["matches"][0]["path"],
            json!({"type": "PathPrefix", "value": "/"})
        );
        let paths: usize = ShopService::ALL
            .iter()
            .map(|s| s.ingress_paths().len())
            .sum();
        let matched: usize = rules
            .iter()
            .map(|r| r["matches"].as_array().unwrap().len())
            .sum();
        assert_eq!(matched, paths, "every contract path is routed");
    }

    #[test]
    fn without_a_gateway_the_ingress_stays() {
        let rendered = render_store(&store("shop")).unwrap();
        assert!(
            rendered
                .objects
                .iter()
                .any(|o| o.kind == ChildKind::Ingress)
        );
        assert!(
            rendered
                .objects
                .iter()
                .all(|o| o.kind != ChildKind::HttpRoute)
        );
    }
}
