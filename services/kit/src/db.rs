//! PostgreSQL: the connection pool, migrations, the readiness check, the
//! per-entity lock event handlers take ([`lock_for_transaction`]), and a
//! transaction start that survives cancellation ([`begin`]).
//!
//! Each service embeds its migrations (`sqlx::migrate!()`). Run locally, it
//! applies them before serving (sqlx takes an advisory lock, so replicas
//! starting together do not race); in a cluster the operator runs
//! `<service> migrate` once per rollout as a Job and sets
//! `DATABASE_MIGRATE_ON_START=false`, so serving replicas only
//! [`verify_migrations`]. Migrations must stay compatible with the previous release
//! (expand, then contract), because a rollback never undoes them — and so a
//! rolled-back binary must start on a schema a newer release already
//! migrated: [`apply_migrations`] accepts migrations it does not know as
//! long as every one it does know has been applied.

use std::time::Duration;

use sqlx::{
    PgConnection, PgPool, Postgres, Transaction,
    migrate::{MigrateError, Migrator},
    postgres::PgPoolOptions,
};
use uuid::Uuid;

use crate::{admin::Check, config::DatabaseConfig};

/// Why the database could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be made within the start-up retry window.
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect {
        /// The URL, without its password.
        url: String,
        /// The last connection error.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("applying database migrations failed: {0}")]
    Migrate(#[from] MigrateError),
    /// A newer release migrated the database, but not through every
    /// migration this release has: the histories diverged (a migration was
    /// renumbered or dropped), and starting would run on an unknown schema.
    #[error(
        "the database has migration {newer} this release does not know, yet lacks this release's migration(s) {missing:?}"
    )]
    Diverged {
        /// A version applied by a newer release.
        newer: i64,
        /// Versions of this release that were never applied.
        missing: Vec<i64>,
    },
    /// Serving without migrating, the database lacks migrations this
    /// release needs: `<service> migrate` (the Store's migration Job) has
    /// not run for it.
    #[error(
        "the database lacks this release's migration(s) {missing:?}: run `{service} migrate` first (in a cluster, the Store's migration Job does)"
    )]
    Behind {
        /// The service binary to run.
        service: &'static str,
        /// Versions of this release that were never applied.
        missing: Vec<i64>,
    },
    /// The applied versions could not be read.
    #[error("reading the applied migrations failed: {0}")]
    Read(#[from] sqlx::Error),
}

/// How long start-up keeps retrying an unreachable database: long enough to
/// ride out PostgreSQL starting next to the service, short enough that a
/// wrong URL fails visibly.
const CONNECT_ATTEMPTS: u32 = 8;

/// Connects with a pool of `DATABASE_MAX_CONNECTIONS` (retrying briefly).
/// The runner calls it when a service asks for its database, then applies
/// or verifies the migrations.
pub(crate) async fn connect(config: &DatabaseConfig) -> Result<PgPool, DbError> {
    let url = config.url.as_str();
    let options = PgPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Duration::from_mins(5));
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    let pool = loop {
        match options.clone().connect(url).await {
            Ok(pool) => break pool,
            Err(source) if attempt >= CONNECT_ATTEMPTS => {
                return Err(DbError::Connect {
                    url: redact_url(url),
                    source,
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, attempt, "PostgreSQL not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(4));
                attempt += 1;
            }
        }
    };
    Ok(pool)
}

/// Begins a transaction on `pool`; use it instead of `pool.begin()`.
///
/// sqlx 0.8's `Pool::begin` is not cancel-safe on PostgreSQL: it counts the
/// transaction only once `BEGIN` has answered, so a caller dropped while
/// `BEGIN` is in flight (a client that went away, a request timeout, a
/// consumer whose broker channel closed) hands the connection back to the
/// pool inside a transaction nothing will end. Whoever borrows it next then
/// writes into that transaction, and the writes are lost when the
/// connection closes (sqlx issue #4393). Here `BEGIN` runs to completion in
/// a task of its own; if the caller is gone by then, the transaction is
/// dropped and rolled back as usual.
#[expect(
    clippy::disallowed_methods,
    reason = "the one caller of Pool::begin, in a task of its own"
)]
pub async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)?
}

/// Applies `migrator`. When the database already carries a migration this
/// release does not know, a newer release ran it (this is a rollback, or an
/// old replica still starting during a rollout): that is fine exactly when
/// every migration this release knows was applied before it, because under
/// expand-then-contract the newer schema still serves the older code.
pub async fn apply_migrations(pool: &PgPool, migrator: &Migrator) -> Result<(), DbError> {
    let mut conn = pool.acquire().await?;
    match migrator.run(&mut *conn).await {
        Ok(()) => {
            tracing::info!(
                migrations = migrator.iter().count(),
                "database migrations applied"
            );
            Ok(())
        }
        Err(err) => {
            // sqlx gives up holding its session advisory lock; closing the
            // connection releases it, or every replica starting after this
            // one would wait for that lock forever.
            let _ = conn.close().await;
            match err {
                MigrateError::VersionMissing(newer) => accept_newer(pool, migrator, newer).await,
                other => Err(other.into()),
            }
        }
    }
}

/// A newer release migrated the database: fine when every migration this
/// release knows was applied too.
async fn accept_newer(pool: &PgPool, migrator: &Migrator, newer: i64) -> Result<(), DbError> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?;
    let missing: Vec<i64> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if !missing.is_empty() {
        return Err(DbError::Diverged { newer, missing });
    }
    tracing::warn!(
        newer,
        "the database carries migrations of a newer release; starting on its schema (expand-then-contract keeps it compatible)"
    );
    Ok(())
}

