//! `events-bench`: department events and the monitoring list (issue 12, item 8), in one run.
//!
//! - **baselines**: plain durable inserts of event-sized rows into a SQLite file beside the hub's
//!   (WAL, `synchronous=FULL`): one transaction per row at the same concurrency as the single
//!   pushes, and the same rows in transactions of `--batch` rows (what the disk allows when
//!   commits are grouped, with none of the hub's work);
//! - **unmatched, single**: signed department events (`health.hospitalisation`, signed beforehand
//!   with the demo health department's real key) pushed to the hub over mTLS, one per request
//!   (`POST /v1/events`, `--concurrency` in flight, connections reused), each checked (schema,
//!   Ed25519 signature, freshness), sealed, and its access-log entry + row made durable in a group
//!   commit before its 201;
//! - **placed, single / placed, batch**: events about households on the monitoring list (after the
//!   upload): placed, and the warning rules evaluated in the same commit (each raises a
//!   `hospital_costs` warning), one per request, then as `application/x-ndjson` batches of
//!   `--batch` events (`--batch-concurrency` requests in flight). The 201 (or the batch's answer)
//!   comes after the warning is durable, so a request's latency is its events' event→warning
//!   latency; p50/p99 are reported under that load;
//! - **uploads**: `--uploads` monitoring-list uploads of `--households` different households each,
//!   one after the other, each as one CSV (`POST /v1/monitoring/uploads`), with the hub's resident
//!   set (`VmRSS`) sampled every 20 ms from `/proc/<pid>/status` during each upload, and its peak
//!   (`VmHWM`) before and after. The first upload warms the hub's caches; RSS after the last upload
//!   against RSS after the first tells whether memory grows with what has been uploaded.
//!
//! The hub is a separate process (this binary re-executed as `events-bench serve --config F`) on
//! SQLite. Every request must succeed; otherwise the benchmark exits non-zero.
//!
//! Run: `cargo run --release --locked --bin events-bench -- --events 5000`
//! (`--events 500 --households 2000 --uploads 2` for a smoke run).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use clap::Parser;
use hub_tests::TestEnv;
use hub_tests::bench::{BenchHub, HubOptions};
use schemas::ResidentId;
use schemas::events::{DepartmentEvent, EventSubject, SignedEvent};
use schemas::protocol::ProtocolVersion;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "events-bench",
    about = "Department events per second (vs. plain durable inserts) and a monitoring-list upload's memory"
)]
struct Args {
    /// Events pushed per phase (and baseline rows inserted).
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Single-event requests in flight at once (the hub allows 32 connections per identity).
    #[arg(long, default_value_t = 24)]
    concurrency: usize,
    /// Events per batch push (and rows per transaction in the batched baseline).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Batch requests in flight at once.
    #[arg(long, default_value_t = 4)]
    batch_concurrency: usize,
    /// Households in the monitoring-list upload.
    #[arg(long, default_value_t = 100_000)]
    households: u32,
    /// Monitoring-list uploads of `--households` (different) households each, one after the other.
    #[arg(long, default_value_t = 3)]
    uploads: u32,
}

const XUZHUANG: &str = "370811002";

