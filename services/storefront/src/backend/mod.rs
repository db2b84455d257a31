//! Clients for the four shop APIs the storefront calls server-side.
//!
//! Every call goes through [`Backend::send`], which turns the many ways a call
//! can fail into one small [`BackendError`] the pages branch on: the service is
//! down (show a friendly notice in that part of the page), the token is no
//! longer valid (log in again), the thing does not exist (404 page), or the
//! service refused the input (show its problem+json `detail` and field errors
//! next to the form).

pub mod orders;
pub mod payments;
pub mod products;
pub mod users;

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use storekeeper_kit::problem::{FieldError, Problem};
use storekeeper_kit::telemetry::RequestBuilderExt;
use url::Url;

use crate::metrics::ShopMetrics;

/// Which backend a call went to; named in logs and in "is down" notices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// user-service: accounts and tokens.
    Users,
    /// product-service: catalog and stock.
    Products,
    /// order-service: cart and orders.
    Orders,
    /// payment-service: cards and payments.
    Payments,
}

impl Service {
    /// The service's name as operators know it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Users => "user-service",
            Self::Products => "product-service",
            Self::Orders => "order-service",
            Self::Payments => "payment-service",
        }
    }

    /// What the shopper is told this part of the shop does, for notices.
    pub fn shopper_name(self) -> &'static str {
        match self {
            Self::Users => "Sign-in",
            Self::Products => "The catalog",
            Self::Orders => "The cart and orders",
            Self::Payments => "Payments",
        }
    }
}

/// Why a backend call did not give the storefront what it asked for.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The service could not be reached, timed out, answered 5xx or sent
    /// something unreadable: the shopper sees "temporarily unavailable".
    #[error("{} is unavailable: {reason}", service.name())]
    Unavailable {
        /// Which service.
        service: Service,
        /// What happened, for the log only.
        reason: String,
    },
    /// 401: the access token was refused; the shopper must log in again.
    #[error("{} refused the credentials", service.name())]
    Unauthorized {
        /// Which service.
        service: Service,
    },
    /// 403: logged in, but not allowed (e.g. not an admin).
    #[error("{} forbids this", service.name())]
    Forbidden {
        /// Which service.
        service: Service,
    },
    /// 404: no such thing.
    #[error("{} has no such resource", service.name())]
    NotFound {
        /// Which service.
        service: Service,
    },
    /// Another 4xx: the service refused the input and said why.
    #[error("{} rejected the request with {status}", service.name())]
    Rejected {
        /// Which service.
        service: Service,
        /// The HTTP status.
        status: StatusCode,
        /// The problem+json body (or a stand-in built from the status).
        problem: Box<Problem>,
    },
}

impl BackendError {
    /// The service's explanation for a refused request, in its own words.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Rejected { problem, .. } => problem.detail.as_deref(),
            _ => None,
        }
    }

    /// Field-level messages, if the service sent any.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Rejected { problem, .. } => &problem.errors,
            _ => &[],
        }
    }

    /// The problem `type`'s last segment (e.g. `validation`, `conflict`).
    pub fn kind(&self) -> Option<&str> {
        match self {
            Self::Rejected { problem, .. } => Some(problem.kind()),
            _ => None,
        }
    }

    /// The HTTP status the service answered, when it answered at all.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Unavailable { .. } => None,
            Self::Unauthorized { .. } => Some(StatusCode::UNAUTHORIZED),
            Self::Forbidden { .. } => Some(StatusCode::FORBIDDEN),
            Self::NotFound { .. } => Some(StatusCode::NOT_FOUND),
            Self::Rejected { status, .. } => Some(*status),
        }
    }
}

/// Shorthand for backend call results.
pub type BackendResult<T> = Result<T, BackendError>;

/// Where the four backends live.
#[derive(Debug, Clone)]
pub struct BackendUrls {
    /// user-service base URL.
    pub users: Url,
    /// product-service base URL.
    pub products: Url,
    /// order-service base URL.
    pub orders: Url,
    /// payment-service base URL.
    pub payments: Url,
}

/// One HTTP client (connection pool) shared by every backend call.
#[derive(Clone)]
pub struct Backend {
    http: reqwest::Client,
    urls: BackendUrls,
    metrics: ShopMetrics,
}

impl Backend {
    /// Builds the client; timeouts are short because a page waits on them.
    pub fn new(urls: BackendUrls, metrics: ShopMetrics) -> Result<Self, reqwest::Error> {
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
    pub fn request(&self, service: Service, method: Method, path: &str) -> Call {
        let base = match service {
            Service::Users => &self.urls.users,
            Service::Products => &self.urls.products,
            Service::Orders => &self.urls.orders,
            Service::Payments => &self.urls.payments,
        };
        let url = format!("{}{}", base.as_str().trim_end_matches('/'), path);
        Call {
            service,
            builder: self.http.request(method, url).with_request_id(),
            metrics: self.metrics.clone(),
        }
    }

    /// The base URL of product-service (product images are fetched from it).
    pub fn products_url(&self) -> &Url {
        &self.urls.products
    }

    /// The shared HTTP client (for the image proxy).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// A request being built: a thin wrapper that remembers which service it is for.
pub struct Call {
    service: Service,
    builder: RequestBuilder,
    metrics: ShopMetrics,
}

impl Call {
    /// Adds `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer(mut self, token: &str) -> Self {
        self.builder = self.builder.bearer_auth(token);
        self
    }

    /// Sends `body` as JSON.
    #[must_use]
    pub fn json<B: serde::Serialize + ?Sized>(mut self, body: &B) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// Adds query parameters.
    #[must_use]
    pub fn query<Q: serde::Serialize + ?Sized>(mut self, query: &Q) -> Self {
        self.builder = self.builder.query(query);
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// Sends the request and decodes a JSON answer.
    pub async fn fetch<T: DeserializeOwned>(self) -> BackendResult<T> {
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
            })
        }
        .await;
        count(&metrics, result)
    }

    /// Sends the request and ignores the body of a successful answer.
    pub async fn execute(self) -> BackendResult<()> {
        let metrics = self.metrics.clone();
        count(&metrics, self.send().await.map(drop))
    }

    async fn send(self) -> BackendResult<reqwest::Response> {
        let service = self.service;
        let response = self
            .builder
            .send()
            .await
            .map_err(|err| unavailable(service, &err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_server_error() {
            return Err(BackendError::Unavailable {
                service,
                reason: format!("answered {status}"),
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

fn unavailable(service: Service, err: &reqwest::Error) -> BackendError {
    BackendError::Unavailable {
        service,
        reason: err.to_string(),
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
pub fn segment(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}
