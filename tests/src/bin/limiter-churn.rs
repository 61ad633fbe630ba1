#![forbid(unsafe_code)]
//! Measures the rate limiter's memory while distinct identities churn through it.
//!
//! Rounds of 100,000 distinct principals each spend one request. Between rounds the cleanup runs, as
//! the hub's cleanup task does. The baseline is the same workload without cleanup, run in a separate
//! process so resident-memory figures do not share an allocator. Prints keys held and RSS. (The
//! anti-trawling lookups live in the hub's database, not in the process: see `hub::ratelimit`.)
//!
//! `cargo run --release -p hub-tests --bin limiter-churn`

use std::time::{Duration, Instant};

use hub::ratelimit::{Budget, RateLimitConfig, RateLimits};
use schemas::Role;

const ROUNDS: usize = 10;
const PER_ROUND: usize = 100_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn run(cleanup: bool) {
    let label = if cleanup { "cleanup" } else { "no-cleanup" };
    let limits = RateLimits::new(&RateLimitConfig {
        caseworker: Budget {
            per_second: 1000,
            burst: 5,
        },
        ..RateLimitConfig::default()
    });
    let start_rss = rss_kib();
    let t0 = Instant::now();
    let mut peak = 0;
    for round in 0..ROUNDS {
        for i in 0..PER_ROUND {
            let principal = format!("r{round}-cw-{i:06}");
            let _ = limits.check(Role::Caseworker, &principal);
        }
        peak = peak.max(limits.len());
        if cleanup {
            // A spent cell refills in 1 ms at 1000/s.
            std::thread::sleep(Duration::from_millis(5));
            limits.cleanup();
        }
        println!(
            "{label:>10} round {round}: keys held {:>8}, RSS +{:>7} KiB",
            limits.len(),
            rss_kib().saturating_sub(start_rss)
        );
    }
    println!(
        "RESULT {label}: identities {} keys_held_end {} keys_peak {peak} rss_growth_kib {} elapsed {:.2?}",
        ROUNDS * PER_ROUND,
        limits.len(),
        rss_kib().saturating_sub(start_rss),
        t0.elapsed()
    );
}

fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("cleanup") => run(true),
        Some("none") => run(false),
        _ => {
            let exe = std::env::current_exe()?;
            for mode in ["cleanup", "none"] {
                let status = std::process::Command::new(&exe).arg(mode).status()?;
                anyhow::ensure!(status.success(), "{mode} run failed");
            }
        }
    }
    Ok(())
}
