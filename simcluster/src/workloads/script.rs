//! The script the workload simulator follows: what a container running a
//! given image does (by a predicate on the image string, first match wins;
//! run-once containers — a Job's — have rules of their own, since a binary
//! that crashes serving may well run its one-off command fine),
//! how much traffic its pod serves, and how fast simulated time runs for
//! the deadlines that come from the objects themselves.

use std::sync::Arc;
use std::time::Duration;

/// A test on a container image (`|image| image.ends_with(":1.4.0-bad")`).
pub type ImagePredicate = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What a container does once its pod is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Starts, and passes its readiness probe after this long.
    Healthy {
        /// Time from pod creation to Ready.
        after: Duration,
    },
    /// The image cannot be pulled: `ErrImagePull`, then `ImagePullBackOff`;
    /// never starts.
    ImagePullBackOff,
    /// Starts and exits, again and again: `CrashLoopBackOff` with a growing
    /// `restartCount`.
    CrashLoop,
    /// Runs but never passes its readiness probe.
    NeverReady,
}

/// Requests a Ready pod serves, for its fake `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct Traffic {
    /// Requests per second, spread evenly over `routes`.
    pub rps: f64,
    /// Fraction answered `500` outside bursts.
    pub error_ratio: f64,
    /// `(method, route)` label pairs.
    pub routes: Vec<(String, String)>,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            rps: 10.0,
            error_ratio: 0.0,
            routes: vec![
                ("GET".to_owned(), "/items".to_owned()),
                ("POST".to_owned(), "/items".to_owned()),
            ],
        }
    }
}

struct Rule {
    matches: ImagePredicate,
    behaviour: Option<Behaviour>,
    traffic: Option<Traffic>,
}

/// The simulator's script. Time: everything runs on tokio time, so a test
/// may use `#[tokio::test(start_paused = true)]` and let the clock jump;
/// `time_scale` additionally shrinks the durations that come from objects
/// (`progressDeadlineSeconds`), which a test cannot choose per image.
pub struct Script {
    rules: Vec<Rule>,
    run_once: Vec<(ImagePredicate, Behaviour)>,
    default: Behaviour,
    default_traffic: Traffic,
    pub(crate) time_scale: f64,
    pub(crate) kubelet_period: Duration,
}

impl Default for Script {
    /// Every image healthy after 100 ms, default traffic, real-time deadlines.
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            run_once: Vec::new(),
            default: Behaviour::Healthy {
                after: Duration::from_millis(100),
            },
            default_traffic: Traffic::default(),
            time_scale: 1.0,
            kubelet_period: Duration::from_millis(200),
        }
    }
}

impl Script {
    /// Images matching `matches` behave as `behaviour` (earlier rules win).
    #[must_use]
    pub fn image(
        mut self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        behaviour: Behaviour,
    ) -> Self {
        self.rules.push(Rule {
            matches: Arc::new(matches),
            behaviour: Some(behaviour),
            traffic: None,
        });
        self
    }

    /// Run-once containers (`restartPolicy: Never`) whose image matches
    /// behave as `behaviour`: `Healthy` exits 0 when it would be Ready,
    /// `CrashLoop` exits 1, `NeverReady` runs forever.
    #[must_use]
    pub fn run_once(
        mut self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        behaviour: Behaviour,
    ) -> Self {
        self.run_once.push((Arc::new(matches), behaviour));
        self
    }

    /// Pods whose first container's image matches serve `traffic`.
    #[must_use]
    pub fn traffic(
        mut self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
        traffic: Traffic,
    ) -> Self {
        self.rules.push(Rule {
            matches: Arc::new(matches),
            behaviour: None,
            traffic: Some(traffic),
        });
        self
    }

    /// What images no rule matches do.
    #[must_use]
    pub fn default_behaviour(mut self, behaviour: Behaviour) -> Self {
        self.default = behaviour;
        self
    }

    /// Multiplies object-given durations (`progressDeadlineSeconds`): `0.01`
    /// turns the default 600 s deadline into 6 s.
    #[must_use]
    pub fn time_scale(mut self, factor: f64) -> Self {
        self.time_scale = factor;
        self
    }

    /// How often the simulated kubelet moves a failing container on
    /// (`ErrImagePull` → `ImagePullBackOff`, one more crash-loop restart).
    #[must_use]
    pub fn kubelet_period(mut self, period: Duration) -> Self {
        self.kubelet_period = period;
        self
    }

    /// What a container running `image` does.
    pub(crate) fn behaviour(&self, image: &str) -> Behaviour {
        self.rules
            .iter()
            .filter(|r| (r.matches)(image))
            .find_map(|r| r.behaviour.clone())
            .unwrap_or_else(|| self.default.clone())
    }

    /// What a run-once container running `image` does: its own rule, else
    /// it cannot start when the image cannot be pulled, else it succeeds.
    pub(crate) fn run_once_behaviour(&self, image: &str) -> Behaviour {
        if let Some((_, b)) = self.run_once.iter().find(|(m, _)| m(image)) {
            return b.clone();
        }
        match self.behaviour(image) {
            Behaviour::ImagePullBackOff => Behaviour::ImagePullBackOff,
            _ => Behaviour::Healthy {
                after: Duration::from_millis(100),
            },
        }
    }

    /// The traffic a pod whose first image is `image` serves.
    pub(crate) fn traffic_for(&self, image: &str) -> Traffic {
        self.rules
            .iter()
            .filter(|r| (r.matches)(image))
            .find_map(|r| r.traffic.clone())
            .unwrap_or_else(|| self.default_traffic.clone())
    }

    /// An object-given duration in simulated time.
    pub(crate) fn scaled(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds * self.time_scale).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins_and_defaults_apply() {
        let s = Script::default()
            .image(|i| i.ends_with("-bad"), Behaviour::ImagePullBackOff)
            .image(|i| i.contains("order"), Behaviour::CrashLoop)
            .time_scale(0.01);
        assert_eq!(s.behaviour("x/order:1-bad"), Behaviour::ImagePullBackOff);
        assert_eq!(s.behaviour("x/order:1"), Behaviour::CrashLoop);
        assert!(matches!(s.behaviour("x/user:1"), Behaviour::Healthy { .. }));
        assert_eq!(s.scaled(600.0), Duration::from_secs(6));
        assert_eq!(s.traffic_for("any"), Traffic::default());
        let s = s.run_once(|i| i.contains("user"), Behaviour::CrashLoop);
        assert_eq!(s.run_once_behaviour("x/user:1"), Behaviour::CrashLoop);
        assert!(matches!(
            s.run_once_behaviour("x/order:1"),
            Behaviour::Healthy { .. }
        ));
        assert_eq!(
            s.run_once_behaviour("x/order:1-bad"),
            Behaviour::ImagePullBackOff
        );
    }
}
