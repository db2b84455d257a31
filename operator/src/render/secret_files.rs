//! Credentials as files: the Secret keys a container reads (token keys,
//! the session key, the admin password, an external data store's URL) are
//! projected read-only into one volume under [`MOUNT_PATH`], and the
//! container gets `<VARIABLE>_FILE=<path>` instead of the value, which the
//! kit reads at start-up (`storekeeper_contract::env::FILE_SUFFIX`). Values
//! in files stay out of the process environment, where anything that can
//! read `/proc/<pid>/environ` or dumps the environment on a crash sees them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvVar, KeyToPath, ProjectedVolumeSource, SecretProjection, Volume, VolumeMount,
    VolumeProjection,
};
use storekeeper_contract::env::FILE_SUFFIX;

use super::pod;

/// Where the credential files are mounted.
pub const MOUNT_PATH: &str = "/var/run/secrets/storekeeper";
/// The volume's name.
const VOLUME: &str = "credentials";
/// Readable by the file's group — the pod's `fsGroup`, the service's own
/// user — and by nobody else; never writable.
const MODE: i32 = 0o440;

/// One Secret key a container reads as a file instead of `variable`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFile {
    variable: &'static str,
    secret: String,
    key: String,
}

impl SecretFile {
    /// `key` of Secret `secret`, standing for the variable `variable`.
    pub fn new(variable: &'static str, secret: &str, key: &str) -> Self {
        Self {
            variable,
            secret: secret.to_owned(),
            key: key.to_owned(),
        }
    }

    /// The file's name in the volume: the variable's, in lower case.
    fn file_name(&self) -> String {
        self.variable.to_ascii_lowercase()
    }

    /// `<VARIABLE>_FILE=<path of the file>`.
    pub fn env(&self) -> EnvVar {
        pod::env_value(
            &format!("{}{FILE_SUFFIX}", self.variable),
            format!("{MOUNT_PATH}/{}", self.file_name()),
        )
    }
}

/// The projected volume holding `files`, one source per Secret, or `None`
/// when there are none. A missing Secret or key keeps the pod from
/// starting, as a `secretKeyRef` would.
pub fn volume(files: &[SecretFile]) -> Option<Volume> {
    let mut by_secret: BTreeMap<&str, Vec<KeyToPath>> = BTreeMap::new();
    for file in files {
        by_secret.entry(&file.secret).or_default().push(KeyToPath {
            key: file.key.clone(),
            path: file.file_name(),
            ..KeyToPath::default()
        });
    }
    (!by_secret.is_empty()).then(|| Volume {
        name: VOLUME.to_owned(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(MODE),
            sources: Some(
                by_secret
                    .into_iter()
                    .map(|(secret, items)| VolumeProjection {
                        secret: Some(SecretProjection {
                            name: secret.to_owned(),
                            items: Some(items),
                            optional: Some(false),
                        }),
                        ..VolumeProjection::default()
                    })
                    .collect(),
            ),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    })
}

/// The read-only mount of [`volume`] at [`MOUNT_PATH`].
pub fn mount() -> VolumeMount {
    VolumeMount {
        read_only: Some(true),
        ..pod::mount(VOLUME, MOUNT_PATH)
    }
}

/// The container's volume mounts and the pod's volumes: the scratch `/tmp`
/// every workload has, plus the credentials when there are `files`.
pub fn with_scratch(files: &[SecretFile]) -> (Vec<VolumeMount>, Vec<Volume>) {
    let mut mounts = vec![pod::mount("tmp", "/tmp")];
    let mut volumes = vec![pod::scratch("tmp")];
    if let Some(credentials) = volume(files) {
        mounts.push(mount());
        volumes.push(credentials);
    }
    (mounts, volumes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn files_are_projected_read_only_per_secret_and_named_by_variable() {
        let files = [
            SecretFile::new("TOKEN_PUBLIC_KEY", "shop-token-keys", "public.pem"),
            SecretFile::new("ADMIN_PASSWORD", "shop-admin", "password"),
            SecretFile::new("TOKEN_PRIVATE_KEY", "shop-token-keys", "private.pem"),
        ];
        assert_eq!(
            serde_json::to_value(files[0].env()).unwrap(),
            json!({
                "name": "TOKEN_PUBLIC_KEY_FILE",
                "value": "/var/run/secrets/storekeeper/token_public_key",
            })
        );
        assert_eq!(
            serde_json::to_value(volume(&files).unwrap()).unwrap(),
            json!({
                "name": "credentials",
                "projected": {
                    "defaultMode": 0o440,
                    "sources": [
                        {"secret": {"name": "shop-admin", "optional": false, "items": [
                            {"key": "password", "path": "admin_password"},
                        ]}},
                        {"secret": {"name": "shop-token-keys", "optional": false, "items": [
                            {"key": "public.pem", "path": "token_public_key"},
                            {"key": "private.pem", "path": "token_private_key"},
                        ]}},
                    ],
                },
            })
        );
        assert_eq!(
            serde_json::to_value(mount()).unwrap(),
            json!({"name": "credentials", "mountPath": MOUNT_PATH, "readOnly": true})
        );
    }

    #[test]
    fn no_files_no_credentials_volume() {
        assert_eq!(volume(&[]), None);
        let (mounts, volumes) = with_scratch(&[]);
        assert_eq!((mounts.len(), volumes.len()), (1, 1));
    }
}
