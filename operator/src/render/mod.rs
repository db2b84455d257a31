//! Desired state as pure, deterministic functions: a `Store` in, the list of
//! objects the shop needs out. No I/O, no clock, no randomness — equal input
//! gives byte-equal output, which `storekeeper render` and the snapshot
//! tests rely on.
//!
//! One submodule per component. Generated credentials are *not* rendered:
//! `secrets` only names the Secrets and keys the objects refer to; the
//! reconciler creates missing Secrets with random values.

pub mod backup;
pub mod components;
pub mod config;
pub mod datastore;
pub mod delegated;
pub mod images;
pub mod ingress;
pub mod kind;
pub mod meta;
pub mod migrations;
pub mod monitoring;
pub mod netpol;
pub mod object;
pub mod observability;
pub mod platform;
pub mod pod;
pub mod postgres;
pub mod rabbitmq;
pub mod redis;
pub mod secret_files;
pub mod secrets;
pub mod services;

pub use kind::{ChildKind, Delegate};
pub use object::{Object, Step};
pub use platform::{OperatorMetrics, Platform};
pub use secrets::SecretSpec;

use crate::api::Store;
use crate::validate::validate;
use crate::{Error, Result};
use meta::Ctx;

/// Everything the operator wants to exist for one Store.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// Objects to server-side apply, in apply order.
    pub objects: Vec<Object>,
    /// Secrets with generated values that must exist (created once, never applied).
    pub secrets: Vec<SecretSpec>,
}

/// Renders a Store as if nothing about the operator's own installation
/// mattered (`storekeeper render`, tests); refuses an invalid one so nothing
/// is half-applied.
pub fn render(store: &Store) -> Result<Rendered> {
    render_on(store, &Platform::default())
}

/// Renders a Store for the operator installed as `platform` says.
pub fn render_on(store: &Store, platform: &Platform) -> Result<Rendered> {
    validate(store)?;
    let ctx = Ctx::new(store)?.on(platform);
    let mut objects = Vec::new();
    objects.extend(config::render(&ctx)?);
    objects.extend(netpol::render(&ctx)?);
    objects.extend(postgres::render(&ctx)?);
    objects.extend(redis::render(&ctx)?);
    objects.extend(rabbitmq::render(&ctx)?);
    objects.extend(backup::render(&ctx)?);
    objects.extend(migrations::render(&ctx)?);
    objects.extend(services::render(&ctx)?);
    objects.extend(ingress::render(&ctx)?);
    objects.extend(observability::render(&ctx)?);
    objects.extend(monitoring::render(&ctx)?);
    objects.sort_by_key(|o| (o.step, o.kind));
    Ok(Rendered {
        objects,
        secrets: secrets::required(&ctx),
    })
}

/// Renders to one multi-document YAML stream, for `storekeeper render`.
pub fn to_yaml(rendered: &Rendered) -> Result<String> {
    let mut out = String::new();
    for object in &rendered.objects {
        out.push_str("---\n");
        let doc = serde_yaml::to_string(object.value.as_ref()).map_err(|e| Error::Serialize {
            what: format!("{} {}", object.kind.kind(), object.name),
            source: serde_json::Error::io(std::io::Error::other(e.to_string())),
        })?;
        out.push_str(&doc);
    }
    Ok(out)
}
