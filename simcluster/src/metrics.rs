//! Fake per-pod Prometheus metrics: `http_requests_total{method,route,status}`
//! counters that grow while a pod is Ready, at the rate its script's
//! `Traffic` gives, with scripted bursts of `500`s — so the operator's
//! metrics-driven rollout checks can be tested without real services.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::workloads::script::{ImagePredicate, Traffic};

struct Burst {
    matches: ImagePredicate,
    ratio: f64,
    start: Instant,
    end: Instant,
}

struct PodCounters {
    image: String,
    /// The pod's IP, as in `status.podIP` (what a scraper's URL names).
    ip: String,
    traffic: Traffic,
    /// Ready since (counters grow only while Ready).
    serving_since: Option<Instant>,
    /// Counted up to here.
    last: Instant,
    counts: BTreeMap<(String, String, u16), f64>,
}

/// Counters of every running pod the simulator knows.
#[derive(Clone, Default)]
pub(crate) struct PodMetrics {
    pods: Arc<Mutex<HashMap<(String, String), PodCounters>>>,
    bursts: Arc<Mutex<Vec<Burst>>>,
}

impl PodMetrics {
    /// A pod started running at `ip` (its `/metrics` answers from now on).
    pub(crate) fn running(&self, ns: &str, pod: &str, ip: &str, image: &str, traffic: Traffic) {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((ns.to_owned(), pod.to_owned()))
            .or_insert_with(|| PodCounters {
                image: image.to_owned(),
                ip: ip.to_owned(),
                traffic,
                serving_since: None,
                last: Instant::now(),
                counts: BTreeMap::new(),
            });
    }

    /// A pod became Ready (or stopped being Ready).
    pub(crate) fn ready(&self, ns: &str, pod: &str, ready: bool) {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = pods.get_mut(&(ns.to_owned(), pod.to_owned())) {
            let now = Instant::now();
            let bursts = self.bursts.lock().unwrap_or_else(PoisonError::into_inner);
            advance(c, &bursts, now);
            c.serving_since = if ready {
                c.serving_since.or(Some(now))
            } else {
                None
            };
        }
    }

    /// A pod is gone.
    pub(crate) fn forget(&self, ns: &str, pod: &str) {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(ns.to_owned(), pod.to_owned()));
    }

    /// From now, for `duration`, pods whose image matches answer `ratio` of
    /// their requests with `500`.
    pub(crate) fn burst(&self, matches: ImagePredicate, ratio: f64, duration: Duration) {
        let start = Instant::now();
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        let mut bursts = self.bursts.lock().unwrap_or_else(PoisonError::into_inner);
        for c in pods.values_mut() {
            advance(c, &bursts, start);
        }
        bursts.push(Burst {
            matches,
            ratio,
            start,
            end: start + duration,
        });
    }

    /// The `/metrics` text of the pod at `url`'s host
    /// (`http://<podIP>:<port>/metrics`), `None` when no running pod has it.
    pub(crate) fn scrape(&self, url: &str) -> Option<String> {
        let authority = url.split("://").nth(1).unwrap_or(url).split('/').next()?;
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => authority.split(':').next()?,
        };
        let key = self
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(_, c)| c.ip == host)
            .map(|(k, _)| k.clone())?;
        self.render(&key.0, &key.1)
    }

    /// The pod's `/metrics` text, `None` when it is not running.
    pub(crate) fn render(&self, ns: &str, pod: &str) -> Option<String> {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        let c = pods.get_mut(&(ns.to_owned(), pod.to_owned()))?;
        let bursts = self.bursts.lock().unwrap_or_else(PoisonError::into_inner);
        advance(c, &bursts, Instant::now());
        let mut out = String::from(
            "# HELP http_requests Requests served, by method, route and status.\n\
             # TYPE http_requests counter\n",
        );
        for ((method, route, status), n) in &c.counts {
            // Whole requests only; the fraction is carried, never shown.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let whole = n.floor() as u64;
            let _ = writeln!(
                out,
                "http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {whole}"
            );
        }
        out.push_str("# EOF\n");
        Some(out)
    }
}

/// Adds the requests served between `c.last` and `now`.
fn advance(c: &mut PodCounters, bursts: &[Burst], now: Instant) {
    let from = c.last.max(c.serving_since.unwrap_or(now));
    c.last = now;
    if c.serving_since.is_none() || now <= from || c.traffic.routes.is_empty() {
        return;
    }
    let seconds = (now - from).as_secs_f64();
    let mut burst_seconds = 0.0;
    let mut error_seconds = 0.0;
    for b in bursts.iter().filter(|b| (b.matches)(&c.image)) {
        let overlap = (b.end.min(now).saturating_duration_since(b.start.max(from))).as_secs_f64();
        burst_seconds += overlap;
        error_seconds += overlap * b.ratio;
    }
    let plain = (seconds - burst_seconds).max(0.0);
    error_seconds += plain * c.traffic.error_ratio;
    #[allow(clippy::cast_precision_loss)] // a handful of routes
    let share = 1.0 / c.traffic.routes.len() as f64;
    let errors = c.traffic.rps * error_seconds.min(seconds) * share;
    let total = c.traffic.rps * seconds * share;
    for (method, route) in &c.traffic.routes {
        for (status, n) in [(200, total - errors), (500, errors)] {
            if n > 0.0 {
                *c.counts
                    .entry((method.clone(), route.clone(), status))
                    .or_default() += n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(text: &str, status: u16) -> u64 {
        text.lines()
            .filter(|l| l.contains(&format!("status=\"{status}\"")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    #[tokio::test(start_paused = true)]
    async fn counters_grow_while_ready_and_bursts_add_errors() {
        let m = PodMetrics::default();
        assert!(m.render("ns", "p").is_none());
        m.running("ns", "p", "10.244.0.7", "img:1", Traffic::default());
        assert!(m.scrape("http://10.244.0.7:9000/metrics").is_some());
        assert!(m.scrape("http://10.244.0.8:9000/metrics").is_none());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            count(&m.render("ns", "p").unwrap(), 200),
            0,
            "not ready yet"
        );
        m.ready("ns", "p", true);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let text = m.render("ns", "p").unwrap();
        assert_eq!(count(&text, 200), 100, "{text}");
        assert!(
            text.contains("http_requests_total{method=\"GET\",route=\"/items\",status=\"200\"} 50")
        );
        m.burst(
            Arc::new(|i| i.starts_with("img")),
            0.5,
            Duration::from_secs(4),
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        let text = m.render("ns", "p").unwrap();
        assert_eq!(count(&text, 500), 20, "{text}");
        assert_eq!(count(&text, 200), 180, "{text}");
    }
}
