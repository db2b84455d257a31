//! Running other programs: one-shot commands that must succeed, and
//! long-running services whose output is prefixed with their name and which
//! are stopped gracefully with SIGTERM.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Runs `program args...` in the repository root, inheriting the terminal,
/// and fails naming the command if it does not exit 0.
pub async fn run(program: &str, args: &[&str]) -> Result<()> {
    run_with(program, args, &[]).await
}

/// [`run`] with these environment variables set for the program.
pub async fn run_with(program: &str, args: &[&str], vars: &[(&str, &str)]) -> Result<()> {
    let shown: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    println!("$ {}{program} {}", shown.concat(), args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(vars.iter().copied())
        .current_dir(crate::layout::root())
        .status()
        .await
        .with_context(|| format!("cannot start `{program}`"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Where a service's output goes.
#[derive(Clone, Copy)]
pub enum Logs<'a> {
    /// Prefixed lines on this terminal (`cargo xtask up`).
    Terminal,
    /// One file per service in this folder (tests, where the terminal
    /// belongs to the test runner).
    Folder(&'a Path),
}

/// A service process this task started.
pub struct Running {
    /// The service's short name.
    pub name: &'static str,
    child: Child,
}

impl Running {
    /// Starts `command` and forwards its output to `logs`.
    pub fn spawn(name: &'static str, mut command: Command, logs: Logs<'_>) -> Result<Self> {
        command.stdin(Stdio::null()).kill_on_drop(true);
        match logs {
            Logs::Terminal => {
                command.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
            Logs::Folder(dir) => {
                let path = dir.join(format!("{name}.log"));
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let copy = file.try_clone().context("duplicating a log file handle")?;
                command.stdout(file).stderr(copy);
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(prefix_lines(name, out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(prefix_lines(name, err));
        }
        Ok(Self { name, child })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Fails if the process has already exited (it crashed at start).
    pub fn ensure_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => bail!(
                "{} exited at start ({status}); see its log above",
                self.name
            ),
            Ok(None) => Ok(()),
            Err(err) => Err(err).with_context(|| format!("checking on {}", self.name)),
        }
    }

    /// Sends SIGTERM, waits up to ten seconds for a clean exit, then kills.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let pid = pid.to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
        }
        if let Ok(status) = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            let status = status.with_context(|| format!("waiting for {}", self.name))?;
            println!("{} stopped ({status})", self.name);
        } else {
            self.child
                .kill()
                .await
                .with_context(|| format!("killing {}", self.name))?;
            println!("{} did not stop within 10 s and was killed", self.name);
        }
        Ok(())
    }
}

async fn prefix_lines(name: &'static str, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    let mut stdout = tokio::io::stdout();
    while let Ok(Some(line)) = lines.next_line().await {
        let _ = stdout
            .write_all(format!("{name:>10} | {line}\n").as_bytes())
            .await;
    }
}
