//! `hashsched`: the operator's command line (see `cli.rs` for the subcommands).

mod cli;
mod cmd;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::Cli::parse().run().await
}
