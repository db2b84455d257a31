//! Injected failures: make the next matching request(s) fail with a chosen
//! `Status`, to test how the operator reports a rejected apply or an
//! unavailable API without a real admission webhook or outage.

use std::sync::{Arc, Mutex, PoisonError};

use crate::error::ApiError;
use crate::log::Verb;

/// A failure waiting for its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    verb: Verb,
    resource: String,
    name: Option<String>,
    error: ApiError,
    times: usize,
}

impl Fault {
    /// Fails the next `verb` on `resource` (a plural, with `/status` for the
    /// subresource) with `500 InternalError` until told otherwise.
    pub fn new(verb: Verb, resource: &str) -> Self {
        Self {
            verb,
            resource: resource.to_owned(),
            name: None,
            error: ApiError::new(500, "InternalError", "injected failure"),
            times: 1,
        }
    }

    /// Only requests for the object `name`.
    #[must_use]
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Answer with this code, reason and message (e.g. `422`, `Invalid`).
    #[must_use]
    pub fn answer(mut self, code: u16, reason: &str, message: &str) -> Self {
        self.error = ApiError::new(code, reason, message);
        self
    }

    /// Fail this many matching requests (default one).
    #[must_use]
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    fn matches(&self, verb: Verb, resource: &str, name: Option<&str>) -> bool {
        self.verb == verb
            && self.resource == resource
            && self.name.as_deref().is_none_or(|want| Some(want) == name)
    }
}

/// The pending faults.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults(Arc<Mutex<Vec<Fault>>>);

impl Faults {
    /// Arms a fault.
    pub(crate) fn add(&self, fault: Fault) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fault);
    }

    /// The error for this request, if a fault matches (using up one of its times).
    pub(crate) fn take(&self, verb: Verb, resource: &str, name: Option<&str>) -> Option<ApiError> {
        let mut faults = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let i = faults
            .iter()
            .position(|f| f.times > 0 && f.matches(verb, resource, name))?;
        faults[i].times -= 1;
        let error = faults[i].error.clone();
        faults.retain(|f| f.times > 0);
        Some(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_fires_its_times_on_matching_requests_only() {
        let faults = Faults::default();
        faults.add(
            Fault::new(Verb::Apply, "deployments")
                .named("shop-user")
                .answer(422, "Invalid", "bad")
                .times(2),
        );
        assert!(
            faults
                .take(Verb::Apply, "deployments", Some("shop-order"))
                .is_none()
        );
        assert!(
            faults
                .take(Verb::Patch, "deployments", Some("shop-user"))
                .is_none()
        );
        let e = faults
            .take(Verb::Apply, "deployments", Some("shop-user"))
            .unwrap();
        assert_eq!((e.code, e.message.as_str()), (422, "bad"));
        assert!(
            faults
                .take(Verb::Apply, "deployments", Some("shop-user"))
                .is_some()
        );
        assert!(
            faults
                .take(Verb::Apply, "deployments", Some("shop-user"))
                .is_none()
        );
    }
}
