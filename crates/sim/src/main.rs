//! `tidemark-sim`: runs the deterministic simulation over many seeds and
//! prints the first failing seed with its trace.
//!
//! ```text
//! cargo run --release -p tidemark-sim -- --seeds 1000
//! cargo run --release -p tidemark-sim -- --seed 4711 --trace
//! ```
use std::process::ExitCode;
use std::time::Instant;
use tidemark_sim::{run_seed, Failure, SimConfig};

const USAGE: &str = "usage: tidemark-sim [--seeds N] [--first S] [--seed S] [--trace] [--fault-ms MS] [--heal-ms MS] [--brokers N] [--min-insync N]
  --seeds N     run N seeds (default 100), from --first (default 0)
  --seed S      run seed S alone and print its summary
  --trace       with --seed: print the whole trace of the run
  --brokers N   brokers and replicas (default 3)
  --min-insync N  the most min.insync.replicas a seed draws (default 2)";

struct Args {
    seeds: u64,
    first: u64,
    one: Option<u64>,
    trace: bool,
    config: SimConfig,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args {
        seeds: 100,
        first: 0,
        one: None,
        trace: false,
        config: SimConfig::default(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut number = || -> Result<u64, String> {
            let value = it.next().ok_or(format!("{flag} needs a value"))?;
            value
                .parse()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--seeds" => parsed.seeds = number()?,
            "--first" => parsed.first = number()?,
            "--seed" => parsed.one = Some(number()?),
            "--fault-ms" => parsed.config.fault_ms = number()?,
            "--heal-ms" => parsed.config.heal_ms = number()?,
            "--brokers" => parsed.config.brokers = number()?.clamp(2, 9) as usize,
            "--min-insync" => parsed.config.min_insync_replicas = number()?.max(1) as usize,
            "--trace" => parsed.trace = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    parsed.config.full_trace = parsed.trace;
    Ok(parsed)
}

fn print_failure(failure: &Failure) {
    println!(
        "seed {} FAILED at {} ms: {}",
        failure.seed, failure.at_ms, failure.violation
    );
    println!("trace (last {} lines):", failure.trace.len());
    for line in &failure.trace {
        println!("  {line}");
    }
    println!(
        "replay: cargo run --release -p tidemark-sim -- --seed {} --trace",
        failure.seed
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let seeds = match args.one {
        Some(seed) => seed..seed + 1,
        None => args.first..args.first + args.seeds,
    };
    let (mut acks, mut crashes, mut truncations, mut leader_changes) = (0, 0, 0, 0);
    let (mut asked_again, mut volatile_reads) = (0, 0);
    for seed in seeds.clone() {
        match run_seed(seed, &args.config) {
            Ok(report) => {
                if args.one.is_some() {
                    println!("{report:#?}");
                }
                acks += report.acks;
                crashes += report.crashes;
                truncations += report.truncations;
                leader_changes += report.leader_changes;
                asked_again += report.asked_again;
                volatile_reads += report.volatile_reads;
            }
            Err(failure) => {
                print_failure(&failure);
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "{} seeds passed in {:.1} s: {acks} records acknowledged with acks=all, {leader_changes} leader changes, {crashes} crashes, {truncations} truncations ({asked_again} to an epoch the leader never had), {volatile_reads} records read before any disk synced them",
        seeds.end - seeds.start,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