/// Checks, without changing anything, that every migration `migrator`
/// knows was applied (unchanged): what a replica that does not migrate
/// needs before it serves. Migrations of a newer release are fine, as in
/// [`apply_migrations`].
pub async fn verify_migrations(
    pool: &PgPool,
    migrator: &Migrator,
    service: &'static str,
) -> Result<(), DbError> {
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(pool)
        .await?;
    let applied: Vec<(i64, Vec<u8>)> = if table.is_some() {
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    let mut missing = Vec::new();
    for known in migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
    {
        match applied
            .iter()
            .find(|(version, _)| *version == known.version)
        {
            None => missing.push(known.version),
            Some((_, checksum)) if **checksum != *known.checksum => {
                return Err(MigrateError::VersionMismatch(known.version).into());
            }
            Some(_) => {}
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(DbError::Behind { service, missing })
    }
}

/// The `/readyz` check: the pool hands out a connection that answers.
pub fn readiness_check(pool: &PgPool) -> Check {
    let pool = pool.clone();
    Check::new("postgres", move || {
        let pool = pool.clone();
        async move {
            sqlx::query("SELECT 1")
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(|err| err.to_string())
        }
    })
}

/// Holds a transaction-scoped advisory lock keyed by `key` (e.g. an order
/// id) until `conn`'s transaction ends. Two events about one order handled
/// at the same time (its charge and its cancellation, its reservation and
/// its release) take it before either looks for the other's rows, so the
/// second waits for the first and sees what it decided — even when no row
/// exists yet that a row lock could hold. Every service uses the same key
/// derivation, so the lock means the same thing wherever it is taken.
pub async fn lock_for_transaction(conn: &mut PgConnection, key: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(key)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Removes the password from a connection URL before it is printed.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparseable url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Executor, PgConnection};

    use super::*;

    /// The kit's own migrations (the events tables), as a service embeds its.
    static MIGRATOR: Migrator = sqlx::migrate!("./migrations");
    const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

    async fn admin(sql: &str) {
        let mut conn = PgConnection::connect(&format!("{SERVER}/postgres"))
            .await
            .unwrap();
        conn.execute(sql).await.unwrap();
    }

    /// A fresh database of its own for one test (dropped at its end).
    async fn database() -> (String, PgPool) {
        let name = format!("kit_db_{}", Uuid::new_v4().simple());
        admin(&format!("CREATE DATABASE \"{name}\"")).await;
        let pool = PgPool::connect(&format!("{SERVER}/{name}")).await.unwrap();
        (name, pool)
    }

    async fn record_newer(pool: &PgPool, version: i64) {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES ($1, 'from a newer release', true, '\\x00'::bytea, 0)",
        )
        .bind(version)
        .execute(pool)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn an_older_release_starts_on_a_schema_a_newer_one_migrated() {
        let (name, pool) = database().await;
        apply_migrations(&pool, &MIGRATOR).await.unwrap();
        record_newer(&pool, 99_990_101_000_000).await;
        // Plain sqlx refuses this database; the rolled-back binary must not.
        let mut conn = pool.acquire().await.unwrap();
        assert!(matches!(
            MIGRATOR.run(&mut *conn).await,
            Err(MigrateError::VersionMissing(99_990_101_000_000))
        ));
        conn.close().await.unwrap();
        apply_migrations(&pool, &MIGRATOR).await.unwrap();
        // Another replica starting meanwhile is not stuck behind a migration
        // lock the first one left held.
        let replica = PgPool::connect(&format!("{SERVER}/{name}")).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            apply_migrations(&replica, &MIGRATOR),
        )
        .await
        .expect("no leaked migration lock")
        .unwrap();
        replica.close().await;
        pool.close().await;
        admin(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    }

    #[tokio::test]
    async fn diverged_histories_are_refused_with_the_versions() {
        let (name, pool) = database().await;
        apply_migrations(&pool, &MIGRATOR).await.unwrap();
        let known = MIGRATOR.iter().next().unwrap().version;
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
            .bind(known)
            .execute(&pool)
            .await
            .unwrap();
        record_newer(&pool, 99_990_101_000_000).await;
        let err = apply_migrations(&pool, &MIGRATOR).await.unwrap_err();
        assert!(
            matches!(&err, DbError::Diverged { newer: 99_990_101_000_000, missing } if missing == &[known]),
            "{err}"
        );
        pool.close().await;
        admin(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    }

    #[tokio::test]
    async fn a_replica_that_does_not_migrate_refuses_a_schema_behind_it() {
        let (name, pool) = database().await;
        let all: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        let err = verify_migrations(&pool, &MIGRATOR, "order-service")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, DbError::Behind { missing, .. } if *missing == all),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("run `order-service migrate` first"),
            "{err}"
        );
        apply_migrations(&pool, &MIGRATOR).await.unwrap();
        verify_migrations(&pool, &MIGRATOR, "order-service")
            .await
            .unwrap();
        record_newer(&pool, 99_990_101_000_000).await;
        verify_migrations(&pool, &MIGRATOR, "order-service")
            .await
            .unwrap();
        let known = all[0];
        sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00'::bytea WHERE version = $1")
            .bind(known)
            .execute(&pool)
            .await
            .unwrap();
        assert!(matches!(
            verify_migrations(&pool, &MIGRATOR, "order-service").await,
            Err(DbError::Migrate(MigrateError::VersionMismatch(v))) if v == known
        ));
        pool.close().await;
        admin(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://users:s3cret@db:5432/users"),
            "postgres://users:***@db:5432/users"
        );
        assert_eq!(redact_url("postgres://db/users"), "postgres://db/users");
    }
}
