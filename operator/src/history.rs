//! The Store's revision history in the cluster: ControllerRevisions owned by
//! the Store, one per revision it rolled out (the pure rules are in
//! `rollout::revision`). Kept in the cluster, not in memory, so a restarted
//! operator can still render the stable revision and roll back to it.

use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::api::Store;
use crate::identity::FIELD_MANAGER;
use crate::render::meta::Ctx;
use crate::rollout::revision::{History, Stored, Write};
use crate::{Error, Result};

fn api(client: &Client, ns: &str) -> Api<ControllerRevision> {
    Api::namespaced(client.clone(), ns)
}

/// Lists the Store's ControllerRevisions. One this operator cannot read
/// (written by a newer version, say) is skipped with a warning: it can
/// still be pruned by name, never rolled back to.
pub async fn load(client: &Client, ns: &str, store: &str) -> Result<History> {
    let lp = ListParams::default().labels(&Ctx::children_selector(store));
    let listed = api(client, ns).list(&lp).await?;
    let values = listed
        .items
        .iter()
        .map(|item| {
            serde_json::to_value(item).map_err(|source| Error::Serialize {
                what: format!("ControllerRevision {}", item.name_any()),
                source,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(parse(&values))
}

/// The history in `values` (ControllerRevisions as JSON, listed or cached),
/// skipping with a warning any this operator cannot read.
pub fn parse(values: &[serde_json::Value]) -> History {
    let mut revisions = Vec::new();
    for value in values {
        match Stored::parse(value) {
            Ok(stored) => revisions.push(stored),
            Err(err) => {
                let name = value
                    .pointer("/metadata/name")
                    .and_then(serde_json::Value::as_str);
                warn!(revision = name.unwrap_or_default(), error = %err, "unreadable revision skipped");
            }
        }
    }
    History::new(revisions)
}

/// Stores the Store's current spec as the newest revision (create, or
/// renumber when the spec went back to an older one).
pub async fn record(client: &Client, ns: &str, store: &Store, history: &History) -> Result<()> {
    let Some(write) = history.write_for(store)? else {
        return Ok(());
    };
    let revisions = api(client, ns);
    match write {
        Write::Create(revision) => {
            let post = PostParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PostParams::default()
            };
            match revisions.create(&post, &revision).await {
                Ok(created) => info!(revision = %created.name_any(), "recorded revision"),
                // Recorded by an earlier pass whose list this one did not see.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Write::Renumber { name, number } => {
            let patch = Patch::Merge(json!({ "revision": number }));
            revisions
                .patch(&name, &PatchParams::default(), &patch)
                .await?;
        }
    }
    Ok(())
}

/// Deletes the named revisions (the history beyond its limit).
pub async fn prune(client: &Client, ns: &str, names: &[String]) -> Result<()> {
    let revisions = api(client, ns);
    for name in names {
        match revisions.delete(name, &DeleteParams::background()).await {
            Ok(_) => info!(revision = %name, "pruned revision"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
