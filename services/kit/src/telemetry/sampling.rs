//! Which traces are kept (`OTEL_TRACES_SAMPLER_ARG`): a new trace is
//! sampled with the configured probability, decided from its trace id, and
//! a continued trace follows its parent's `sampled` flag — so a checkout
//! sampled at the storefront stays sampled through every service and the
//! broker (the flag travels in `traceparent`), and one that was not leaves
//! no partial trace behind.

use std::{fmt, str::FromStr};

use opentelemetry_sdk::trace::Sampler;

/// The fraction of new traces sampled, from 0 (none) to 1 (all, the default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRatio(f64);

impl SampleRatio {
    /// Every trace.
    pub const ALL: Self = Self(1.0);

    /// The parent-based, trace-id-ratio sampler for this ratio.
    pub(super) fn sampler(self) -> Sampler {
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(self.0)))
    }
}

impl Default for SampleRatio {
    fn default() -> Self {
        Self::ALL
    }
}

impl FromStr for SampleRatio {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || "expected a number from 0 to 1".to_owned();
        let ratio: f64 = s.parse().map_err(|_| expected())?;
        if (0.0..=1.0).contains(&ratio) {
            Ok(Self(ratio))
        } else {
            Err(expected())
        }
    }
}

impl fmt::Display for SampleRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::{
        Context,
        trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState},
    };
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing::info_span;

    use super::*;
    use crate::telemetry::{self, LogFormat, TraceIds};

    #[test]
    fn ratios_outside_zero_to_one_are_refused() {
        assert_eq!("0".parse::<SampleRatio>(), Ok(SampleRatio(0.0)));
        assert_eq!("0.25".parse::<SampleRatio>(), Ok(SampleRatio(0.25)));
        assert_eq!("1".parse::<SampleRatio>(), Ok(SampleRatio::ALL));
        for bad in ["1.5", "-0.1", "NaN", "half", "inf"] {
            assert_eq!(
                bad.parse::<SampleRatio>(),
                Err("expected a number from 0 to 1".to_owned()),
                "{bad}"
            );
        }
    }

    /// A remote parent whose `sampled` flag is `sampled`.
    fn parent(sampled: bool) -> Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            flags,
            true,
            TraceState::default(),
        ))
    }

    /// Runs `requests` kit request spans (each continuing `parent`, if any)
    /// through the kit's subscriber with `ratio`, and returns the trace ids
    /// of the spans exported.
    fn exported(ratio: SampleRatio, requests: usize, parent: Option<&Context>) -> Vec<String> {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(ratio.sampler())
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber =
            telemetry::subscriber("test", LogFormat::Json, std::io::sink, &provider, None);
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..requests {
                let span = info_span!("request");
                telemetry::continue_trace(&span, || parent.cloned().unwrap_or_default());
                assert!(
                    TraceIds::of_span(&span).is_some(),
                    "ids even when not sampled"
                );
                span.in_scope(|| tracing::info!("handled"));
            }
        });
        provider.force_flush().unwrap();
        exporter
            .get_finished_spans()
            .unwrap()
            .iter()
            .map(|span| span.span_context.trace_id().to_string())
            .collect()
    }

    #[test]
    fn ratio_zero_starts_no_sampled_trace_but_continues_a_sampled_one() {
        assert!(exported(SampleRatio(0.0), 20, None).is_empty());
        assert!(exported(SampleRatio(0.0), 3, Some(&parent(false))).is_empty());
        assert_eq!(
            exported(SampleRatio(0.0), 3, Some(&parent(true))),
            vec!["4bf92f3577b34da6a3ce929d0e0e4736"; 3]
        );
    }

    #[test]
    fn ratio_one_samples_every_new_trace_and_follows_an_unsampled_parent() {
        let traces = exported(SampleRatio::ALL, 20, None);
        assert_eq!(traces.len(), 20);
        assert!(exported(SampleRatio::ALL, 3, Some(&parent(false))).is_empty());
    }
}
