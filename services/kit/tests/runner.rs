//! The runner against the real PostgreSQL, Redis and RabbitMQ on this
//! machine: a bad variable is one line on stderr and exit status 1,
//! `DATABASE_MAX_CONNECTIONS` sizes the pool, `/readyz` checks what the
//! service opened, workers stop (and are waited for) at shutdown, and
//! secrets come from `*_FILE`s.
//!
//! The runner builds its own async runtime, as `main` does, so these tests
//! are plain `#[test]`s.

// Helpers outside `#[test]` functions may unwrap too: a failed fixture is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    process::{Command, ExitCode},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use axum::Router;
use sqlx::{Connection, PgConnection, migrate::Migrator};
use storekeeper_contract::ShopService;
use storekeeper_kit::{
    Runner, admin::ReadinessReport, auth::KeyPair, server, testing::closed_port,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The kit's own migrations (the events tables), as a service embeds its.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// Set in the environment of the copy of this test binary that plays the
/// service in [`a_bad_variable_is_one_line_on_stderr_and_exit_status_1`].
const CHILD: &str = "STOREKEEPER_RUNNER_TEST_CHILD";

/// A database of its own for one test, dropped at the end.
struct TestDatabase {
    name: String,
}

impl TestDatabase {
    fn create() -> Self {
        let name = format!("kit_runner_{}", Uuid::new_v4().simple());
        admin_query(&format!("CREATE DATABASE \"{name}\""));
        Self { name }
    }

    fn url(&self) -> String {
        format!("{SERVER}/{}", self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin_query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

fn admin_query(sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut connection = PgConnection::connect(&format!("{SERVER}/postgres"))
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut connection).await.unwrap();
    });
}

fn vars(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

/// Polls `/readyz` until it answers, then cancels `stop`.
async fn readiness_then_stop(admin_port: u16, stop: CancellationToken) -> Option<ReadinessReport> {
    let client = server::http_client().unwrap();
    let url = format!("http://127.0.0.1:{admin_port}/readyz");
    let mut report = None;
    for _ in 0..100 {
        if let Ok(response) = client.get(&url).send().await {
            report = response.json().await.ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    report
}

fn checks(report: &ReadinessReport) -> Vec<(&str, &str)> {
    report
        .checks
        .iter()
        .map(|(name, outcome)| (name.as_str(), outcome.as_str()))
        .collect()
}

#[test]
fn a_bad_variable_is_one_line_on_stderr_and_exit_status_1() {
    if std::env::var_os(CHILD).is_some() {
        let code = Runner::new(ShopService::Payment).serve(async |_| Ok(Router::new()));
        // Stable Rust can neither read an `ExitCode` nor exit with one
        // outside `main`; `FAILURE` is 1 on the platforms we run on.
        std::process::exit(i32::from(code != ExitCode::SUCCESS));
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_bad_variable_is_one_line_on_stderr_and_exit_status_1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("PORT", "abc")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "error: invalid PORT=\"abc\": invalid digit found in string\n"
    );
}

#[test]
fn database_max_connections_sizes_the_pool_and_migrations_run() {
    let database = TestDatabase::create();
    let max_connections = AtomicU32::new(0);
    let migrated = AtomicBool::new(false);
    let code = Runner::new(ShopService::User)
        .with_vars(vars(&[
            ("DATABASE_URL", database.url()),
            ("DATABASE_MAX_CONNECTIONS", "3".to_owned()),
        ]))
        .run_once(async |setup| {
            let pool = setup.database(&MIGRATOR).await?;
            max_connections.store(pool.options().get_max_connections(), Ordering::SeqCst);
            let outbox: bool = sqlx::query_scalar("SELECT to_regclass('outbox') IS NOT NULL")
                .fetch_one(&pool)
                .await?;
            migrated.store(outbox, Ordering::SeqCst);
            Ok(())
        });
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(max_connections.load(Ordering::SeqCst), 3);
    assert!(migrated.load(Ordering::SeqCst), "the outbox table exists");
}

#[test]
fn workers_stop_at_shutdown_and_readiness_checks_what_was_opened() {
    let database = TestDatabase::create();
    let admin_port = closed_port();
    let stop = CancellationToken::new();
    let worker_stopped = Arc::new(AtomicBool::new(false));
    let report = Arc::new(Mutex::new(None));
    let code = Runner::new(ShopService::Payment)
        .with_vars(vars(&[
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", closed_port().to_string()),
            ("ADMIN_PORT", admin_port.to_string()),
            ("DATABASE_URL", database.url()),
            // The dead-letter routes on its admin port check admin tokens.
            ("TOKEN_PUBLIC_KEY", KeyPair::generate().unwrap().public_pem),
        ]))
        .with_shutdown(stop.clone())
        .serve(async |setup| {
            setup.database(&MIGRATOR).await?;
            setup.start_event_workers(|events| {
                let (shutdown, stopped) = (events.shutdown.clone(), worker_stopped.clone());
                vec![
                    tokio::spawn(async move {
                        shutdown.cancelled().await;
                        stopped.store(true, Ordering::SeqCst);
                    }),
                    tokio::spawn(async { panic!("this worker panics; shutdown goes on") }),
                ]
            })?;
            let report = report.clone();
            tokio::spawn(async move {
                *report.lock().unwrap() = readiness_then_stop(admin_port, stop).await;
            });
            Ok(Router::new())
        });
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        worker_stopped.load(Ordering::SeqCst),
        "the worker saw shutdown"
    );
    let report = report.lock().unwrap().take().expect("/readyz answered");
    assert_eq!(
        checks(&report),
        [("postgres", "ok"), ("rabbitmq", "ok")],
        "payment-service: its database and the broker, not Redis"
    );
}

#[test]
fn a_service_that_opens_nothing_is_ready_when_it_listens() {
    let admin_port = closed_port();
    let stop = CancellationToken::new();
    let report = Arc::new(Mutex::new(None));
    let code = Runner::new(ShopService::Storefront)
        .with_vars(vars(&[
            ("HOST", "127.0.0.1".to_owned()),
            ("PORT", closed_port().to_string()),
            ("ADMIN_PORT", admin_port.to_string()),
        ]))
        .with_shutdown(stop.clone())
        .serve(async |_| {
            let report = report.clone();
            tokio::spawn(async move {
                *report.lock().unwrap() = readiness_then_stop(admin_port, stop).await;
            });
            Ok(Router::new())
        });
    assert_eq!(code, ExitCode::SUCCESS);
    let report = report.lock().unwrap().take().expect("/readyz answered");
    assert!(report.is_ready());
    assert!(report.checks.is_empty());
}

#[test]
fn secrets_are_read_from_their_files_and_dropped_log_records_are_counted() {
    let keys = KeyPair::generate().unwrap();
    let path = std::env::temp_dir().join(format!("token-public-key-{}", Uuid::new_v4()));
    std::fs::write(&path, &keys.public_pem).unwrap();
    let seen = Mutex::new(None);
    let code = Runner::new(ShopService::Storefront)
        .with_vars(vars(&[(
            "TOKEN_PUBLIC_KEY_FILE",
            path.display().to_string(),
        )]))
        .run_once(async |setup| {
            setup.config().token_verifier()?;
            *seen.lock().unwrap() = Some((
                setup.config().token_public_key.clone(),
                setup.metrics().encode()?,
            ));
            Ok(())
        });
    std::fs::remove_file(&path).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let (key, metrics) = seen.lock().unwrap().take().unwrap();
    assert_eq!(key.as_deref(), Some(keys.public_pem.trim_end()));
    assert!(
        metrics.contains("storekeeper_log_records_dropped_total 0"),
        "{metrics}"
    );
}
