//! How many event deliveries the drill's services saw, by outcome, read
//! from their `events_consumed_total`: whether redeliveries of applied
//! events (a crash between commit and ack) were really exercised.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use storekeeper_contract::{ShopService, admin};

/// Event deliveries by outcome (`processed`, `duplicate`, `retried`,
/// `requeued`, `dead_lettered`), summed over consumers and event types.
pub type Deliveries = BTreeMap<String, f64>;

/// Reads `events_consumed_total` of every service on the broker from its
/// admin `/metrics`. The counters start at 0 with each process, so the
/// drill reads a service's right before it kills it, and all at the end.
pub async fn deliveries(only: Option<ShopService>) -> Result<Deliveries> {
    let client = reqwest::Client::new();
    let mut total = Deliveries::new();
    for svc in ShopService::ALL
        .into_iter()
        .filter(|s| s.uses_broker() && only.is_none_or(|only| only == *s))
    {
        let url = format!(
            "http://127.0.0.1:{}{}",
            svc.local_admin_port(),
            admin::METRICS_PATH
        );
        let text = client
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("asking {url}"))?
            .text()
            .await
            .with_context(|| format!("reading {url}"))?;
        add_deliveries(&mut total, &consumed_by_outcome(&text));
    }
    Ok(total)
}

/// Adds `more` to `total`.
pub fn add_deliveries(total: &mut Deliveries, more: &Deliveries) {
    for (outcome, n) in more {
        *total.entry(outcome.clone()).or_default() += n;
    }
}

/// `events_consumed_total` in Prometheus text, summed by `outcome`.
fn consumed_by_outcome(text: &str) -> Deliveries {
    let mut by_outcome = Deliveries::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("events_consumed_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let outcome = labels
            .split(',')
            .find_map(|label| label.strip_prefix("outcome=\"")?.strip_suffix('"'));
        if let (Some(outcome), Ok(value)) = (outcome, value.trim().parse::<f64>()) {
            *by_outcome.entry(outcome.to_owned()).or_default() += value;
        }
    }
    by_outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_summed_by_outcome() {
        let text = "# TYPE events_consumed counter\n\
            events_consumed_total{consumer=\"order.saga\",event_type=\"inventory.reserved\",outcome=\"processed\"} 7\n\
            events_consumed_total{consumer=\"order.saga\",event_type=\"payment.succeeded\",outcome=\"processed\"} 5\n\
            events_consumed_total{consumer=\"order.saga\",event_type=\"payment.succeeded\",outcome=\"duplicate\"} 1\n\
            events_consumed_created{consumer=\"order.saga\",event_type=\"x\",outcome=\"processed\"} 1.7e9\n";
        let mut total = consumed_by_outcome(text);
        assert_eq!(total.get("processed"), Some(&12.0));
        assert_eq!(total.get("duplicate"), Some(&1.0));
        add_deliveries(
            &mut total,
            &Deliveries::from([("duplicate".to_owned(), 2.0)]),
        );
        assert_eq!(total.get("duplicate"), Some(&3.0));
    }
}
