//! The Ingress: one host per Store, the contract's routes
//! (`ShopService::ingress_paths`), optional TLS.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use storekeeper_contract::ShopService;
use storekeeper_contract::admin::HTTP_PORT_NAME;

use super::meta::Ctx;
use super::{ChildKind, Object, Step};
use crate::Result;

/// Component name.
pub const COMPONENT: &str = "ingress";

/// The storefront URL shoppers use.
pub fn url(ctx: &Ctx<'_>) -> String {
    let scheme = if ctx.spec.ingress.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", ctx.spec.ingress.host)
}

/// The Ingress object.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
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
    let ingress = Ingress {
        metadata: ctx.meta(name.clone(), COMPONENT, &ctx.spec.version),
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
