//! Dev tasks for Storekeeper, in the `cargo xtask` pattern: the commands a
//! developer and CI run live here, in Rust, so they behave the same on every
//! machine and need nothing installed beyond cargo.

mod bench;
mod check;
mod drill;
mod generate;
mod layout;
mod load;
mod local_deps;
mod local_state;
mod optimized;
mod process;
mod prometheus;
mod stack;
mod up;

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
        /// Also run Debian's Prometheus on 127.0.0.1:9090, scraping the five
        /// services with the Store's alert rules (installed when missing).
        #[arg(long)]
        prometheus: bool,
    },
    /// Everything CI runs: local servers, fmt, clippy, all tests, the
    /// real-browser journey and the local Prometheus check.
    Test,
    /// Start a fresh local stack in the background and run the real-browser
    /// journey against it.
    E2e,
    /// Start a fresh local stack and a Prometheus scraping it: every service
    /// must be scraped, and stopping one must fire the Store's alerts.
    PrometheusCheck,
    /// Rewrite every generated file: the Store CRD (and the chart's copy),
    /// the chart's RBAC rules, and the tables in docs/architecture.md.
    Generate,
    /// Measure product-service against a bare axum server (requests/s,
    /// latency, memory) and print the figures; `logins` and `memory`
    /// measure user-service's login flood and every service's memory.
    Bench {
        /// How many rounds the product-service bench measures every
        /// endpoint in, interleaved; ratios are per round, then the median.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
        /// What to measure instead of product-service.
        #[command(subcommand)]
        target: Option<bench::Target>,
    },
    /// Drive the shopper mix through the storefront of a running local
    /// shop and print requests/s, p50/p99 per page and errors.
    Load(load::LoadOptions),
    /// The fault drill: a shop of its own takes checkouts while RabbitMQ and
    /// PostgreSQL restart and every service is killed with SIGKILL; then
    /// every order must have ended with stock and money right. Restarts the
    /// machine's servers (needs root); not part of `test`.
    Drill(drill::DrillOptions),
    /// Serve a bare axum "hello" on the given port: the bench's baseline.
    #[command(hide = true)]
    Hello {
        /// Serve it through kit's full middleware stack instead.
        #[arg(long)]
        kit: bool,
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
            Command::Up {
                release,
                prometheus,
            } => up::up(release, prometheus).await,
            Command::Test => check::test().await,
            Command::E2e => check::e2e().await,
            Command::PrometheusCheck => prometheus::check().await,
            Command::Generate => generate::run(),
            Command::Bench {
                target: Some(bench::Target::Logins(_)),
                ..
            }
            | Command::Load(_)
                if cfg!(debug_assertions) =>
            {
                optimized::rerun_in_release().await
            }
            Command::Bench { rounds, target } => bench::run(rounds, target).await,
            Command::Load(options) => load::run(&options).await,
            Command::Drill(options) => drill::run(&options).await,
            Command::Hello { port, kit: false } => bench::hello(port).await,
            Command::Hello { port, kit: true } => bench::kit_hello(port).await,
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
