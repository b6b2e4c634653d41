//! `hashsched crdgen`: writes `crds/*.yaml` and `docs/api.md` from the Rust types, or with
//! `--check` fails when the committed files differ (for CI and pre-commit hooks).

use std::path::PathBuf;

use anyhow::{Context, bail};
use hashsched_operator::crd::generate;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repository root to write `crds/` and `docs/` under.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Print the CRDs as one multi-document YAML stream on stdout instead of writing files
    /// (`hashsched crdgen --stdout | kubectl apply --server-side -f -`).
    #[arg(long, conflicts_with = "check")]
    pub stdout: bool,
    /// Write nothing; exit with an error naming every file that is missing or out of date.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let files = generate::generate_all().context("rendering CRDs")?;
    if args.stdout {
        for file in files.iter().filter(|f| f.path.starts_with("crds")) {
            print!("{}", file.content);
        }
        return Ok(());
    }
    if args.check {
        let mut stale = Vec::new();
        for file in &files {
            let path = args.root.join(&file.path);
            match std::fs::read_to_string(&path) {
                Ok(existing) if existing == file.content => {}
                _ => stale.push(path.display().to_string()),
            }
        }
        if !stale.is_empty() {
            bail!(
                "out of date (run `cargo run -- crdgen` and commit): {}",
                stale.join(", ")
            );
        }
        println!("{} generated files up to date", files.len());
        return Ok(());
    }
    let written = generate::write_all(&args.root).context("writing generated files")?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
