//! `hashsched demo`: simulated pools and miners, the manifests of `examples/demo/`, and a scripted
//! story of failures, shown live and summarized (see `hashsched_operator::demo`).

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use hashsched_operator::demo::{self, DemoOptions, LiveView};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Upper bound of the run (the story needs about 90 s; it ends on its own when done).
    #[arg(long, default_value = "2m", value_parser = super::parse_duration)]
    pub duration: Duration,
    /// Also write the summary as JSON to this file (for scripts).
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Print plain lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // The live view owns the terminal: only errors are logged (RUST_LOG=warn shows more).
    super::local::init_tracing("error");
    let view = if !args.plain && std::io::stdout().is_terminal() {
        LiveView::Redraw
    } else {
        LiveView::Lines
    };
    let summary = demo::run(DemoOptions {
        duration: args.duration,
        view,
    })
    .await
    .context("demo")?;
    println!("\n{}", summary.render());
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing the summary to {}", path.display()))?;
        println!("summary written to {}", path.display());
    }
    if !summary.all_handled {
        // A plain message, not an error chain with a backtrace: the summary above says it all.
        eprintln!(
            "hashsched demo: not every scripted incident was handled within {}s (see the summary \
             above); exit status 1",
            args.duration.as_secs()
        );
        std::process::exit(1);
    }
    Ok(())
}
