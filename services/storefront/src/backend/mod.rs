//! Clients for the four shop APIs the storefront calls server-side.
//!
//! Every call goes through [`Call::send`], which turns the many ways a call
//! can fail into one small [`BackendError`] the pages branch on: the service is
//! down (show a friendly notice in that part of the page), the token is no
//! longer valid (log in again), the thing does not exist (404 page), or the
//! service refused the input (show its problem+json `detail` and field errors
//! next to the form).

pub(crate) mod orders;
pub(crate) mod payments;
pub(crate) mod products;
pub(crate) mod users;

use std::{collections::BTreeMap, time::Duration};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use storekeeper_contract::ShopService;
use storekeeper_kit::problem::{FieldError, Problem};
use storekeeper_kit::telemetry::RequestBuilderExt;
use url::Url;

use crate::metrics::ShopMetrics;

/// Why a backend call did not give the storefront what it asked for.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackendError {
    /// The service could not be reached, timed out, answered 5xx or sent
    /// something unreadable: the shopper sees "temporarily unavailable".
    #[error("{} is unavailable: {reason}", service.package())]
    Unavailable {
        service: ShopService,
        /// What happened, for the log only.
        reason: String,
        /// The request may have reached the service and been carried out
        /// (it timed out or the connection broke after sending, or the
        /// answer was lost), as opposed to a refused connection or a
        /// service saying it could not: checkout must not claim that
        /// nothing was ordered.
        outcome_unknown: bool,
    },
    /// 401: the access token was refused; the shopper must log in again.
    #[error("{} refused the credentials", service.package())]
    Unauthorized { service: ShopService },
    /// 403: logged in, but not allowed (e.g. not an admin).
    #[error("{} forbids this", service.package())]
    Forbidden { service: ShopService },
    /// 404: no such thing.
    #[error("{} has no such resource", service.package())]
    NotFound { service: ShopService },
    /// Another 4xx: the service refused the input and said why.
    #[error("{} rejected the request with {status}", service.package())]
    Rejected {
        service: ShopService,
        status: StatusCode,
        /// The problem+json body (or a stand-in built from the status).
        problem: Box<Problem>,
    },
}

impl BackendError {
    /// The service's explanation for a refused request, in its own words.
    pub(crate) fn detail(&self) -> Option<&str> {
        match self {
            Self::Rejected { problem, .. } => problem.detail.as_deref(),
            _ => None,
        }
    }

    /// Field-level messages, if the service sent any.
    pub(crate) fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Rejected { problem, .. } => &problem.errors,
            _ => &[],
        }
    }

    /// The problem `type`'s last segment (e.g. `validation`, `conflict`).
    pub(crate) fn kind(&self) -> Option<&str> {
        match self {
            Self::Rejected { problem, .. } => Some(problem.kind()),
            _ => None,
        }
    }
}

pub(crate) type BackendResult<T> = Result<T, BackendError>;

/// The base URL of each service the storefront calls.
pub(crate) type BackendUrls = BTreeMap<ShopService, Url>;

/// One HTTP client (connection pool) shared by every backend call.
#[derive(Clone)]
pub(crate) struct Backend {
    http: reqwest::Client,
    urls: BackendUrls,
    metrics: ShopMetrics,
}

impl Backend {
    /// Builds the client; timeouts are short because a page waits on them.
    pub(crate) fn new(urls: BackendUrls, metrics: ShopMetrics) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_mins(1))
            .user_agent("storekeeper-storefront")
            .build()?;
        Ok(Self {
            http,
            urls,
            metrics,
        })
    }

    /// Starts a request to `path` (segments already escaped) on `service`.
    pub(crate) fn request(&self, service: ShopService, method: Method, path: &str) -> Call {
        let builder = self
            .url(service, path)
            .map(|url| self.http.request(method, url).with_request_id());
        Call {
            service,
            builder,
            metrics: self.metrics.clone(),
        }
    }

    /// `path` (segments already escaped) on `service`. A service the
    /// storefront was given no URL for is as good as down.
    pub(crate) fn url(&self, service: ShopService, path: &str) -> BackendResult<String> {
        let base = self
            .urls
            .get(&service)
            .ok_or_else(|| BackendError::Unavailable {
                service,
                reason: "the storefront has no URL for it".to_owned(),
                outcome_unknown: false,
            })?;
        Ok(format!("{}{path}", base.as_str().trim_end_matches('/')))
    }

    /// The shared HTTP client (for the image proxy).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// A request being built: a thin wrapper that remembers which service it is for.
