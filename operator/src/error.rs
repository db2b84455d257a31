//! The crate's one error type. Every variant has a short, stable label that
//! the failure metric uses (`Error::metric_label`).

use std::fmt;

/// Everything that can make a reconcile or a CLI command fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API answered with an error or could not be reached.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A value could not be turned into JSON (a bug, never user input).
    #[error("serialising {what}")]
    Serialize {
        /// What was being serialised.
        what: String,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// The Store breaks a rule the schema could not express.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A Store without a namespace reached a code path that needs one.
    #[error("the Store has no namespace")]
    MissingNamespace,
    /// Generating key material for a Secret failed.
    #[error("generating secret material: {0}")]
    KeyGen(String),
}

impl Error {
    /// A short label for metrics: which kind of failure, never the message
    /// (messages would explode label cardinality and may carry names).
    pub fn metric_label(&self) -> String {
        match self {
            Error::Kube(kube::Error::Api(status)) => {
                format!("api_{}", status.code)
            }
            Error::Kube(_) => "api_unreachable".to_owned(),
            Error::Serialize { .. } => "serialize".to_owned(),
            Error::Invalid(_) => "invalid_spec".to_owned(),
            Error::MissingNamespace => "missing_namespace".to_owned(),
            Error::KeyGen(_) => "keygen".to_owned(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One or more broken rules, each naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// `(field path, what is wrong)` pairs, in spec order.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .problems
            .iter()
            .map(|(field, msg)| format!("{field}: {msg}"))
            .collect();
        f.write_str(&parts.join("; "))
    }
}
