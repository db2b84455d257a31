//! Reading the new pods' `/metrics` for a rollout's analysis. The rollout
//! decides which pods and when (`rollout::MetricsRequest`); this module
//! only fetches and parses. A pod that does not answer is left out of the
//! samples, and the analysis says how many answered.

use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use tracing::debug;

use crate::rollout::MetricsTarget;
use crate::rollout::analysis::Samples;
use crate::rollout::exposition;

/// Fetches a pod's metrics text. The operator reads pods over HTTP; the
/// simulated cluster in the tests answers for its scripted pods.
pub trait MetricsReader: Send + Sync {
    /// The text at `url`, or `None` when the pod does not answer.
    fn read<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<String>>;
}

/// Reads `/metrics` over plain HTTP on the pod network (the admin port is
/// open to scrapers by the Store's NetworkPolicies).
pub struct HttpMetricsReader {
    client: reqwest::Client,
}

impl HttpMetricsReader {
    /// A reader with short timeouts: a pod that cannot answer in 2 s is
    /// counted as not answering rather than holding up the reconcile.
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self { client })
    }
}

impl MetricsReader for HttpMetricsReader {
    fn read<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let response = self.client.get(url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.text().await.ok()
        })
    }
}

/// Reads every target at once and parses what answered, keyed by pod name.
pub async fn sample(reader: &dyn MetricsReader, targets: &[MetricsTarget]) -> Samples {
    let texts = join_all(targets.iter().map(|t| reader.read(&t.url))).await;
    targets
        .iter()
        .zip(texts)
        .filter_map(|(target, text)| match exposition::parse(&text?) {
            Ok(counters) => Some((target.pod.clone(), counters)),
            Err(err) => {
                debug!(pod = %target.pod, error = %err, "unreadable /metrics");
                None
            }
        })
        .collect()
}
