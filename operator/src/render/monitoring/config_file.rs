//! The managed stack's configuration files, written as YAML.

use serde_json::Value;

use crate::{Error, Result};

/// A configuration file as YAML; `what` names it in the error.
pub(super) fn yaml(value: &Value, what: &str) -> Result<String> {
    serde_yaml::to_string(value).map_err(|e| Error::Serialize {
        what: what.to_owned(),
        source: serde_json::Error::io(std::io::Error::other(e.to_string())),
    })
}
