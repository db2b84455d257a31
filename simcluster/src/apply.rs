//! Field ownership and server-side apply, approximated: each field manager
//! owns a set of leaf paths; an apply sets the leaves it names, removes the
//! leaves the same manager applied last time but no longer names (unless
//! someone else also owns them), and conflicts with other managers that own
//! a leaf it would change — unless forced, which takes the leaf over.
//! Ordinary writes (create, update, merge patch) transfer ownership of the
//! leaves they change to their manager. Lists are atomic (owned whole).

use serde_json::{Value, json};

use crate::fields::{self, FieldSet, Scope};

/// How a manager last wrote (as in `managedFields[].operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Apply,
    Update,
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    manager: String,
    operation: Operation,
    subresource: Option<&'static str>,
    fields: FieldSet,
    time: String,
}

/// Every manager's fields of one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Managers(Vec<Entry>);

/// A leaf another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conflict {
    manager: String,
    path: String,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conflict with \"{}\": .{}", self.manager, self.path)
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Managers {
    fn is_own(e: &Entry, manager: &str, op: Operation, scope: Scope) -> bool {
        e.manager == manager && e.operation == op && e.subresource == scope.subresource()
    }

    /// Sets the entry for (`manager`, `op`, `scope`) to `fields`, stamping the
    /// time only when the set changed; empty entries are dropped.
    fn put(&mut self, manager: &str, op: Operation, scope: Scope, fields: FieldSet) {
        if let Some(e) = self
            .0
            .iter_mut()
            .find(|e| Self::is_own(e, manager, op, scope))
        {
            if e.fields != fields {
                e.fields = fields;
                e.time = now();
            }
        } else {
            self.0.push(Entry {
                manager: manager.to_owned(),
                operation: op,
                subresource: scope.subresource(),
                fields,
                time: now(),
            });
        }
        self.0.retain(|e| !e.fields.is_empty());
    }

    fn own(&self, manager: &str, op: Operation, scope: Scope) -> FieldSet {
        self.0
            .iter()
            .find(|e| Self::is_own(e, manager, op, scope))
            .map(|e| e.fields.clone())
            .unwrap_or_default()
    }

    /// Drops every leaf overlapping `paths` from managers other than `manager`.
    fn take_from_others(&mut self, manager: &str, paths: &FieldSet) {
        for e in self.0.iter_mut().filter(|e| e.manager != manager) {
            e.fields
                .retain(|f| !paths.iter().any(|p| fields::overlap(f, p)));
        }
        self.0.retain(|e| !e.fields.is_empty());
    }

    fn owned_by_others(&self, manager: &str, path: &[String]) -> bool {
        self.0
            .iter()
            .filter(|e| e.manager != manager)
            .any(|e| e.fields.iter().any(|f| fields::overlap(f, path)))
    }

    /// Records an ordinary write (`old` → `new`) by `manager`: the leaves it
    /// changed become its own; leaves it removed are nobody's.
    pub(crate) fn record_update(
        &mut self,
        old: Option<&Value>,
        new: &Value,
        manager: &str,
        scope: Scope,
    ) {
        let new_leaves = fields::leaves(new, scope);
        let changed: FieldSet = new_leaves
            .iter()
            .filter(|p| old.and_then(|o| fields::get(o, p)) != fields::get(new, p))
            .cloned()
            .collect();
        let removed: FieldSet = old
            .map(|o| fields::leaves(o, scope))
            .unwrap_or_default()
            .into_iter()
            .filter(|p| fields::get(new, p).is_none())
            .collect();
        let touched: FieldSet = changed.union(&removed).cloned().collect();
        self.take_from_others(manager, &touched);
        let mut mine = self.own(manager, Operation::Update, scope);
        mine.retain(|p| !removed.iter().any(|r| fields::overlap(p, r)));
        mine.extend(changed);
        self.put(manager, Operation::Update, scope, mine);
        for e in &mut self.0 {
            e.fields.retain(|p| fields::get(new, p).is_some());
        }
        self.0.retain(|e| !e.fields.is_empty());
    }

    /// `managedFields` as the API server shows it.
    pub(crate) fn to_json(&self, api_version: &str) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|e| {
                    let mut v = json!({
                        "manager": e.manager,
                        "operation": match e.operation { Operation::Apply => "Apply", Operation::Update => "Update" },
                        "apiVersion": api_version,
                        "time": e.time,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": fields::fields_v1(&e.fields),
                    });
                    if let Some(sub) = e.subresource {
                        v["subresource"] = json!(sub);
                    }
                    v
                })
                .collect(),
        )
    }
}

