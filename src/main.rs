//! The `tidemark` binary: parses the command line and hands over to `cli`.
use clap::Parser;

/// Keeps a request that claims billions of array elements from aborting the
/// broker: see `protocol::alloc_guard`.
#[global_allocator]
static ALLOCATOR: wire::alloc_guard::ReservingAllocator = wire::alloc_guard::ReservingAllocator;

fn main() {
    let cli = tidemark::cli::Cli::parse();
    std::process::exit(tidemark::cli::run(cli));
}
