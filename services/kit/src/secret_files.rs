//! Secrets given as files: every variable the contract marks secret
//! (`storekeeper_contract::env::secrets`) may instead be named by
//! `<NAME>_FILE`, the path of a file holding its value. The operator mounts
//! the Store's Secrets as read-only files and passes those paths, so keys
//! and passwords stay out of the process environment (which `/proc`,
//! crash reports and `kubectl describe` of an env-dumping pod can show).
//!
//! The files are read once, at start-up, before any setting is parsed; a
//! secret given both ways, or a file that cannot be read, stops the service
//! with one line naming the variable (and the path, never the content).

use std::collections::HashMap;

use storekeeper_contract::env;

use crate::vars::{ConfigError, Source};

/// A [`Source`] whose secrets come from their `<NAME>_FILE` when one is set,
/// and from the wrapped source otherwise.
#[derive(Debug)]
pub struct SecretFiles<S> {
    source: S,
    from_files: HashMap<&'static str, String>,
}

impl<S: Source> SecretFiles<S> {
    /// Reads the file of every secret `source` names one for.
    pub fn resolve(source: S) -> Result<Self, ConfigError> {
        let mut from_files = HashMap::new();
        for variable in env::secrets() {
            let Some(file_name) = variable.file_variable() else {
                continue;
            };
            let Some(path) = set(&source, &file_name) else {
                continue;
            };
            if set(&source, variable.name).is_some() {
                return Err(ConfigError::Ambiguous {
                    name: variable.name.to_owned(),
                    file_name,
                });
            }
            let path = path.trim().to_owned();
            let content =
                std::fs::read_to_string(&path).map_err(|err| ConfigError::Unreadable {
                    file_name,
                    path,
                    reason: err.to_string(),
                })?;
            from_files.insert(variable.name, without_final_newline(content));
        }
        Ok(Self { source, from_files })
    }
}

impl<S: Source> Source for SecretFiles<S> {
    fn get(&self, name: &str) -> Option<String> {
        self.from_files
            .get(name)
            .cloned()
            .or_else(|| self.source.get(name))
    }
}

/// `name`'s value when set and not blank (as [`crate::vars::Vars`] counts it).
fn set<S: Source>(source: &S, name: &str) -> Option<String> {
    source.get(name).filter(|value| !value.trim().is_empty())
}

/// Drops the one line ending editors and `kubectl create secret
/// --from-file` leave at the end of a file; anything else is kept as is.
fn without_final_newline(mut content: String) -> String {
    if content.ends_with('\n') {
        content.pop();
        if content.ends_with('\r') {
            content.pop();
        }
    }
    content
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, path::PathBuf};

    use super::*;

    /// A file in the temporary directory holding `content`, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(content: &str) -> Self {
            let path = std::env::temp_dir().join(format!("secret-{}", uuid::Uuid::new_v4()));
            std::fs::write(&path, content).unwrap();
            Self(path)
        }

        fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn source(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_secret_file_gives_the_value_without_its_final_newline() {
        let key = TempFile::new("-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n");
        let password = TempFile::new("s3cret\r\n");
        let vars = SecretFiles::resolve(source(&[
            ("TOKEN_PUBLIC_KEY_FILE", &key.path()),
            ("ADMIN_PASSWORD_FILE", &password.path()),
            ("PORT", "8080"),
        ]))
        .unwrap();
        assert_eq!(
            vars.get("TOKEN_PUBLIC_KEY").unwrap(),
            "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----"
        );
        assert_eq!(vars.get("ADMIN_PASSWORD").unwrap(), "s3cret");
        assert_eq!(vars.get("PORT").unwrap(), "8080");
        assert_eq!(vars.get("SESSION_KEY"), None);
    }

    #[test]
    fn values_in_the_environment_still_work() {
        let vars = SecretFiles::resolve(source(&[("SESSION_KEY", "abc")])).unwrap();
        assert_eq!(vars.get("SESSION_KEY").unwrap(), "abc");
    }

    #[test]
    fn only_secrets_are_read_from_files() {
        let file = TempFile::new("9999");
        let vars = SecretFiles::resolve(source(&[("PORT_FILE", &file.path())])).unwrap();
        assert_eq!(vars.get("PORT"), None);
    }

    #[test]
    fn a_secret_given_both_ways_is_refused() {
        let file = TempFile::new("postgres://u:p@db/x");
        let err = SecretFiles::resolve(source(&[
            ("DATABASE_URL", "postgres://u:q@db/x"),
            ("DATABASE_URL_FILE", &file.path()),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "both DATABASE_URL and DATABASE_URL_FILE are set: give the secret one way only"
        );
    }

    #[test]
    fn an_unreadable_file_names_the_variable_and_the_path() {
        let path = std::env::temp_dir().join(format!("missing-{}", uuid::Uuid::new_v4()));
        let path = path.display().to_string();
        let err = SecretFiles::resolve(source(&[("TOKEN_PRIVATE_KEY_FILE", &path)])).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cannot read TOKEN_PRIVATE_KEY_FILE={path:?}: ")),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
}
