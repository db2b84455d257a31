//! Whether the running PostgreSQL may take the image the Store renders. A
//! new major version cannot read the old one's data directory, so an image
//! change across majors is refused: the StatefulSet keeps its running
//! image (everything else still reconciles), and status says why and where
//! the documented path is. Within a major an image change rolls out like
//! any other change of the Data step.

use serde_json::Value;

use super::observed::Observed;
use super::status::{RolloutView, types};
use crate::api::{Condition, Phase, Store};
use crate::render::{ChildKind, components, images, postgres};

/// Reason of the conditions (and so of the Warning Event) a refused major
/// upgrade sets.
pub const REASON: &str = "PostgresMajorUpgradeRefused";

/// Where the operator docs describe a major upgrade.
pub const DOCS: &str = "docs/operator.md#a-postgresql-major-version-upgrade";

/// What an image change does to a PostgreSQL data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Same major (or nothing runs yet): the change may roll out.
    Allowed,
    /// Another major: the data directory would not start.
    Major {
        /// Major version running.
        from: String,
        /// Major version asked for.
        to: String,
    },
}

/// The major version an image's tag names: `17` for `postgres:17.6-bookworm`
/// and for `postgres:17.6-bookworm@sha256:...` (a release pins by digest
/// and keeps the tag), `9.6` for `postgres:9.6.24` (before 10 the major had
/// two parts). `None` for an image without a version-like tag (digest only).
pub fn major(image: &str) -> Option<String> {
    let tag = images::tag(image)?;
    let mut numbers = tag.split(|c: char| !c.is_ascii_digit());
    let first: u32 = numbers.next()?.parse().ok()?;
    if first >= 10 {
        return Some(first.to_string());
    }
    let second: u32 = numbers.next()?.parse().ok()?;
    Some(format!("{first}.{second}"))
}

/// Decides an image change from `live` (the running StatefulSet's image,
/// `None` before the first install) to `desired`. An image whose major
/// cannot be read is allowed: the operator cannot tell, and PostgreSQL
/// itself refuses to start on a data directory of another major.
pub fn check(live: Option<&str>, desired: &str) -> Change {
    match (live.and_then(major), major(desired)) {
        (Some(from), Some(to)) if from != to => Change::Major { from, to },
        _ => Change::Allowed,
    }
}

/// A refused major upgrade: the image that runs and the one asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Image of the running StatefulSet, which stays.
    pub running: String,
    /// Image the Store asks for.
    pub desired: String,
    /// Major of `running`.
    pub from: String,
    /// Major of `desired`.
    pub to: String,
}

/// The image of the `postgres` container of a listed StatefulSet.
fn container_image(sts: &Value) -> Option<&str> {
    sts.pointer("/spec/template/spec/containers")?
        .as_array()?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(components::POSTGRES))?
        .get("image")?
        .as_str()
}

/// The refusal `store` deserves against what the cluster runs, if any.
pub fn refusal(store: &Store, observed: &Observed) -> Option<Refusal> {
    let managed = store.spec.postgres.managed.as_ref()?;
    let name = format!(
        "{}-{}",
        store.metadata.name.as_deref()?,
        components::POSTGRES
    );
    let running = container_image(observed.get(ChildKind::StatefulSet, &name)?)?;
    let desired = postgres::image(managed);
    match check(Some(running), desired) {
        Change::Allowed => None,
        Change::Major { from, to } => Some(Refusal {
            running: running.to_owned(),
            desired: desired.to_owned(),
            from,
            to,
        }),
    }
}

impl Refusal {
    /// The Store to render instead: the same spec with PostgreSQL's image
    /// held at the running one, so nothing else waits for the refusal.
    pub fn hold(&self, store: &Store) -> Store {
        let mut held = store.clone();
        if let Some(managed) = held.spec.postgres.managed.as_mut() {
            managed.image = Some(self.running.clone());
        }
        held
    }

