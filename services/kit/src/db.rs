//! PostgreSQL: the connection pool, migrations applied at start, and the
//! readiness check.
//!
//! Each service embeds its migrations (`sqlx::migrate!()`) and applies them
//! before serving; sqlx takes an advisory lock, so replicas starting together
//! do not race. Migrations must stay compatible with the previous release
//! (expand, then contract), because a rollback never undoes them.

use std::time::Duration;

use sqlx::{
    PgPool,
    migrate::{MigrateError, Migrator},
    postgres::PgPoolOptions,
};

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
}

/// How long start-up keeps retrying an unreachable database: long enough to
/// ride out PostgreSQL starting next to the service, short enough that a
/// wrong URL fails visibly.
const CONNECT_ATTEMPTS: u32 = 8;

/// Connects with a pool of `DATABASE_MAX_CONNECTIONS` (retrying briefly),
/// then applies `migrator`. The runner calls it when a service asks for
/// its database.
pub(crate) async fn connect(
    config: &DatabaseConfig,
    migrator: &Migrator,
) -> Result<PgPool, DbError> {
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
    migrator.run(&pool).await?;
    tracing::info!(
        migrations = migrator.iter().count(),
        "database migrations applied"
    );
    Ok(pool)
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
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://users:s3cret@db:5432/users"),
            "postgres://users:***@db:5432/users"
        );
        assert_eq!(redact_url("postgres://db/users"), "postgres://db/users");
    }
}
