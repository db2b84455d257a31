//! Watch streams: replay the changes after the requested `resourceVersion`,
//! then follow live ones, filtered by namespace and selectors, as
//! newline-delimited `{"type", "object"}` events. An object that starts or
//! stops matching a label selector arrives as ADDED or DELETED, as from a
//! real watch cache. Events can be held back per resource type (watch lag),
//! the stream ends after `timeoutSeconds` with a BOOKMARK, and a watcher that
//! falls too far behind the live feed is cut off to resume (like a real
//! server closing a slow watch).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, sleep_until};

use crate::objects::{Change, ChangeType, Subscription};
use crate::resources::ResourceType;
use crate::selectors::Selector;

/// Per-type delay before a change reaches watches.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lags(Arc<Mutex<HashMap<(String, String), Duration>>>);

impl Lags {
    /// Holds back every change of `t` by `lag`.
    pub(crate) fn set(&self, t: &ResourceType, lag: Duration) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((t.group.clone(), t.plural.clone()), lag);
    }

    fn get(&self, group: &str, plural: &str) -> Duration {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(group.to_owned(), plural.to_owned()))
            .copied()
            .unwrap_or_default()
    }
}

/// What a watch request asked for.
pub(crate) struct WatchRequest {
    pub(crate) t: ResourceType,
    pub(crate) namespace: Option<String>,
    pub(crate) labels: Selector,
    pub(crate) fields: Selector,
    pub(crate) timeout: Duration,
    pub(crate) bookmarks: bool,
    /// `sendInitialEvents=true`: end the replay with the
    /// `k8s.io/initial-events-end` bookmark.
    pub(crate) initial_events_end: bool,
    /// Objects as `PartialObjectMetadata`.
    pub(crate) metadata_only: bool,
    /// The version the watch starts after (for bookmarks before any event).
    pub(crate) start: u64,
}

/// The watch's events as body chunks, one line each.
pub(crate) fn stream(
    sub: Subscription,
    req: WatchRequest,
    lags: Lags,
) -> impl Stream<Item = Bytes> + Send + 'static {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(sub, req, lags, tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
}

/// Converts a full object to the `PartialObjectMetadata` a metadata-only
/// request gets.
pub(crate) fn metadata_only(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

struct Watch {
    req: WatchRequest,
    lags: Lags,
    tx: mpsc::Sender<Bytes>,
    deadline: Instant,
    /// Every change up to here was handled (sent or filtered out).
    seen: u64,
}

enum Flow {
    Continue,
    Stop,
}

async fn run(mut sub: Subscription, req: WatchRequest, lags: Lags, tx: mpsc::Sender<Bytes>) {
    let mut w = Watch {
        deadline: Instant::now() + req.timeout,
        seen: req.start,
        req,
        lags,
        tx,
    };
    for change in std::mem::take(&mut sub.replay) {
        if let Flow::Stop = w.deliver(&change).await {
            return;
        }
    }
    w.seen = w.seen.max(sub.rv);
    if w.req.initial_events_end {
        let mark = w.bookmark(true);
        if w.tx.send(mark).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            () = sleep_until(w.deadline) => break,
            () = w.tx.closed() => return,
            next = sub.live.recv() => match next {
                Ok(change) if change.rv > w.seen => {
                    if let Flow::Stop = w.deliver(&change).await {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    if w.req.bookmarks {
        let mark = w.bookmark(false);
        let _ = w.tx.send(mark).await;
    }
}

impl Watch {
    fn selected(&self, object: &Value) -> bool {
        self.req.labels.matches_labels(object) && self.req.fields.matches_fields(object)
    }

    /// The event type this watch reports for `change`, if any.
    fn event_type(&self, change: &Change) -> Option<&'static str> {
        if change.group != self.req.t.group || change.plural != self.req.t.plural {
            return None;
        }
        if self
            .req
            .namespace
            .as_ref()
            .is_some_and(|ns| *ns != change.namespace)
        {
            return None;
        }
        let now = self.selected(&change.object);
        let before = change.old.as_ref().is_some_and(|o| self.selected(o));
        match (change.kind, before, now) {
            (ChangeType::Added, _, true) | (ChangeType::Modified, false, true) => Some("ADDED"),
            (ChangeType::Modified, true, true) => Some("MODIFIED"),
            (ChangeType::Deleted, _, true) | (ChangeType::Modified, true, false) => Some("DELETED"),
            _ => None,
        }
    }

    /// Sends one change (after its lag); `Stop` when the client went away or
    /// the timeout fell inside the lag.
    async fn deliver(&mut self, change: &Change) -> Flow {
        if let Some(kind) = self.event_type(change) {
            let due = change.at + self.lags.get(&change.group, &change.plural);
            if due > self.deadline {
                sleep_until(self.deadline).await;
                return Flow::Stop;
            }
            if due > Instant::now() {
                sleep_until(due).await;
            }
            // Serialised straight from the shared object: no copy per watch.
            let text = if self.req.metadata_only {
                format!(
                    "{{\"type\":\"{kind}\",\"object\":{}}}\n",
                    metadata_only(&change.object)
                )
            } else {
                format!("{{\"type\":\"{kind}\",\"object\":{}}}\n", change.object)
            };
            if self.tx.send(Bytes::from(text)).await.is_err() {
                return Flow::Stop;
            }
        }
        self.seen = change.rv;
        Flow::Continue
    }

    fn bookmark(&self, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": self.seen.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(&json!({
            "type": "BOOKMARK",
            "object": {
                "apiVersion": self.req.t.api_version(),
                "kind": self.req.t.kind,
                "metadata": metadata,
            },
        }))
    }
}

fn line(v: &Value) -> Bytes {
    let mut text = v.to_string();
    text.push('\n');
    Bytes::from(text)
}