    /// Why, for status and the Warning Event: both images and the way on.
    /// Each image appears once, so two images of the longest allowed
    /// reference still fit an Event's note (1 kB).
    pub fn message(&self) -> String {
        format!(
            "PostgreSQL runs {} (major {}); the spec asks for {} (major {}). A data directory cannot change major version in place, so PostgreSQL stays as it runs while the rest of the Store reconciles. Upgrade by dump and restore with the backups, or move to CloudNativePG and its major upgrade, as {DOCS} describes; or set spec.postgres.managed.image back to the running image",
            self.running, self.from, self.desired, self.to
        )
    }

    /// Puts the refusal on what the rollout decided: `Ready` false and
    /// `Stalled` true with [`REASON`] (a person must act), phase Degraded;
    /// `Reconciling` stays the rollout's.
    pub fn mark(&self, view: &mut RolloutView) {
        let message = self.message();
        let mut conditions = view.conditions.take().unwrap_or_default();
        for (type_, status) in [(types::READY, "False"), (types::STALLED, "True")] {
            conditions.retain(|c| c.type_ != type_);
            conditions.push(condition(type_, status, &message));
        }
        if !conditions.iter().any(|c| c.type_ == types::RECONCILING) {
            conditions.push(condition(types::RECONCILING, "False", ""));
        }
        view.phase = Some(Phase::Degraded);
        view.conditions = Some(conditions);
    }
}