pub(crate) struct Call {
    service: ShopService,
    builder: BackendResult<RequestBuilder>,
    metrics: ShopMetrics,
}

impl Call {
    /// Adds `Authorization: Bearer <token>`.
    #[must_use]
    pub(crate) fn bearer(mut self, token: &str) -> Self {
        self.builder = self.builder.map(|builder| builder.bearer_auth(token));
        self
    }

    #[must_use]
    pub(crate) fn json<B: serde::Serialize + ?Sized>(mut self, body: &B) -> Self {
        self.builder = self.builder.map(|builder| builder.json(body));
        self
    }

    #[must_use]
    pub(crate) fn query<Q: serde::Serialize + ?Sized>(mut self, query: &Q) -> Self {
        self.builder = self.builder.map(|builder| builder.query(query));
        self
    }

    #[must_use]
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.map(|builder| builder.header(name, value));
        self
    }

    /// Sends the request and decodes a JSON answer.
    pub(crate) async fn fetch<T: DeserializeOwned>(self) -> BackendResult<T> {
        let (service, metrics) = (self.service, self.metrics.clone());
        let result = async {
            let response = self.send().await?;
            let bytes = response
                .bytes()
                .await
                .map_err(|err| unavailable(service, &err))?;
            serde_json::from_slice(&bytes).map_err(|err| BackendError::Unavailable {
                service,
                reason: format!("unreadable answer: {err}"),
                outcome_unknown: true,
            })
        }
        .await;
        count(&metrics, result)
    }

    /// Sends the request and ignores the body of a successful answer.
    pub(crate) async fn execute(self) -> BackendResult<()> {
        let metrics = self.metrics.clone();
        count(&metrics, self.send().await.map(drop))
    }

    async fn send(self) -> BackendResult<reqwest::Response> {
        let service = self.service;
        let response = self
            .builder?
            .send()
            .await
            .map_err(|err| unavailable(service, &err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_server_error() {
            // 503 is a service saying it could not (and, for orders, that
            // nothing was committed); other 5xx may come after the work.
            return Err(BackendError::Unavailable {
                service,
                reason: format!("answered {status}"),
                outcome_unknown: status != StatusCode::SERVICE_UNAVAILABLE,
            });
        }
        Err(match status {
            StatusCode::UNAUTHORIZED => BackendError::Unauthorized { service },
            StatusCode::FORBIDDEN => BackendError::Forbidden { service },
            StatusCode::NOT_FOUND => BackendError::NotFound { service },
            _ => {
                let bytes = response.bytes().await.unwrap_or_default();
                let problem =
                    serde_json::from_slice(&bytes).unwrap_or_else(|_| stand_in_problem(status));
                BackendError::Rejected {
                    service,
                    status,
                    problem: Box::new(problem),
                }
            }
        })
    }
}

/// Counts an unavailable backend on the way out.
fn count<T>(metrics: &ShopMetrics, result: BackendResult<T>) -> BackendResult<T> {
    if let Err(BackendError::Unavailable { service, .. }) = &result {
        metrics.unavailable(*service);
    }
    result
}

/// A call that got no answer. Only a refused connection proves the
/// request never arrived.
fn unavailable(service: ShopService, err: &reqwest::Error) -> BackendError {
    BackendError::Unavailable {
        service,
        reason: err.to_string(),
        outcome_unknown: !err.is_connect(),
    }
}

/// A problem for a 4xx answer whose body was not problem+json.
fn stand_in_problem(status: StatusCode) -> Problem {
    Problem {
        type_uri: "about:blank".to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: None,
        errors: Vec::new(),
        request_id: None,
    }
}

/// Escapes one path segment (an id from a URL must not become `../admin`).
pub(crate) fn segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}
