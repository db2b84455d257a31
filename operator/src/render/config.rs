//! The Store-wide ConfigMap (non-secret settings every service reads through
//! `envFrom`) and one ServiceAccount per workload.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use storekeeper_contract::{ShopService, env};

use super::meta::Ctx;
use super::object::short_hash;
use super::{ChildKind, Object, Step};
use crate::Result;

/// Component label of the shared ConfigMap.
const COMPONENT: &str = "config";

/// The shared settings; also hashed into pod templates so a change rolls pods.
pub fn data() -> BTreeMap<String, String> {
    BTreeMap::from([
        (env::LOG_FORMAT.to_owned(), env::LOG_FORMAT_JSON.to_owned()),
        (env::RUST_LOG.to_owned(), "info".to_owned()),
        // Every service is one hop behind its caller: the ingress controller
        // sets X-Forwarded-For, and the storefront forwards only the
        // shopper's resolved address when it calls user-service.
        (env::TRUSTED_PROXY_HOPS.to_owned(), "1".to_owned()),
    ])
}

/// Hash of the shared settings, stamped on pod templates.
pub fn data_hash() -> String {
    short_hash(&data())
}

/// ConfigMap name.
pub fn name(ctx: &Ctx<'_>) -> String {
    ctx.name(COMPONENT)
}

/// The ConfigMap and the ServiceAccounts.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let cm = ConfigMap {
        metadata: ctx.meta(name(ctx), COMPONENT, &ctx.spec.version),
        data: Some(data()),
        ..ConfigMap::default()
    };
    let mut out = vec![Object::new(
        ChildKind::ConfigMap,
        Step::Foundation,
        &name(ctx),
        &cm,
    )?];
    for service in ShopService::ALL {
        out.push(service_account(
            ctx,
            service.name(),
            ctx.service_version(service),
        )?);
    }
    Ok(out)
}

/// A ServiceAccount that mounts no API token: no workload here talks to the API.
pub fn service_account(ctx: &Ctx<'_>, component: &str, version: &str) -> Result<Object> {
    let name = ctx.name(component);
    let sa = ServiceAccount {
        metadata: ctx.meta(name.clone(), component, version),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };
    Object::new(ChildKind::ServiceAccount, Step::Foundation, &name, &sa)
}
