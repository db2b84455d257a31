//! The backup script the Store's backup CronJob mounts
//! (`storekeeper::render::backup::SCRIPT`, from `assets/postgres/backup.sh`)
//! against the local PostgreSQL, following the restore runbook in
//! docs/operator.md: back up, lose and change data, restore, and the rows
//! are back; old backups are deleted past `BACKUP_RETAIN`. Each run uses
//! databases and a directory of its own. Needs `psql`, `pg_dump` and
//! `pg_restore` and a PostgreSQL on 127.0.0.1:5432 whose `postgres` user
//! may log in without a password.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use storekeeper::render::backup::SCRIPT;

/// Two databases and a backup directory, removed when the test ends.
struct Scratch {
    databases: [String; 2],
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("sk_backup_{}_{nanos}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(dir.join("backups")).unwrap();
        std::fs::write(dir.join("backup.sh"), SCRIPT).unwrap();
        let databases = [format!("{prefix}_users"), format!("{prefix}_orders")];
        for db in &databases {
            psql("postgres", &format!("CREATE DATABASE \"{db}\""));
        }
        Self { databases, dir }
    }

    fn backups(&self) -> PathBuf {
        self.dir.join("backups")
    }

    /// Runs the script as the CronJob (or the restore Job) does.
    fn script(&self, args: &[&str]) -> Output {
        Command::new("sh")
            .arg(self.dir.join("backup.sh"))
            .args(args)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", "5432")
            .env("PGUSER", "postgres")
            .env_remove("PGPASSWORD")
            .env_remove("PGDATABASE")
            .env("BACKUP_DIR", self.backups())
            .env("BACKUP_DATABASES", self.databases.join(" "))
            .env("BACKUP_RETAIN", "2")
            .output()
            .expect("sh runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.script(args);
        assert!(
            out.status.success(),
            "backup.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for db in &self.databases {
            let _ = Command::new("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"])
                .arg(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `sql` in `db` and returns psql's unaligned output.
fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-X", "-A", "-t", "-q"])
        .args(["-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn dirs(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_backup_restores_lost_and_changed_rows() {
    let s = Scratch::new();
    let [users, orders] = &s.databases;
    psql(
        users,
        "CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL);
         INSERT INTO accounts VALUES (1, 'ada@example.com'), (2, 'bob@example.com'), (3, 'cy@example.com')",
    );
    psql(
        orders,
        "CREATE TABLE orders (id int PRIMARY KEY, total_cents bigint);
         INSERT INTO orders VALUES (10, 1999), (11, 500)",
    );

    s.ok(&["backup"]);
    let stamps = s.ok(&["list"]);
    let stamps: Vec<&str> = stamps.lines().collect();
    assert_eq!(stamps.len(), 1, "{stamps:?}");
    let backup = s.backups().join(stamps[0]);
    let mut dumps = vec![format!("{users}.dump"), format!("{orders}.dump")];
    dumps.sort();
    assert_eq!(dirs(&backup), dumps, "one custom-format dump per database");
    let head = std::fs::read(backup.join(format!("{users}.dump"))).unwrap();
    assert!(head.starts_with(b"PGDMP"), "pg_dump --format=custom");

    // The accident: rows lost and changed, a table dropped, one added.
    psql(users, "DELETE FROM accounts WHERE id = 1");
    psql(users, "UPDATE accounts SET email = 'gone@example.com'");
    psql(users, "CREATE TABLE scratch (x int)");
    psql(orders, "DROP TABLE orders");

    s.ok(&["restore"]);
    assert_eq!(
        psql(
            users,
            "SELECT string_agg(id || ' ' || email, ', ' ORDER BY id) FROM accounts"
        ),
        "1 ada@example.com, 2 bob@example.com, 3 cy@example.com"
    );
    assert_eq!(
        psql(
            users,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'scratch'"
        ),
        "0",
        "the database is as it was dumped"
    );
    assert_eq!(
        psql(
            orders,
            "SELECT string_agg(id || ':' || total_cents, ',' ORDER BY id) FROM orders"
        ),
        "10:1999,11:500"
    );
}

#[test]
fn only_the_newest_backups_are_kept_and_a_failed_run_is_no_backup() {
    let s = Scratch::new();
    psql(
        &s.databases[0],
        "CREATE TABLE t (n int); INSERT INTO t VALUES (1)",
    );
    let mut made = Vec::new();
    for _ in 0..3 {
        s.ok(&["backup"]);
        made.push(s.ok(&["list"]).lines().last().unwrap().to_owned());
        // Backups are named by the second they start.
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(
        s.ok(&["list"]).lines().collect::<Vec<_>>(),
        made[1..],
        "retain 2"
    );
    assert_eq!(dirs(&s.backups()), made[1..]);

    // A run that died half-way leaves <stamp>.partial: never listed or
    // restored, and cleared by the next run.
    std::fs::create_dir(s.backups().join("29991231T000000Z.partial")).unwrap();
    assert_eq!(s.ok(&["list"]).lines().count(), 2);
    psql(&s.databases[0], "UPDATE t SET n = 2");
    s.ok(&["restore", &made[2]]);
    assert_eq!(psql(&s.databases[0], "SELECT n FROM t"), "1");
    s.ok(&["backup"]);
    assert!(dirs(&s.backups()).iter().all(|d| !d.ends_with(".partial")));

    let missing = s.script(&["restore", "20000101T000000Z"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("no complete backup named 20000101T000000Z"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let usage = s.script(&["nonsense"]);
    assert_eq!(usage.status.code(), Some(2));
}
