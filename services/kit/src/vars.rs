//! Reading environment variables with one-line errors: the `Source` of
//! values (the process environment, or a map in tests), `Vars` over it with
//! typed `or`/`optional`/`required`/`secret` lookups, and `ConfigError`, which
//! names the variable and never echoes a secret. The service settings
//! (`config`) and the event workers' settings (`events`) both read through it.

use std::{collections::HashMap, fmt::Display, str::FromStr};

/// Why a configuration value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("missing required environment variable {name}")]
    Missing {
        /// The variable's name.
        name: String,
    },
    /// A variable is set but does not parse as the expected type.
    #[error("invalid {name}={value:?}: {reason}")]
    Invalid {
        /// The variable's name.
        name: String,
        /// The raw value (never a secret: secrets are reported without it).
        value: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A secret is given both as a value and as a file (`<NAME>_FILE`):
    /// which one wins would be a guess.
    #[error("both {name} and {file_name} are set: give the secret one way only")]
    Ambiguous {
        /// The secret's variable.
        name: String,
        /// The variable naming its file.
        file_name: String,
    },
    /// The file a `<NAME>_FILE` variable names cannot be read.
    #[error("cannot read {file_name}={path:?}: {reason}")]
    Unreadable {
        /// The variable naming the file.
        file_name: String,
        /// The path it names.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
}

impl ConfigError {
    /// Reports a malformed value whose content must not be echoed (keys, passwords).
    pub fn invalid_secret(name: &str, reason: impl Display) -> Self {
        Self::Invalid {
            name: name.to_owned(),
            value: "<redacted>".to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// Where variables come from: the process environment, or a map in tests
/// (the 2024 edition makes `std::env::set_var` unsafe, so tests never touch
/// the real environment).
pub trait Source {
    /// Returns the raw value of `name`, if set.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<S: Source + ?Sized> Source for Box<S> {
    fn get(&self, name: &str) -> Option<String> {
        (**self).get(name)
    }
}

impl<H: std::hash::BuildHasher> Source for HashMap<String, String, H> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl<H: std::hash::BuildHasher> Source for HashMap<&str, &str, H> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|v| (*v).to_owned())
    }
}

/// Typed reads from a [`Source`]. An empty value counts as unset, so
/// `PORT=` in a manifest behaves like no `PORT` at all.
#[derive(Debug, Clone, Copy)]
pub struct Vars<S>(pub S);

impl<S: Source> Vars<S> {
    /// Reads `name`, or `None` when unset; malformed values are an error.
    pub fn optional<T>(&self, name: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.0.get(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(raw) => raw
                .trim()
                .parse()
                .map(Some)
                .map_err(|err: T::Err| ConfigError::Invalid {
                    name: name.to_owned(),
                    value: raw.clone(),
                    reason: err.to_string(),
                }),
        }
    }

    /// Reads `name`, falling back to `default` when unset.
    pub fn or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.optional(name)?.unwrap_or(default))
    }

    /// Reads `name`, which must be set.
    pub fn required<T>(&self, name: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.optional(name)?.ok_or_else(|| ConfigError::Missing {
            name: name.to_owned(),
        })
    }

    /// Reads a secret (a PEM key, a password) without trimming it and without
    /// ever echoing it in an error.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.trim().is_empty())
    }
}
