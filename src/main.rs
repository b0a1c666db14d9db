//! The `tidemark` binary: parses the command line and hands over to `cli`.
use clap::Parser;

fn main() {
    let cli = tidemark::cli::Cli::parse();
    std::process::exit(tidemark::cli::run(cli));
}
