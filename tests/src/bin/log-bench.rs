//! `log-bench`: the access log's benchmark harness (durable appends per second with and without
//! group commit on SQLite and PostgreSQL, DB-backed inclusion proofs, offline verification speed).
//! The code is [`hub_tests::bench::access_log`], which `hub-bench` also runs (P3, in its summary
//! beside the other figures); this binary keeps the count-based knobs.
//!
//! Run: `cargo run --release -p hub-tests --bin log-bench` (PostgreSQL at `HUB_TEST_PG_URL`, default
//! the local trust-auth server; it is required, not skipped). Knobs: `LOG_BENCH_N` (batched appends
//! per backend, default 200000), `LOG_BENCH_BASELINE_N` (unbatched appends, default 2000),
//! `LOG_BENCH_CONCURRENCY` (concurrent appenders, default 512); `LOG_BENCH_PG=0` skips PostgreSQL
//! (for quick experiments only; reported figures include it). The 10M-entry in-memory proof
//! figures come from `cargo bench -p tlog --bench tlog_bench`.
#![forbid(unsafe_code)]

use hub_tests::bench::access_log::{Budget, Options, measure};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    hub::tls::install_default_provider();
    let figures = measure(&Options {
        warmup: None,
        batched: Budget::Count(env_u64("LOG_BENCH_N", 200_000)),
        unbatched: Budget::Count(env_u64("LOG_BENCH_BASELINE_N", 2_000).max(1)),
        concurrency: env_u64("LOG_BENCH_CONCURRENCY", 512),
        postgres: env_u64("LOG_BENCH_PG", 1) != 0,
    })
    .await?;
    figures.sqlite.print();
    println!(
        "SQLite: offline verification (hub audit verify --db) {:.0} entries/s ({} entries in {:.2} s)",
        figures.verify.per_second(),
        figures.verify.size,
        figures.verify.secs
    );
    if let Some(pg) = &figures.postgres {
        pg.print();
    }
    Ok(())
}
