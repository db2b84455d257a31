//! Judging a bake by the new pods' own counters. The shell reads each new
//! pod's `/metrics` at the start and at the end of the bake; per service,
//! the increase between the two (a counter that went down is a restarted
//! process: its new value is the increase) gives the 5xx ratio and the p99
//! latency of the new version's requests. Below `minRequests` nothing is
//! judged: a quiet shop must still be able to roll out.

use std::collections::BTreeMap;

use super::exposition::Counters;
use crate::api::AnalysisSpec;

/// Counters per pod name, as read at one moment.
pub type Samples = BTreeMap<String, Counters>;

/// The thresholds of `spec.rollout.analysis`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Highest 5xx share, in basis points (1/10 000).
    pub max_error_basis_points: Option<u32>,
    /// Highest p99 latency in milliseconds.
    pub max_p99_milliseconds: Option<u32>,
    /// Fewest requests for the ratios to be judged.
    pub min_requests: u32,
}

impl Limits {
    /// The limits of an analysis block; `None` when `maxErrorRatio` is not
    /// a decimal from 0 to 1 with at most four decimals (validation refuses
    /// such a Store before it gets here).
    pub fn from_spec(spec: &AnalysisSpec) -> Option<Self> {
        let max_error_basis_points = match &spec.max_error_ratio {
            Some(ratio) => Some(basis_points(ratio)?),
            None => None,
        };
        Some(Self {
            max_error_basis_points,
            max_p99_milliseconds: spec
                .max_p99_milliseconds
                .and_then(|ms| u32::try_from(ms).ok()),
            min_requests: u32::try_from(spec.min_requests).unwrap_or(1),
        })
    }
}

/// `"0.05"` as 500 basis points: a decimal from 0 to 1 with at most four
/// decimals, exactly (no floating point on the way).
pub fn basis_points(ratio: &str) -> Option<u32> {
    let (int, frac) = ratio.split_once('.').unwrap_or((ratio, ""));
    if !matches!(int, "0" | "1")
        || frac.len() > 4
        || (ratio.contains('.') && frac.is_empty())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac_bp: u32 = format!("{frac:0<4}").parse().ok()?;
    let bp = if int == "1" {
        10_000 + frac_bp
    } else {
        frac_bp
    };
    (bp <= 10_000).then_some(bp)
}

/// The outcome of judging one service.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Within every limit; what was measured.
    Pass(String),
    /// Over a limit; by how much.
    Fail(String),
    /// Too few requests to judge; how many there were.
    NotEnoughData(String),
}

/// How much the counters grew from `start` to `end`. A pod without a start
/// sample started during the bake (its counters began at zero); a counter
/// lower at the end than at the start means the process restarted, and
/// then the end value is all that is known.
pub fn increase(start: Option<&Counters>, end: &Counters) -> Counters {
    let Some(start) = start else {
        return end.clone();
    };
    let before = |bound: f64| {
        start
            .buckets
            .iter()
            .find(|(b, _)| b.total_cmp(&bound).is_eq())
            .map_or(0.0, |(_, c)| *c)
    };
    let reset = end.requests < start.requests
        || end.errors < start.errors
        || end.buckets.iter().any(|(b, c)| *c < before(*b));
    if reset {
        return end.clone();
    }
    Counters {
        requests: end.requests - start.requests,
        errors: end.errors - start.errors,
        buckets: end
            .buckets
            .iter()
            .map(|(b, c)| (*b, c - before(*b)))
            .collect(),
    }
}

