//! Labels every object the operator creates carries, so anyone (a
//! dashboard, a `kubectl` selector, a NetworkPolicy) can find a Store's
//! parts.

/// `app.kubernetes.io/name`: the component (`user`, `postgres`, ...).
pub const NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the Store's name.
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/part-of`, always [`STOREKEEPER`].
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// `app.kubernetes.io/managed-by`, always [`STOREKEEPER`].
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `app.kubernetes.io/component`: the role of a part that is not a
/// long-running component of its own (the migration Jobs' pods carry
/// `migrations`).
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/version`: the image tag the component runs.
pub const VERSION: &str = "app.kubernetes.io/version";
/// Value of `part-of` and `managed-by`.
pub const STOREKEEPER: &str = "storekeeper";
/// Marks Secrets whose values the operator generated (never pruned, never
/// re-applied).
pub const GENERATED: &str = "storekeeper.dev/generated";
