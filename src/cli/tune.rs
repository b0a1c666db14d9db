//! `tidemark tune --check | --apply`: report and fix the Linux settings in
//! `tuning/`. Runs on the main thread.
use crate::tune::{apply, check_all, Check};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// Report what differs from tuning/ (the default).
    #[arg(long, conflicts_with = "apply")]
    pub check: bool,
    /// Set what can be set (as root), then report again.
    #[arg(long)]
    pub apply: bool,
    /// The broker's data directory: its disk's I/O scheduler is checked.
    #[arg(long, default_value = "./data")]
    pub data_dir: PathBuf,
    /// Shards the broker will run (locked memory scales with them).
    #[arg(long)]
    pub cores: Option<usize>,
}

fn print(checks: &[Check]) {
    for c in checks {
        let mark = if c.ok { "ok  " } else { "DIFF" };
        let actual = c.actual.as_deref().unwrap_or("(not present)");
        println!(
            "{mark} {:<55} expected {:<26} actual {actual}",
            c.name, c.expected
        );
    }
}

/// Exit status: 0 when everything matches, 1 otherwise.
pub fn run(args: TuneArgs) -> Result<(), String> {
    let dir = if args.data_dir.exists() {
        args.data_dir.clone()
    } else {
        PathBuf::from(".")
    };
    let shards = args.cores.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let mut checks = check_all(&dir, shards);
    if args.apply {
        for c in checks.iter().filter(|c| !c.ok) {
            match apply(c) {
                Ok(()) => println!("set  {} = {}", c.name, c.expected),
                Err(why) => println!("skip {}: {why}", c.name),
            }
        }
        checks = check_all(&dir, shards);
    }
    print(&checks);
    let differing = checks.iter().filter(|c| !c.ok).count();
    if differing == 0 {
        Ok(())
    } else {
        Err(format!(
            "{differing} setting(s) differ from tuning/ (see docs/tuning.md)"
        ))
    }
}
