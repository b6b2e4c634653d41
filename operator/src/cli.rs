//! The `hashsched` command line: one subcommand per module under `cmd/`.
//!
//! To add a subcommand: write `cmd/<name>.rs` with an `Args` struct (clap `Args` derive) and an
//! `async fn run(args) -> anyhow::Result<()>` (or a sync one), add a variant to [`Command`], and a
//! match arm in [`Cli::run`].

use clap::{Parser, Subcommand};

use crate::cmd;

/// hashsched: a Kubernetes-native high-availability stratum hub and scheduler for mining farms
/// that rent hashrate.
#[derive(Debug, Parser)]
#[command(name = "hashsched", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the CRD manifests (crds/*.yaml) and the API reference (docs/api.md) from the Rust
    /// types, or check that the committed files are up to date.
    Crdgen(cmd::crdgen::Args),
    /// Run the scheduler and an embedded hub on this machine from a folder of manifests (no
    /// cluster needed); edits to the folder are picked up while running.
    Local(cmd::local::Args),
    /// Print workers, contracts and pools: from local mode (--url, --manifests) or a cluster
    /// (--kubeconfig / KUBECONFIG).
    Status(cmd::status::Args),
    /// See hashsched work in one command: simulated pools and miners, the examples/demo/
    /// manifests, and a scripted story of failures with a live table and a summary.
    Demo(cmd::demo::Args),
    /// Run the Kubernetes operator: reconcile StratumHubs, drive failover from the hubs'
    /// metrics, write status and Events (the container's entrypoint).
    Operator(cmd::operator::Args),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Crdgen(args) => cmd::crdgen::run(args),
            Command::Local(args) => cmd::local::run(args).await,
            Command::Status(args) => cmd::status::run(args).await,
            Command::Demo(args) => cmd::demo::run(args).await,
            Command::Operator(args) => cmd::operator::run_cmd(args).await,
        }
    }
}