/// Server-side applies `config` by `manager` onto `live` (`None`: the object
/// is new). Returns the merged object and the new ownership, or the
/// conflicts when another manager owns a leaf this apply would change and
/// `force` is not set.
pub(crate) fn apply(
    live: Option<&Value>,
    managers: &Managers,
    manager: &str,
    config: &Value,
    scope: Scope,
    force: bool,
) -> Result<(Value, Managers), Vec<Conflict>> {
    let applied = fields::leaves(config, scope);
    let mut result = live.cloned().unwrap_or_else(|| json!({}));
    let mut owners = managers.clone();
    let differs = |p: &Vec<String>| fields::get(&result, p) != fields::get(config, p);
    let conflicting: FieldSet = applied
        .iter()
        .filter(|p| differs(p) && owners.owned_by_others(manager, p))
        .cloned()
        .collect();
    if !conflicting.is_empty() && !force {
        let mut conflicts = Vec::new();
        for e in owners.0.iter().filter(|e| e.manager != manager) {
            for p in &conflicting {
                if e.fields.iter().any(|f| fields::overlap(f, p)) {
                    conflicts.push(Conflict {
                        manager: e.manager.clone(),
                        path: p.join("."),
                    });
                }
            }
        }
        return Err(conflicts);
    }
    owners.take_from_others(manager, &conflicting);
    let previous = owners.own(manager, Operation::Apply, scope);
    for gone in previous.difference(&applied) {
        let still_applied = applied.iter().any(|p| fields::overlap(p, gone));
        if !still_applied && !owners.owned_by_others(manager, gone) {
            fields::remove(&mut result, gone);
        }
    }
    for p in &applied {
        if let Some(v) = fields::get(config, p) {
            fields::set(&mut result, p, v.clone());
        }
    }
    if live.is_none() {
        for key in ["apiVersion", "kind"] {
            if let Some(v) = config.get(key) {
                result[key] = v.clone();
            }
        }
    }
    owners.put(manager, Operation::Apply, scope, applied);
    Ok((result, owners))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: Scope = Scope::Main {
        status_subresource: true,
    };

    #[test]
    fn same_manager_removes_what_it_stopped_applying() {
        let c1 = json!({"spec": {"a": 1, "b": 2}, "metadata": {"labels": {"x": "1", "y": "2"}}});
        let (o1, m1) = apply(None, &Managers::default(), "op", &c1, MAIN, false).unwrap();
        let c2 = json!({"spec": {"a": 1}, "metadata": {"labels": {"x": "1"}}});
        let (o2, _) = apply(Some(&o1), &m1, "op", &c2, MAIN, false).unwrap();
        assert_eq!(o2["spec"], json!({"a": 1}));
        assert_eq!(o2["metadata"]["labels"], json!({"x": "1"}));
    }

    #[test]
    fn fields_of_other_managers_survive_and_conflicts_need_force() {
        let (o1, m1) = apply(
            None,
            &Managers::default(),
            "a",
            &json!({"spec": {"x": 1}}),
            MAIN,
            false,
        )
        .unwrap();
        let (o2, m2) = apply(Some(&o1), &m1, "b", &json!({"spec": {"y": 2}}), MAIN, false).unwrap();
        assert_eq!(o2["spec"], json!({"x": 1, "y": 2}));
        let err = apply(Some(&o2), &m2, "b", &json!({"spec": {"x": 5}}), MAIN, false).unwrap_err();
        assert_eq!(err[0].to_string(), "conflict with \"a\": .spec.x");
        let same = apply(
            Some(&o2),
            &m2,
            "b",
            &json!({"spec": {"x": 1, "y": 2}}),
            MAIN,
            false,
        );
        assert!(same.is_ok(), "same value: shared ownership, no conflict");
        let (o3, m3) = apply(Some(&o2), &m2, "b", &json!({"spec": {"x": 5}}), MAIN, true).unwrap();
        assert_eq!(o3["spec"], json!({"x": 5}), "b dropped y, took x");
        let (o4, _) = apply(Some(&o3), &m3, "a", &json!({}), MAIN, false).unwrap();
        assert_eq!(o4["spec"], json!({"x": 5}), "a no longer owns x");
    }

    #[test]
    fn status_is_out_of_scope_for_the_main_resource() {
        let c = json!({"spec": {"a": 1}, "status": {"s": 1}});
        let (o, _) = apply(None, &Managers::default(), "op", &c, MAIN, false).unwrap();
        assert_eq!(o.get("status"), None);
        let (o, _) = apply(None, &Managers::default(), "op", &c, Scope::Status, false).unwrap();
        assert_eq!(o, json!({"status": {"s": 1}}));
    }

    #[test]
    fn updates_transfer_ownership() {
        let (o1, mut m) = apply(
            None,
            &Managers::default(),
            "a",
            &json!({"spec": {"x": 1}}),
            MAIN,
            false,
        )
        .unwrap();
        let edited = json!({"spec": {"x": 2}});
        m.record_update(Some(&o1), &edited, "kubectl-edit", MAIN);
        let (o2, _) = apply(Some(&edited), &m, "a", &json!({}), MAIN, false).unwrap();
        assert_eq!(
            o2["spec"]["x"],
            json!(2),
            "the editor owns x now; a's apply leaves it"
        );
        let fields = m.to_json("v1");
        assert_eq!(fields[0]["manager"], json!("kubectl-edit"));
        assert_eq!(fields[0]["fieldsV1"], json!({"f:spec": {"f:x": {}}}));
    }
}
