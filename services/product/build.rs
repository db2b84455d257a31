//! `sqlx::migrate!` embeds `migrations/` at compile time, and cargo cannot
//! see that input on its own: without this, an added or edited migration
//! leaves a stale binary that runs the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
