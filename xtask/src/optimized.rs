//! Load generators run from a release build of xtask.
//!
//! `cargo xtask` builds xtask with the dev profile, and a load generator
//! built that way measures itself: driving the shopper mix, a debug build
//! spent about 0.64 of a core (the shop shares the machine's two cores with
//! it) and added about a millisecond to every request it timed, where a
//! release build spends about 0.16 of a core. So the commands that generate
//! load build xtask with the release profile and run that build with the
//! same arguments.

use std::process::ExitStatus;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use crate::{layout, process};

/// Builds xtask with the release profile and runs this same command line
/// with it, the terminal inherited; fails when that run fails.
pub async fn rerun_in_release() -> Result<()> {
    process::run("cargo", &["build", "--quiet", "--release", "-p", "xtask"]).await?;
    let binary = layout::root().join("target/release/xtask");
    let status: ExitStatus = Command::new(&binary)
        .args(std::env::args_os().skip(1))
        .current_dir(layout::root())
        .status()
        .await
        .with_context(|| format!("cannot start {}", binary.display()))?;
    if !status.success() {
        bail!("the release build of xtask failed ({status})");
    }
    Ok(())
}

/// CPU seconds this process has used so far (user and system, all
/// threads), from `/proc/self/stat`; `None` where there is no procfs.
pub fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_seconds_of(&stat)
}

/// Clock ticks per second in `/proc` figures: fixed at 100 by the Linux
/// ABI (`USER_HZ`), whatever the kernel's own tick rate.
const USER_HZ: f64 = 100.0;

/// `utime + stime` of a `/proc/<pid>/stat` line, in seconds. The command
/// name in parentheses may hold spaces, so fields count from its end.
fn cpu_seconds_of(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_time_past_a_name_with_spaces() {
        let stat = "4242 (tokio (worker) 1) S 1 4242 4242 0 -1 4194560 \
                    1200 0 0 0 250 75 0 0 20 0 9 0 123 456 789";
        assert_eq!(cpu_seconds_of(stat), Some(3.25));
    }

    #[test]
    fn a_short_or_garbled_line_has_no_figure() {
        assert_eq!(cpu_seconds_of("4242 (xtask) S 1 2"), None);
        assert_eq!(cpu_seconds_of("no parenthesis"), None);
    }

    #[test]
    fn this_process_has_a_figure() {
        assert!(own_cpu_seconds().is_some_and(|seconds| seconds >= 0.0));
    }
}