/// Adds up the increases of `pods` (those that answered) into one service.
pub fn total<'a>(
    pods: impl IntoIterator<Item = &'a str>,
    baseline: Option<&Samples>,
    end: &Samples,
) -> (Counters, usize) {
    let mut sum = Counters::default();
    let mut answered = 0;
    for pod in pods {
        let Some(last) = end.get(pod) else {
            continue;
        };
        answered += 1;
        let grown = increase(baseline.and_then(|b| b.get(pod)), last);
        sum.requests += grown.requests;
        sum.errors += grown.errors;
        for (bound, count) in grown.buckets {
            match sum
                .buckets
                .iter_mut()
                .find(|(b, _)| b.total_cmp(&bound).is_eq())
            {
                Some((_, c)) => *c += count,
                None => sum.buckets.push((bound, count)),
            }
        }
    }
    sum.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    (sum, answered)
}

/// The `q` quantile (0..1) in seconds from cumulative buckets, as
/// Prometheus' `histogram_quantile` estimates it (linear within a bucket),
/// except that a quantile in the `+Inf` bucket is infinite: above every
/// bound is above any ceiling. `None` without observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(f64::INFINITY);
            }
            if count <= below {
                return Some(bound);
            }
            return Some(lower + (bound - lower) * (rank - below) / (count - below));
        }
        (lower, below) = (bound, count);
    }
    Some(f64::INFINITY)
}