fn condition(type_: &str, status: &str, message: &str) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: REASON.to_owned(),
        message: message.to_owned(),
        observed_generation: None,
        last_transition_time: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::store;
    use crate::reconcile::events::transitions;
    use crate::reconcile::status;

    #[test]
    fn majors_are_read_from_tags() {
        assert_eq!(major(images::POSTGRES).as_deref(), Some("17"));
        assert_eq!(major("postgres:18.0").as_deref(), Some("18"));
        assert_eq!(major("postgres:16").as_deref(), Some("16"));
        assert_eq!(
            major("registry:5000/pg/postgres:15.4-alpine").as_deref(),
            Some("15")
        );
        assert_eq!(major("postgres:9.6.24").as_deref(), Some("9.6"));
        assert_eq!(major("postgres:9.5-alpine").as_deref(), Some("9.5"));
        assert_eq!(major("registry:5000/postgres"), None, "a port is no tag");
        assert_eq!(major("postgres:bookworm"), None);
        assert_eq!(major("postgres@sha256:17aa"), None, "a digest is no tag");
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn majors_are_read_from_the_tag_of_a_digest_pinned_image() {
        let pinned = |image: &str| format!("{image}@{DIGEST}");
        assert_eq!(
            major(&pinned("docker.io/library/postgres:17.6-bookworm")).as_deref(),
            Some("17")
        );
        assert_eq!(
            major(&pinned("registry:5000/postgres:17.6")).as_deref(),
            Some("17")
        );
        assert_eq!(
            major(&pinned("registry:5000/pg/postgres:9.6.24")).as_deref(),
            Some("9.6")
        );
        assert_eq!(major(&pinned("registry:5000/postgres")), None, "no tag");
        assert_eq!(
            check(
                Some("postgres:17.6-bookworm"),
                &pinned("postgres:17.6-bookworm")
            ),
            Change::Allowed,
            "a release pinning the same tag by digest"
        );
        assert_eq!(
            check(
                Some(&pinned("registry:5000/postgres:16.10")),
                &pinned("registry:5000/postgres:17.6")
            ),
            Change::Major {
                from: "16".to_owned(),
                to: "17".to_owned()
            }
        );
        assert_eq!(
            check(Some(&pinned("postgres:16.10")), "postgres:17.6"),
            Change::Major {
                from: "16".to_owned(),
                to: "17".to_owned()
            },
            "from a digest to a tag"
        );
    }

    #[test]
    fn only_a_change_of_major_is_refused() {
        let major_change = |from: &str, to: &str| Change::Major {
            from: from.to_owned(),
            to: to.to_owned(),
        };
        assert_eq!(
            check(None, "postgres:18.0"),
            Change::Allowed,
            "first install"
        );
        assert_eq!(
            check(Some("postgres:17.6-bookworm"), "postgres:17.7-bookworm"),
            Change::Allowed
        );
        assert_eq!(
            check(Some("postgres:17.6"), "mirror.example/postgres:17.6"),
            Change::Allowed
        );
        assert_eq!(
            check(Some("postgres:17.6"), "postgres:18.1"),
            major_change("17", "18")
        );
        assert_eq!(
            check(Some("postgres:17.6"), "postgres:16.10"),
            major_change("17", "16"),
            "down too"
        );
        assert_eq!(
            check(Some("postgres:9.6.24"), "postgres:9.5.25"),
            major_change("9.6", "9.5")
        );
        assert_eq!(
            check(Some("postgres@sha256:1"), "postgres:18.1"),
            Change::Allowed,
            "unknown"
        );
    }

    fn running(image: &str) -> Observed {
        let mut observed = Observed::default();
        observed.insert(
            ChildKind::StatefulSet,
            json!({"metadata": {"name": "shop-postgres"}, "spec": {"template": {"spec": {
                "containers": [{"name": "postgres", "image": image}]}}}}),
        );
        observed
    }

    #[test]
    fn a_refused_store_renders_with_the_running_image_and_says_why() {
        let shop = store("shop");
        assert_eq!(
            refusal(&shop, &Observed::default()),
            None,
            "nothing runs yet"
        );
        assert_eq!(refusal(&shop, &running("postgres:17.2-bookworm")), None);
        let refused = refusal(&shop, &running("postgres:16.10-bookworm")).unwrap();
        assert_eq!((refused.from.as_str(), refused.to.as_str()), ("16", "17"));
        let held = refused.hold(&shop);
        assert_eq!(
            held.spec
                .postgres
                .managed
                .as_ref()
                .unwrap()
                .image
                .as_deref(),
            Some("postgres:16.10-bookworm")
        );
        assert_eq!(refusal(&held, &running("postgres:16.10-bookworm")), None);
        let message = refused.message();
        for part in [
            "postgres:16.10-bookworm",
            images::POSTGRES,
            "major 17",
            DOCS,
            "CloudNativePG",
        ] {
            assert!(message.contains(part), "{part} in {message}");
        }
        let longest = |major: &str| format!("{}/postgres:{major}.1", "r".repeat(236));
        let long = Refusal {
            running: longest("16"),
            desired: longest("17"),
            from: "16".to_owned(),
            to: "17".to_owned(),
        };
        assert_eq!(long.running.len(), 250, "the schema's longest image");
        assert!(long.message().len() <= 1024, "an Event note holds 1 kB");
        let pinned = format!("registry:5000/postgres:16.10@{DIGEST}");
        let refused = refusal(&shop, &running(&pinned)).unwrap();
        assert_eq!((refused.from.as_str(), refused.to.as_str()), ("16", "17"));
        assert_eq!(
            refused.hold(&shop).spec.postgres.managed.unwrap().image,
            Some(pinned),
            "held at the running digest"
        );
        let mut external = store("shop");
        external.spec.postgres.managed = None;
        assert_eq!(refusal(&external, &running("postgres:16.10")), None);
    }

    #[test]
    fn the_refusal_stalls_the_store_once_with_a_warning() {
        let shop = store("shop");
        let refused = refusal(&shop, &running("postgres:16.10-bookworm")).unwrap();
        let mut view = RolloutView::default();
        refused.mark(&mut view);
        let new = status::compute(
            &shop,
            &crate::render::render(&shop).unwrap(),
            &Observed::default(),
            &crate::api::StoreStatus::default(),
            "2026-01-01T00:00:00Z",
            view,
            Vec::new(),
        );
        assert_eq!(new.phase, Some(Phase::Degraded));
        let stalled = new.condition(types::STALLED).unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", REASON)
        );
        assert_eq!(new.condition(types::READY).unwrap().status, "False");
        let events = transitions(&crate::api::StoreStatus::default(), &new);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].warning && events[0].reason == REASON);
        assert_eq!(events[0].note, refused.message());
        assert!(
            transitions(&new, &new).is_empty(),
            "not again on the next pass"
        );
    }
}
