//! Running other programs: one-shot commands that must succeed, and
//! long-running services whose output is prefixed with their name and which
//! are stopped gracefully with SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
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
        let relay = match logs {
            Logs::Terminal => {
                let (reader, writer) = std::io::pipe().context("creating a log pipe")?;
                let copy = writer.try_clone().context("duplicating a log pipe")?;
                command.stdout(writer).stderr(copy);
                Some(reader)
            }
            Logs::Folder(dir) => {
                let path = dir.join(format!("{name}.log"));
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let copy = file.try_clone().context("duplicating a log file handle")?;
                command.stdout(file).stderr(copy);
                None
            }
        };
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        if let Some(reader) = relay {
            std::thread::Builder::new()
                .name(format!("{name}-logs"))
                .spawn(move || prefix_lines(name, reader, &mut std::io::stdout()))
                .context("starting a log relay thread")?;
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

/// Most bytes of prefixed lines held before they are written.
const BATCH_BYTES: usize = 64 * 1024;

/// Copies `stream` to `out` line by line, each prefixed with `name`, on a
/// thread of its own with blocking reads and writes. Lines that arrived
/// together are written together, and bytes need not be UTF-8 (the relay
/// must keep draining the pipe, or the service would block on its logs).
/// Relaying through Tokio cost a hand-off to its blocking pool per line,
/// about a sixth of a core under `cargo xtask load` (docs/performance.md).
fn prefix_lines(name: &str, stream: impl Read, out: &mut impl Write) {
    let prefix = format!("{name:>10} | ");
    let mut reader = BufReader::with_capacity(BATCH_BYTES, stream);
    let mut line = Vec::new();
    let mut batch = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        batch.extend_from_slice(prefix.as_bytes());
        batch.extend_from_slice(&line);
        if !line.ends_with(b"\n") {
            batch.push(b'\n');
        }
        // Held back only while another whole line is already buffered, so
        // no line waits for output that has not come yet.
        if !reader.buffer().contains(&b'\n') || batch.len() >= BATCH_BYTES {
            // A failed write is dropped: the pipe is drained regardless.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
    }
    if !batch.is_empty() {
        let _ = out.write_all(&batch).and_then(|()| out.flush());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn every_line_is_prefixed_and_nothing_is_lost() {
        let mut input: Vec<u8> = (0..5_000)
            .flat_map(|n| format!("line {n}\n").into_bytes())
            .collect();
        input.extend_from_slice(b"not UTF-8 \xff\nlast, unterminated");
        let mut out = Vec::new();
        prefix_lines("order", input.as_slice(), &mut out);
        let text = String::from_utf8_lossy(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5_002);
        assert_eq!(lines[0], "     order | line 0");
        assert_eq!(lines[4_999], "     order | line 4999");
        assert_eq!(lines[5_000], "     order | not UTF-8 \u{fffd}");
        assert_eq!(lines[5_001], "     order | last, unterminated");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn a_line_is_written_before_the_next_one_arrives() {
        let (pipe, mut service) = std::io::pipe().unwrap();
        let (mut terminal, mut sink) = std::io::pipe().unwrap();
        let relay = std::thread::spawn(move || prefix_lines("user", pipe, &mut sink));
        service
            .write_all(b"first\nsecond, still being writ")
            .unwrap();
        let (seen, arrived) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0; 64];
            let n = terminal.read(&mut buffer).unwrap_or(0);
            let _ = seen.send(buffer[..n].to_vec());
        });
        let first = arrived
            .recv_timeout(Duration::from_secs(5))
            .expect("the first line was held back");
        assert_eq!(first, b"      user | first\n");
        drop(service);
        relay.join().unwrap();
    }
}
