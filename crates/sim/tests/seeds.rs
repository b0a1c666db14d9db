//! The simulation in CI: a few hundred seeds must hold the oracle, and a
//! seed must replay the same run (or a failing seed could not be debugged).
use tidemark_sim::{run_seed, run_seeds, SimConfig};

/// Seeds run by `cargo test`; `cargo run --release -p tidemark-sim --
/// --seeds N` runs more.
const CI_SEEDS: u64 = 300;

#[test]
fn three_hundred_seeds_keep_every_acknowledged_record() {
    let config = SimConfig::default();
    match run_seeds(0, CI_SEEDS, &config) {
        Ok(reports) => {
            let acks: u64 = reports.iter().map(|r| r.acks).sum();
            let crashes: u64 = reports.iter().map(|r| r.crashes).sum();
            let changes: u64 = reports.iter().map(|r| r.leader_changes).sum();
            // The runs did what they are for: records acknowledged through
            // crashes and leader changes.
            assert!(acks > CI_SEEDS * 100, "only {acks} acknowledgements");
            assert!(crashes > CI_SEEDS, "only {crashes} crashes");
            assert!(changes > CI_SEEDS, "only {changes} leader changes");
        }
        Err(failure) => panic!(
            "seed {} failed at {} ms: {}\n{}\nreplay: cargo run --release -p tidemark-sim -- --seed {} --trace",
            failure.seed,
            failure.at_ms,
            failure.violation,
            failure.trace.join("\n"),
            failure.seed
        ),
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    let config = SimConfig::default();
    let first = run_seed(42, &config).expect("seed 42 passes");
    let again = run_seed(42, &config).expect("seed 42 passes");
    assert_eq!(format!("{first:?}"), format!("{again:?}"));
    let other = run_seed(43, &config).expect("seed 43 passes");
    assert_ne!(first.events, other.events, "two seeds, two runs");
}
