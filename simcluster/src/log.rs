//! What the API server was asked: every HTTP request with its verb and
//! answer, so a test or benchmark can count API requests (per Store, per
//! verb, per resource) the way an audit log would.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use http::Method;

/// The authorization verb of a request (`Apply` is a `patch` with an apply
/// body, told apart because it is what the operator mostly sends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH with a merge or JSON patch.
    Patch,
    /// PATCH with `application/apply-patch+yaml` (server-side apply).
    Apply,
    /// DELETE.
    Delete,
    /// Anything else (`/version`, unknown paths).
    Other,
}

impl Verb {
    /// Lower-case name, as in RBAC rules (`apply` stays `apply`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Apply => "apply",
            Verb::Delete => "delete",
            Verb::Other => "other",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: Method,
    /// URL path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// What the request does.
    pub verb: Verb,
    /// Plural resource, with `/status` for the subresource (empty for `/version`).
    pub resource: String,
    /// Namespace in the URL, if any.
    pub namespace: Option<String>,
    /// Object name in the URL, if any.
    pub name: Option<String>,
    /// HTTP status of the answer.
    pub code: u16,
}

/// Request counts by verb and resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts(pub BTreeMap<(Verb, String), usize>);

impl RequestCounts {
    /// Every request counted.
    pub fn total(&self) -> usize {
        self.0.values().sum()
    }

    /// Requests with this verb (any resource).
    pub fn verb(&self, verb: Verb) -> usize {
        self.0
            .iter()
            .filter(|((v, _), _)| *v == verb)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests with this verb on this resource.
    pub fn get(&self, verb: Verb, resource: &str) -> usize {
        self.0
            .get(&(verb, resource.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

impl fmt::Display for RequestCounts {
    /// One `verb resource count` line each, then the total.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ((verb, resource), n) in &self.0 {
            writeln!(f, "{verb:<7} {resource:<28} {n}")?;
        }
        write!(f, "total {}", self.total())
    }
}

/// The shared request log.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestLog(Arc<Mutex<Vec<RequestRecord>>>);

impl RequestLog {
    /// Records one served request.
    pub(crate) fn push(&self, record: RequestRecord) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
    }

    /// Every request so far, oldest first.
    pub(crate) fn records(&self) -> Vec<RequestRecord> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets every request so far.
    pub(crate) fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Requests so far, by verb and resource.
    pub(crate) fn counts(&self) -> RequestCounts {
        let mut counts = RequestCounts::default();
        for r in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            *counts.0.entry((r.verb, r.resource.clone())).or_default() += 1;
        }
        counts
    }
}
