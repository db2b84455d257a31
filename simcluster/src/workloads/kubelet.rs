//! The kubelet: a pod's status follows its containers' scripted
//! behaviours over its age; the pod's metrics start when it runs.

use serde_json::Value;
use tokio::time::Instant;

use super::json::{name_of, namespace_of};
use super::pods::PodPlan;
use super::{KUBELET, Sim, Tracked, Wake};

impl Sim {
    /// Starts playing the kubelet for a new pod.
    pub(super) fn track(&mut self, pod: &Value) {
        let ns = namespace_of(pod);
        let name = name_of(pod).to_owned();
        self.next_ip += 1;
        let ip = format!(
            "10.244.{}.{}",
            (self.next_ip / 250) % 250,
            self.next_ip % 250 + 1
        );
        let plan = PodPlan::of(pod, ip, |image, once| {
            if once {
                self.script.run_once_behaviour(image)
            } else {
                self.script.behaviour(image)
            }
        });
        self.pods.insert(
            (ns.clone(), name.clone()),
            Tracked {
                plan,
                born: Instant::now(),
                ready: false,
                running: false,
            },
        );
        self.tick_pod(&ns, &name);
    }

    /// Writes a pod's current status and schedules its next change.
    pub(super) fn tick_pod(&mut self, ns: &str, name: &str) {
        let key = (ns.to_owned(), name.to_owned());
        let Some(tracked) = self.pods.get_mut(&key) else {
            return;
        };
        let age = tracked.born.elapsed();
        let now = tracked.plan.status_at(age, self.script.kubelet_period);
        let image = tracked.plan.image().to_owned();
        let ip = tracked.plan.ip.clone();
        let (was_running, was_ready) = (tracked.running, tracked.ready);
        tracked.running = now.running;
        tracked.ready = now.ready;
        let born = tracked.born;
        if now.running && !was_running {
            self.metrics
                .running(ns, name, &ip, &image, self.script.traffic_for(&image));
        }
        if now.ready != was_ready {
            self.metrics.ready(ns, name, now.ready);
        }
        self.write_status(&self.types.pods.clone(), ns, name, now.status, KUBELET);
        if let Some(next) = now.next {
            self.schedule(born + next, Wake::Pod(ns.to_owned(), name.to_owned()));
        }
    }
}
