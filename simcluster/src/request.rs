//! Reading an HTTP request the way the API server routes it: which
//! resource type, namespace, object and subresource the path names, the
//! verb, and the query parameters and headers that change the answer.

use std::collections::HashMap;

use http::{Method, header};

use crate::error::ApiError;
use crate::log::Verb;
use crate::objects::Objects;
use crate::resources::ResourceType;

/// What a URL path addresses.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// `/version`.
    Version,
    /// Discovery of one group version (`/api/v1`, `/apis/<group>/<version>`):
    /// the types served there.
    Discovery {
        /// `<group>/<version>`, or `v1` for the core group.
        group_version: String,
        /// The types served there (never empty: an unknown one is a 404).
        types: Vec<ResourceType>,
    },
    /// A collection or an object of a served type.
    Resource {
        t: ResourceType,
        namespace: Option<String>,
        name: Option<String>,
        /// The `/status` subresource.
        status: bool,
    },
}

/// A parsed request (everything but the body).
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) raw_query: String,
    pub(crate) query: HashMap<String, String>,
    pub(crate) content_type: String,
    pub(crate) accept: String,
    pub(crate) user_agent: String,
}

impl Call {
    /// Reads method, path, query and the headers that matter.
    pub(crate) fn new<B>(req: &http::Request<B>) -> Self {
        let header = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let raw_query = req.uri().query().unwrap_or_default().to_owned();
        Self {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            query: url::form_urlencoded::parse(raw_query.as_bytes())
                .into_owned()
                .collect(),
            raw_query,
            content_type: header(header::CONTENT_TYPE),
            accept: header(header::ACCEPT),
            user_agent: header(header::USER_AGENT),
        }
    }

    /// A query parameter.
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    /// Whether a boolean query parameter is `true`.
    pub(crate) fn flag(&self, key: &str) -> bool {
        self.param(key) == Some("true")
    }

    /// The field manager: `?fieldManager=`, else the user agent's product
    /// name (as the API server derives it), else `unknown`.
    pub(crate) fn manager(&self) -> String {
        self.param("fieldManager")
            .map(str::to_owned)
            .or_else(|| {
                self.user_agent
                    .split('/')
                    .next()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Whether the body is a server-side apply configuration.
    pub(crate) fn is_apply(&self) -> bool {
        self.content_type.starts_with("application/apply-patch")
    }

    /// Whether the client asked for `PartialObjectMetadata[List]`.
    pub(crate) fn wants_metadata(&self) -> bool {
        self.accept.contains("as=PartialObjectMetadata")
    }

    /// The verb of this request against `target`.
    pub(crate) fn verb(&self, target: Option<&Target>) -> Verb {
        let named = matches!(target, Some(Target::Resource { name: Some(_), .. }));
        match (
            &self.method,
            target.is_some_and(|t| matches!(t, Target::Resource { .. })),
        ) {
            (&Method::GET, true) if named => Verb::Get,
            (&Method::GET, true) if self.flag("watch") => Verb::Watch,
            (&Method::GET, true) => Verb::List,
            (&Method::POST, true) => Verb::Create,
            (&Method::PUT, true) => Verb::Update,
            (&Method::PATCH, true) if self.is_apply() => Verb::Apply,
            (&Method::PATCH, true) => Verb::Patch,
            (&Method::DELETE, true) => Verb::Delete,
            _ => Verb::Other,
        }
    }

    /// Routes the path.
    pub(crate) fn target(&self, objects: &Objects) -> Result<Target, ApiError> {
        let segments: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["version"] => return Ok(Target::Version),
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return Err(ApiError::unknown_resource()),
        };
        if rest.is_empty() {
            let types = objects.types_in(group, version);
            if types.is_empty() {
                return Err(ApiError::unknown_resource());
            }
            let group_version = if group.is_empty() {
                (*version).to_owned()
            } else {
                format!("{group}/{version}")
            };
            return Ok(Target::Discovery {
                group_version,
                types,
            });
        }
        let (namespace, plural, tail) = match rest {
            ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
                (Some((*ns).to_owned()), *plural, tail)
            }
            [plural, tail @ ..] => (None, *plural, tail),
            [] => return Err(ApiError::unknown_resource()),
        };
        let t = objects
            .type_by_url(group, version, plural)
            .ok_or_else(ApiError::unknown_resource)?;
        let (name, status) = match tail {
            [] => (None, false),
            [name] => (Some((*name).to_owned()), false),
            [name, "status"] if t.status_subresource => (Some((*name).to_owned()), true),
            _ => return Err(ApiError::unknown_resource()),
        };
        if t.namespaced == namespace.is_none() && name.is_some() {
            return Err(ApiError::unknown_resource());
        }
        Ok(Target::Resource {
            t,
            namespace,
            name,
            status,
        })
    }
}