fn resident(n: u32) -> String {
    let birth = time::macros::date!(1940 - 01 - 01) + time::Duration::days(i64::from(n / 1000));
    ResidentId::from_parts("370811", birth, (n % 1000) as u16)
        .map(|r| r.as_str().to_owned())
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return hub::cli::main();
    }
    let args = Args::parse();
    ensure!(
        args.events > 0 && args.concurrency > 0 && args.batch > 0 && args.batch_concurrency > 0,
        "--events, --concurrency, --batch and --batch-concurrency must be > 0"
    );
    ensure!(
        args.batch <= 1000,
        "--batch must be at most 1000 (the hub's batch limit)"
    );
    hub::tls::install_default_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory(pid: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What one monitoring-list upload measured.
struct Upload {
    size: usize,
    seconds: f64,
    samples: usize,
    rss_min: u64,
    rss_max: u64,
    first_q: f64,
    last_q: f64,
    before: (u64, u64),
    after: (u64, u64),
}

/// Uploads `count` households (residents `first..first + count`) as one CSV while sampling the
/// hub's RSS every 20 ms.
async fn upload(
    civil: &reqwest::Client,
    base: &str,
    pid: &str,
    first: u32,
    count: u32,
) -> anyhow::Result<Upload> {
    let mut csv = String::from("category,resident_id,township,village,since,reason\n");
    for i in 0..count {
        let category = ["dibao_edge", "expenditure_hardship", "poverty_risk"][(i % 3) as usize];
        csv.push_str(&format!(
            "{category},{},{XUZHUANG},{XUZHUANG}{:03},2026-03-01,家庭收入低于当地低保标准1.5倍\n",
            resident(first + i),
            i % 40 + 1
        ));
    }
    let size = csv.len();
    let before = memory(pid);
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (pid, sampling) = (pid.to_owned(), sampling.clone());
        tokio::spawn(async move {
            let mut rss = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                rss.push(memory(&pid).0);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            rss
        })
    };
    let start = Instant::now();
    let r = civil
        .post(format!("{base}/v1/monitoring/uploads"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    let status = r.status().as_u16();
    let answer: Value = r.json().await?;
    let seconds = start.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let rss = sampler.await?;
    let after = memory(pid);
    ensure!(status == 200, "upload: {status} {answer}");
    ensure!(answer["inserted"] == json!(count), "upload: {answer}");
    // RSS over the upload: its range, and the mean of the first and last quarter of the samples.
    let quarter = (rss.len() / 4).max(1);
    let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len().max(1) as f64 / 1024.0;
    Ok(Upload {
        size,
        seconds,
        samples: rss.len(),
        rss_min: rss.iter().min().copied().unwrap_or(0),
        rss_max: rss.iter().max().copied().unwrap_or(0),
        first_q: mean(&rss[..quarter.min(rss.len())]),
        last_q: mean(&rss[rss.len().saturating_sub(quarter)..]),
        before,
        after,
    })
}

/// Plain durable inserts of `rows` event-sized rows: `per_tx == 1` with `concurrency` writers, one
/// transaction a row; else one writer, `per_tx` rows a transaction. Rows per second.
async fn baseline(
    dir: &std::path::Path,
    name: &str,
    rows: usize,
    concurrency: usize,
    per_tx: usize,
) -> anyhow::Result<f64> {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let opts = SqliteConnectOptions::new()
        .filename(dir.join(name))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(concurrency as u32)
        .connect_with(opts)
        .await?;
    sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY, at INTEGER NOT NULL, subject TEXT NOT NULL, sealed TEXT NOT NULL, signature TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let sealed = "x".repeat(600);
    let insert = "INSERT INTO t (id, at, subject, sealed, signature) VALUES ($1, $2, $3, $4, $5)";
    let start = Instant::now();
    if per_tx > 1 {
        let mut done = 0;
        while done < rows {
            let mut tx = pool.begin().await?;
            for _ in done..rows.min(done + per_tx) {
                sqlx::query(insert)
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(0_i64)
                    .bind("p".repeat(64))
                    .bind(&sealed)
                    .bind("s".repeat(120))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            done += per_tx;
        }
        return Ok(rows as f64 / start.elapsed().as_secs_f64());
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (pool, next, sealed) = (pool.clone(), next.clone(), sealed.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < rows {
                sqlx::query(insert)
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(0_i64)
                    .bind("p".repeat(64))
                    .bind(&sealed)
                    .bind("s".repeat(120))
                    .execute(&pool)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(rows as f64 / start.elapsed().as_secs_f64())
}

/// Throughput and per-request latencies of one phase.
struct Phase {
    rate: f64,
    latencies: Vec<Duration>,
}

impl Phase {
    fn quantile(&self, q: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let i = ((l.len() as f64 * q).ceil() as usize).clamp(1, l.len().max(1)) - 1;
        l.get(i).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
    }
}

/// Push signed events, one per request, with `concurrency` in flight; every answer must be 201
/// with `matched` as expected.
async fn push_events(
    health: &reqwest::Client,
    base: &str,
    bodies: Vec<Value>,
    concurrency: usize,
    matched: bool,
) -> anyhow::Result<Phase> {
    let n = bodies.len();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (bodies, next, health, url) = (
            bodies.clone(),
            next.clone(),
            health.clone(),
            format!("{base}/v1/events"),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let sent = Instant::now();
                let r = health.post(&url).json(body).send().await?;
                let status = r.status().as_u16();
                let answer: Value = r.json().await?;
                latencies.push(sent.elapsed());
                ensure!(status == 201, "event {i}: {status} {answer}");
                ensure!(answer["matched"] == json!(matched), "event {i}: {answer}");
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for w in workers {
        latencies.extend(w.await??);
    }
    Ok(Phase {
        rate: n as f64 / start.elapsed().as_secs_f64(),
        latencies,
    })
}

/// Push signed events as `application/x-ndjson` batches of `batch`, `concurrency` requests in
/// flight; every line must be 201 and matched.
async fn push_batches(
    health: &reqwest::Client,
    base: &str,
    bodies: Vec<Value>,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<Phase> {
    let n = bodies.len();
    let mut chunks = Vec::new();
    for c in bodies.chunks(batch) {
        let mut text = String::new();
        for b in c {
            text.push_str(&serde_json::to_string(b)?);
            text.push('\n');
        }
        chunks.push((c.len(), text));
    }
    let chunks = Arc::new(chunks);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (chunks, next, health, url) = (
            chunks.clone(),
            next.clone(),
            health.clone(),
            format!("{base}/v1/events"),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((count, text)) = chunks.get(i) else {
                    break;
                };
                let sent = Instant::now();
                let r = health
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .body(text.clone())
                    .send()
                    .await?;
                let status = r.status().as_u16();
                let answer = r.text().await?;
                latencies.push(sent.elapsed());
                ensure!(status == 200, "batch {i}: {status} {answer}");
                let mut lines = 0;
                for l in answer.lines() {
                    let v: Value = serde_json::from_str(l)?;
                    ensure!(
                        v["status"] == json!(201) && v["receipt"]["matched"] == json!(true),
                        "batch {i}: {v}"
                    );
                    lines += 1;
                }
                ensure!(
                    lines == *count,
                    "batch {i}: {lines} answers for {count} events"
                );
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await??);
    }
    Ok(Phase {
        rate: n as f64 / start.elapsed().as_secs_f64(),
        latencies,
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let _deps = env.start_departments().await?;
    let client = |who: &str| -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .tls_backend_preconfigured(env.client_config(Some(who))?)
            .pool_max_idle_per_host(args.concurrency * 2)
            .timeout(Duration::from_secs(600))
            .build()?)
    };
    let health = client("dept-health")?;
    let civil = client("dept-civil-affairs")?;
    let (hub, _) = BenchHub::start_with(
        &env,
        &HubOptions {
            limits: "\n\n# Raised so that the limits do not interfere with the benchmark.\n\
                     [rate_limits]\ndepartment = { per_second = 1000000, burst = 1000000 }\n",
            env: &[],
        },
        |text| text,
        &health,
    )
    .await?;
    let BenchHub {
        mut child,
        base,
        pid,
        log: log_path,
    } = hub;

    // Baselines first, in the same run and directory.
    let base_single = baseline(
        env.path(),
        "baseline-single.db",
        args.events,
        args.concurrency,
        1,
    )
    .await?;
    let base_batched = baseline(
        env.path(),
        "baseline-batched.db",
        args.events,
        1,
        args.batch,
    )
    .await?;

    let key_path = env.path().join("departments").join("health.pk8");
    let key = connectors::adapter::signing::key_from_pkcs8(
        &std::fs::read(&key_path)?,
        &key_path.display().to_string(),
    )?;
    // Signed beforehand: the department's work, not the hub's.
    let sign_all = |first: u32| -> Vec<Value> {
        let now = time::OffsetDateTime::now_utc();
        (0..args.events as u32)
            .map(|i| {
                let e = DepartmentEvent {
                    protocol: ProtocolVersion,
                    event_id: uuid::Uuid::new_v4(),
                    department: "health".into(),
                    kind: "health.hospitalisation".into(),
                    occurred_at: now - time::Duration::hours(3),
                    issued_at: now,
                    subject: EventSubject {
                        resident_id: ResidentId::parse(&resident(first + i)).expect("valid"),
                    },
                    details: json!({ "admitted_on": "2026-11-01", "total_fen": 5_000_000, "out_of_pocket_fen": 2_000_000 })
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                };
                serde_json::to_value(SignedEvent::sign(e, &key).expect("sign")).expect("json")
            })
            .collect()
    };
    let unmatched = push_events(&health, &base, sign_all(0), args.concurrency, false).await?;

    // The monitoring-list uploads, the hub's RSS sampled meanwhile: `--uploads` files of
    // `--households` different households each, one after the other. The first warms the hub's
    // caches (SQLite's page cache per pooled connection, statement caches); memory that stays flat
    // across the later ones does not grow with what has been uploaded.
    let mut uploads = Vec::new();
    for k in 0..args.uploads {
        match upload(
            &civil,
            &base,
            &pid,
            100_000 + k * args.households,
            args.households,
        )
        .await
        {
            Ok(u) => uploads.push(u),
            Err(e) => {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
                bail!(
                    "upload {} of {}: {e:#}\nthe hub's log errors:\n{}",
                    k + 1,
                    args.uploads,
                    errors[errors.len().saturating_sub(10)..].join("\n")
                );
            }
        }
    }

    // Events about households now on the monitoring list: placed, and the warning rules evaluated
    // in the same commit (each raises a `hospital_costs` warning).
    ensure!(
        2 * args.events as u32 <= args.households,
        "--households must be at least twice --events"
    );
    let placed = push_events(&health, &base, sign_all(100_000), args.concurrency, true).await?;
    let batched = push_batches(
        &health,
        &base,
        sign_all(100_000 + args.events as u32),
        args.batch,
        args.batch_concurrency,
    )
    .await?;

    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "events-bench ({} events a phase; {build} build; hub on SQLite; {} cores, shared)",
        args.events,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  {:<62} {:>9} {:>9} {:>9} {:>9}",
        "phase", "per s", "÷ base 1", "÷ base B", "p99 ms"
    );
    let row = |name: String, rate: f64, p99: Option<f64>| {
        println!(
            "  {name:<62} {rate:>9.0} {:>9.2} {:>9.2} {:>9}",
            rate / base_single,
            rate / base_batched,
            p99.map_or("-".to_owned(), |p| format!("{p:.1}"))
        );
    };
    row(
        format!(
            "baseline: plain durable inserts, 1 row/tx, C={}",
            args.concurrency
        ),
        base_single,
        None,
    );
    row(
        format!("baseline: plain durable inserts, {} rows/tx", args.batch),
        base_batched,
        None,
    );
    row(
        format!("unmatched events, single pushes, C={}", args.concurrency),
        unmatched.rate,
        Some(unmatched.quantile(0.99)),
    );
    row(
        format!(
            "placed events + rules (warning), single pushes, C={}",
            args.concurrency
        ),
        placed.rate,
        Some(placed.quantile(0.99)),
    );
    row(
        format!(
            "placed events + rules (warning), ndjson batches of {}, C={}",
            args.batch, args.batch_concurrency
        ),
        batched.rate,
        Some(batched.quantile(0.99)),
    );
    println!(
        "  event→warning latency (201 after the warning is durable): single p50 {:.1} ms, p99 {:.1} ms; batch p50 {:.1} ms, p99 {:.1} ms",
        placed.quantile(0.5),
        placed.quantile(0.99),
        batched.quantile(0.5),
        batched.quantile(0.99)
    );
    for (k, u) in uploads.iter().enumerate() {
        println!(
            "  upload {} of {}: {} households ({:.1} MiB CSV) in {:.1} s ({:.0}/s); hub RSS during it ({} samples, 20 ms apart) {:.0}–{:.0} MiB, first quarter mean {:.0} MiB, last quarter mean {:.0} MiB; before {} MiB, after {} MiB; peak (VmHWM) {} → {} MiB",
            k + 1,
            uploads.len(),
            args.households,
            u.size as f64 / (1 << 20) as f64,
            u.seconds,
            f64::from(args.households) / u.seconds,
            u.samples,
            u.rss_min as f64 / 1024.0,
            u.rss_max as f64 / 1024.0,
            u.first_q,
            u.last_q,
            u.before.0 / 1024,
            u.after.0 / 1024,
            u.before.1 / 1024,
            u.after.1 / 1024
        );
    }
    if let (Some(first), Some(last)) = (uploads.first(), uploads.last())
        && uploads.len() > 1
    {
        println!(
            "  hub RSS after upload 1 → after upload {}: {} → {} MiB ({:+.1} %), peak {} → {} MiB",
            uploads.len(),
            first.after.0 / 1024,
            last.after.0 / 1024,
            (last.after.0 as f64 / first.after.0.max(1) as f64 - 1.0) * 100.0,
            first.after.1 / 1024,
            last.after.1 / 1024
        );
    }
    let _ = child.kill().await;
    Ok(())
}
