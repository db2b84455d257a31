//! Dev tasks for Storekeeper, in the `cargo xtask` pattern: the commands a
//! developer and CI run live here, in Rust, so they behave the same on every
//! machine and need nothing installed beyond cargo.

mod bench;
mod check;
mod generate;
mod layout;
mod load;
mod local_state;
mod process;
mod stack;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `cargo xtask <command>`.
#[derive(Parser)]
#[command(name = "cargo xtask", about = "Storekeeper dev tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the five services, prepare databases, catalog and admin, and run
    /// the whole shop locally until Ctrl-C.
    Up {
        /// Build with the release profile (slower to build, faster to run).
        #[arg(long)]
        release: bool,
    },
    /// Everything CI runs: local servers, fmt, clippy, all tests and the
    /// real-browser journey.
    Test,
    /// Start a fresh local stack in the background and run the real-browser
    /// journey against it.
    E2e,
    /// Rewrite every generated file: the Store CRD (and the chart's copy),
    /// the chart's RBAC rules, and the tables in docs/architecture.md.
    Generate,
    /// Measure product-service against a bare axum server (requests/s,
    /// latency, memory) and print the figures.
    Bench,
    /// Drive the shopper mix through the storefront of a running local
    /// shop and print requests/s, p50/p99 per page and errors.
    Load(load::LoadOptions),
    /// Serve a bare axum "hello" on the given port: the bench's baseline.
    #[command(hide = true)]
    Hello {
        /// Port to listen on.
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("xtask: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Up { release } => stack::up(release).await,
            Command::Test => check::test().await,
            Command::E2e => check::e2e().await,
            Command::Generate => generate::run(),
            Command::Bench => bench::run().await,
            Command::Load(options) => load::run(&options).await,
            Command::Hello { port } => bench::hello(port).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}
