//! `sim-population`: generate a simulated population and report how long it took (the simulator's
//! benchmark; performance is measured here, never asserted in tests).
//!
//! `cargo run --release -p connectors --bin sim-population -- [HOUSEHOLDS] [SEED]`
#![forbid(unsafe_code)]

use std::time::Instant;

use connectors::sim::{AwkwardCase, Population, PopulationConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let households: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(36_000);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2026);
    let start = Instant::now();
    let pop = Population::generate(PopulationConfig::new(seed, households));
    let elapsed = start.elapsed();
    let count = |f: fn(&AwkwardCase) -> bool| pop.households_with(f).count();
    println!(
        "seed {seed}: {} households, {} people in {:.3} s ({:.0} people/s)",
        pop.households().len(),
        pop.persons().len(),
        elapsed.as_secs_f64(),
        pop.persons().len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "awkward cases (households): unknown-to-department {}, recent death {}, split {}, near threshold {}",
        count(|c| matches!(c, AwkwardCase::UnknownToDepartment { .. })),
        count(|c| matches!(c, AwkwardCase::RecentDeath { .. })),
        count(|c| matches!(c, AwkwardCase::SplitAcrossTownships { .. })),
        count(|c| matches!(c, AwkwardCase::IncomeNearThreshold { .. })),
    );
}
