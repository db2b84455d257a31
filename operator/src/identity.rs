//! How the operator names itself to the API server: the field manager that
//! owns every field it writes (server-side apply, creates) and the
//! controller its Events are reported by. One name, so `kubectl get -o
//! yaml --show-managed-fields` and `kubectl get events` agree on who did it.

/// Field manager of every server-side apply and create.
pub const FIELD_MANAGER: &str = "storekeeper";
/// Controller name Events are reported under.
pub const REPORTER: &str = "storekeeper";