/// Judges one service from its summed increase.
pub fn judge(limits: &Limits, counters: &Counters, answered: usize, pods: usize) -> Verdict {
    let requests = counters.requests;
    if requests < f64::from(limits.min_requests) {
        return Verdict::NotEnoughData(format!(
            "{requests} requests from {answered}/{pods} pods, fewer than minRequests {}",
            limits.min_requests
        ));
    }
    let percent = 100.0 * counters.errors / requests;
    if let Some(max) = limits.max_error_basis_points
        && counters.errors * 10_000.0 > f64::from(max) * requests
    {
        return Verdict::Fail(format!(
            "5xx ratio {percent:.2}% over {requests} requests exceeds {:.2}%",
            f64::from(max) / 100.0
        ));
    }
    let p99_ms = quantile(0.99, &counters.buckets).map(|s| s * 1000.0);
    if let (Some(max), Some(p99)) = (limits.max_p99_milliseconds, p99_ms)
        && p99 > f64::from(max)
    {
        return Verdict::Fail(format!(
            "p99 latency {p99:.0} ms over {requests} requests exceeds {max} ms"
        ));
    }
    let latency = p99_ms.map_or_else(String::new, |p| format!(", p99 {p:.0} ms"));
    Verdict::Pass(format!(
        "{percent:.2}% 5xx{latency} over {requests} requests"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(requests: f64, errors: f64, fast: f64) -> Counters {
        Counters {
            requests,
            errors,
            buckets: vec![(0.001, fast), (0.002, requests), (f64::INFINITY, requests)],
        }
    }

    fn limits(max_error: &str, p99: Option<u32>) -> Limits {
        Limits {
            max_error_basis_points: basis_points(max_error),
            max_p99_milliseconds: p99,
            min_requests: 100,
        }
    }

    #[test]
    fn ratios_parse_exactly() {
        for (text, bp) in [
            ("0", Some(0)),
            ("1", Some(10_000)),
            ("1.0000", Some(10_000)),
            ("0.05", Some(500)),
            ("0.0001", Some(1)),
            ("0.5", Some(5000)),
            ("1.0001", None),
            ("0.00001", None),
            ("2", None),
            (".5", None),
            ("0.", None),
            ("0.-1", None),
            ("5%", None),
            ("", None),
        ] {
            assert_eq!(basis_points(text), bp, "{text:?}");
        }
    }

    #[test]
    fn a_decrease_is_a_restart() {
        let start = counters(100.0, 1.0, 50.0);
        let later = counters(160.0, 4.0, 80.0);
        let grown = increase(Some(&start), &later);
        assert_eq!(
            grown,
            Counters {
                requests: 60.0,
                errors: 3.0,
                buckets: vec![(0.001, 30.0), (0.002, 60.0), (f64::INFINITY, 60.0)],
            }
        );
        let restarted = counters(20.0, 0.0, 10.0);
        assert_eq!(increase(Some(&start), &restarted), restarted);
        let errors_only_reset = Counters {
            errors: 0.0,
            ..later.clone()
        };
        assert_eq!(
            increase(Some(&start), &errors_only_reset),
            errors_only_reset
        );
        assert_eq!(
            increase(None, &later),
            later,
            "a pod new in the bake counts from zero"
        );
    }

    #[test]
    fn pods_add_up_and_silent_pods_are_counted() {
        let baseline = Samples::from([("a".into(), counters(100.0, 0.0, 100.0))]);
        let end = Samples::from([
            ("a".into(), counters(150.0, 5.0, 150.0)),
            ("b".into(), counters(50.0, 5.0, 0.0)),
            ("not-ours".into(), counters(1000.0, 1000.0, 0.0)),
        ]);
        let (sum, answered) = total(["a", "b", "silent"], Some(&baseline), &end);
        assert_eq!(answered, 2);
        assert!((sum.requests - 100.0).abs() < f64::EPSILON);
        assert!((sum.errors - 10.0).abs() < f64::EPSILON);
        assert_eq!(sum.buckets[0], (0.001, 50.0));
    }

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let b = [(0.001, 0.0), (0.002, 100.0), (f64::INFINITY, 100.0)];
        let p50 = quantile(0.5, &b).unwrap();
        assert!((p50 - 0.0015).abs() < 1e-12, "{p50}");
        let first = quantile(0.5, &[(0.004, 10.0), (f64::INFINITY, 10.0)]).unwrap();
        assert!((first - 0.002).abs() < 1e-12, "{first}");
        let slow = [(0.001, 50.0), (0.002, 90.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.99, &slow), Some(f64::INFINITY));
        assert_eq!(quantile(0.99, &[(f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.99, &[]), None);
    }

    #[test]
    fn verdicts() {
        let ok = counters(1000.0, 10.0, 1000.0);
        let Verdict::Pass(note) = judge(&limits("0.01", Some(2)), &ok, 2, 2) else {
            panic!("1 % of errors is within 1 %");
        };
        assert!(
            note.starts_with("1.00% 5xx, p99 1 ms over 1000 requests"),
            "{note}"
        );
        let bad = counters(1000.0, 11.0, 1000.0);
        assert_eq!(
            judge(&limits("0.01", None), &bad, 2, 2),
            Verdict::Fail("5xx ratio 1.10% over 1000 requests exceeds 1.00%".into())
        );
        let slow = counters(1000.0, 0.0, 0.0);
        assert_eq!(
            judge(&limits("1", Some(1)), &slow, 2, 2),
            Verdict::Fail("p99 latency 2 ms over 1000 requests exceeds 1 ms".into())
        );
        let quiet = counters(99.0, 99.0, 0.0);
        assert_eq!(
            judge(&limits("0", Some(1)), &quiet, 1, 2),
            Verdict::NotEnoughData("99 requests from 1/2 pods, fewer than minRequests 100".into())
        );
        let unjudged = Limits {
            max_error_basis_points: None,
            max_p99_milliseconds: None,
            min_requests: 1,
        };
        assert!(matches!(judge(&unjudged, &bad, 1, 1), Verdict::Pass(_)));
    }

    #[test]
    fn limits_come_from_the_spec() {
        let spec = AnalysisSpec {
            bake_seconds: 60,
            max_error_ratio: Some("0.05".into()),
            max_p99_milliseconds: Some(250),
            min_requests: 20,
        };
        assert_eq!(
            Limits::from_spec(&spec),
            Some(Limits {
                max_error_basis_points: Some(500),
                max_p99_milliseconds: Some(250),
                min_requests: 20
            })
        );
        let broken = AnalysisSpec {
            max_error_ratio: Some("5%".into()),
            ..spec
        };
        assert_eq!(Limits::from_spec(&broken), None);
    }
}
