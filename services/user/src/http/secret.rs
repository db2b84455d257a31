//! Passwords and refresh tokens as request fields.

use serde::Deserialize;

/// A secret string from a request: deserializes like a `String`, never
/// prints (so a `Debug` of a request can reach a log safely).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub(super) struct Secret(String);

impl Secret {
    pub(super) fn expose(&self) -> &str {
        &self.0
    }

    pub(super) fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}
