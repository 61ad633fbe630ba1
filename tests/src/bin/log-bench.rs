//! `log-bench`: the access log's benchmark harness (durable appends per second with and without
//! group commit on SQLite and PostgreSQL, DB-backed inclusion proofs, offline verification speed).
//!
//! Run: `cargo run --release -p hub-tests --bin log-bench` (PostgreSQL at `HUB_TEST_PG_URL`, default
//! the local trust-auth server; it is required, not skipped). Knobs: `LOG_BENCH_N` (batched appends
//! per backend, default 200000), `LOG_BENCH_BASELINE_N` (unbatched appends, default 2000),
//! `LOG_BENCH_CONCURRENCY` (concurrent appenders, default 512); `LOG_BENCH_PG=0` skips PostgreSQL
//! (for quick experiments only; reported figures include it). The 10M-entry in-memory proof
//! figures come from `cargo bench -p tlog --bench tlog_bench`.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hub::audit::{Remote, Verdict, VerifyArgs};
use hub::log::tlog::Signer;
use hub::log::{AccessLog, LogOptions};
use hub::store::Db;
use hub_tests::PgTestDb;
use schemas::access_log::{
    AccessLogEntry, Action, Actor, Decision, Effect, FORMAT_V1, Outcome, PseudonymKey, pseudonymize,
};
use schemas::{Department, DivisionCode, Purpose, Role};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn entry(key: &PseudonymKey, i: u64) -> AccessLogEntry {
    AccessLogEntry {
        format: FORMAT_V1.into(),
        time: time::OffsetDateTime::now_utc(),
        actor: Actor {
            uri: "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-xuzhuang-01".into(),
            principal: "cw-xuzhuang-01".into(),
            role: Role::Caseworker,
            organisation: "mz-370811002".into(),
            division: DivisionCode::parse("370811002").expect("valid division"),
        },
        action: Action::DepartmentQueried,
        purpose: Some(Purpose::DibaoApplication),
        case_ref: Some(format!("case-{}", i % 1000)),
        decision: Decision {
            effect: Effect::Allow,
            policy_ids: vec!["caseworker-own-township".into()],
        },
        departments: vec![Department::CivilAffairs, Department::Health],
        fact_kinds: vec![],
        outcome: Outcome::Succeeded,
        request_id: format!("req-{i}"),
        subjects: vec![pseudonymize(key, &format!("subject-{}", i % 5000))],
    }
}

/// Appends `n` entries from `concurrency` tasks; returns appends per second.
async fn appends(log: &Arc<AccessLog>, n: u64, concurrency: u64) -> anyhow::Result<f64> {
    let key = Arc::new(PseudonymKey::new(&[3u8; 32])?);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let log = log.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                log.append(entry(&key, i)).await?;
                i += concurrency;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn open(url: &str, max_batch: usize) -> anyhow::Result<Arc<AccessLog>> {
    let store = hub::store::connect(&secrecy::SecretString::from(url.to_owned()), 8).await?;
    let signer = Signer::from_seed("bench.example/log", [5; 32])?;
    Ok(AccessLog::start(
        store.db(),
        signer,
        LogOptions {
            max_batch,
            ..Default::default()
        },
    )
    .await?)
}

async fn proof_time(log: &AccessLog) -> anyhow::Result<Duration> {
    let size = log.head().size;
    let rounds = 2000u64;
    let start = Instant::now();
    for k in 0..rounds {
        let i = (k * 7_919_993) % size;
        log.inclusion_proof(i, size).await?;
    }
    Ok(start.elapsed() / rounds as u32)
}

async fn backend(
    name: &str,
    url_batched: &str,
    url_single: &str,
    dir: &std::path::Path,
) -> anyhow::Result<Option<Db>> {
    let n = env_u64("LOG_BENCH_N", 200_000);
    let base_n = env_u64("LOG_BENCH_BASELINE_N", 2_000);
    let c = env_u64("LOG_BENCH_CONCURRENCY", 512);
    let single = open(url_single, 1).await?;
    let base = if base_n > 0 {
        appends(&single, base_n, c.min(64)).await?
    } else {
        f64::NAN
    };
    let batched = open(url_batched, 4096).await?;
    let rate = appends(&batched, n, c).await?;
    println!(
        "{name}: batched {rate:.0} durable appends/s ({n} appends, {c} concurrent); \
         unbatched baseline {base:.0}/s ({base_n} appends); ratio {:.1}x",
        rate / base
    );
    let p = proof_time(&batched).await?;
    println!(
        "{name}: inclusion proof from the database at size {}: {:.1} µs",
        batched.head().size,
        p.as_secs_f64() * 1e6
    );
    let _ = dir;
    Ok(Some(batched.db().clone()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    hub::tls::install_default_provider();
    let dir = tempfile::tempdir()?;
    let sq_b = format!("sqlite://{}", dir.path().join("batched.db").display());
    let sq_s = format!("sqlite://{}", dir.path().join("single.db").display());
    backend("SQLite", &sq_b, &sq_s, dir.path()).await?;

    // Offline verification of the SQLite log just written.
    let signer = Signer::from_seed("bench.example/log", [5; 32])?;
    let vkey = dir.path().join("log.vkey");
    std::fs::write(&vkey, format!("{}\n", signer.verifier_key()))?;
    let args = VerifyArgs {
        remote: Remote {
            url: None,
            cacert: None,
            cert: None,
            key: None,
        },
        db: Some(sq_b.clone()),
        vkey,
        origin: None,
        trusted_checkpoint: None,
        trusted_vkey: None,
        witnesses: vec![],
        witness_quorum: 0,
        save_checkpoint: None,
        quiet: true,
    };
    let start = Instant::now();
    let verdict = hub::audit::verify(&args, |_, _| {}).await?;
    let secs = start.elapsed().as_secs_f64();
    let Verdict::Ok { size, .. } = verdict else {
        anyhow::bail!("benchmark log does not verify: {verdict:?}");
    };
    println!(
        "SQLite: offline verification (hub audit verify --db) {:.0} entries/s ({size} entries in {secs:.2} s)",
        size as f64 / secs
    );

    if env_u64("LOG_BENCH_PG", 1) == 0 {
        return Ok(());
    }
    let pg_b = PgTestDb::create().await?;
    let pg_s = PgTestDb::create().await?;
    let r = backend("PostgreSQL", &pg_b.url, &pg_s.url, dir.path()).await;
    pg_b.drop_db().await?;
    pg_s.drop_db().await?;
    r?;
    Ok(())
}
