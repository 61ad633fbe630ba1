//! `events-bench`: department events and the monitoring list (issue 12, item 8), in one run.
//!
//! - **baseline**: plain durable inserts of event-sized rows into a SQLite file beside the hub's
//!   (WAL, `synchronous=FULL`, one transaction per row, the same concurrency): what the disk
//!   allows without any of the hub's work;
//! - **events**: signed department events (`health.hospitalisation`, signed beforehand with the
//!   demo health department's real key) pushed to the hub over mTLS (`POST /v1/events`, connections
//!   reused), each checked (schema, signature, freshness), placed, sealed, logged and stored
//!   durably before its 201;
//! - **placed**: the same number of events about households on the monitoring list (after the
//!   upload): placed, and the warning rules evaluated in the same transaction (each raises a
//!   warning), the ingest path the early-warning queue relies on;
//! - **upload**: a monitoring-list upload of `--households` households as one CSV
//!   (`POST /v1/monitoring/uploads`), with the hub's resident set (`VmRSS`) and peak (`VmHWM`) read
//!   from `/proc/<pid>/status` before and after: streamed, the peak should not grow with the file.
//!
//! The hub is a separate process (this binary re-executed as `events-bench serve --config F`) on
//! SQLite. Every request must succeed; otherwise the benchmark exits non-zero.
//!
//! Run: `cargo run --workspace --locked --bin events-bench -- --events 5000 --concurrency 8`
//! (debug build; add `--release` on a machine of your own for release figures).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use hub_tests::TestEnv;
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
    /// Events pushed (and baseline rows inserted).
    #[arg(long, default_value_t = 5000)]
    events: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Households in the monitoring-list upload.
    #[arg(long, default_value_t = 100_000)]
    households: u32,
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
        args.events > 0 && args.concurrency > 0,
        "--events and --concurrency must be > 0"
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

async fn baseline(dir: &std::path::Path, rows: usize, concurrency: usize) -> anyhow::Result<f64> {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("baseline.db"))
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
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (pool, next, sealed) = (pool.clone(), next.clone(), sealed.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < rows {
                sqlx::query("INSERT INTO t (id, at, subject, sealed, signature) VALUES ($1, $2, $3, $4, $5)")
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

/// Push signed events with `concurrency` in flight; events per second.
async fn push_events(
    health: &reqwest::Client,
    base: &str,
    bodies: Vec<Value>,
    concurrency: usize,
) -> anyhow::Result<f64> {
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
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let r = health.post(&url).json(body).send().await?;
                ensure!(r.status().as_u16() == 201, "event {i}: {}", r.status());
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let _deps = env.start_departments().await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    env.config(|text| {
        let text = text.replacen(
            "[server]\nlisten = \"127.0.0.1:0\"",
            &format!("[server]\nlisten = \"127.0.0.1:{port}\""),
            1,
        );
        format!(
            "{text}\n\n# Raised so that the limits do not interfere with the benchmark.\n\
             [rate_limits]\ndepartment = {{ per_second = 1000000, burst = 1000000 }}\n"
        )
    })?;
    let log_path = env.path().join("hub.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--config")
        .arg(env.config_path())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting the hub process")?;
    let pid = child.id().context("hub pid")?.to_string();
    let base = format!("https://localhost:{port}");
    let client = |who: &str| -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .tls_backend_preconfigured(env.client_config(Some(who))?)
            .pool_max_idle_per_host(args.concurrency * 2)
            .timeout(Duration::from_secs(600))
            .build()?)
    };
    let health = client("dept-health")?;
    let civil = client("dept-civil-affairs")?;
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("hub exited at start-up ({status})");
        }
        match health.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if Instant::now() > ready_by => bail!("hub not ready after 60 s"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    // Baseline first, in the same run and directory.
    let base_rate = baseline(env.path(), args.events, args.concurrency).await?;

    // Events, signed beforehand (the department's work, not the hub's).
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
    let event_rate = push_events(&health, &base, sign_all(0), args.concurrency).await?;

    // The monitoring-list upload.
    let mut csv = String::from("category,resident_id,township,village,since,reason\n");
    for i in 0..args.households {
        let category = ["dibao_edge", "expenditure_hardship", "poverty_risk"][(i % 3) as usize];
        csv.push_str(&format!(
            "{category},{},{XUZHUANG},{XUZHUANG}{:03},2026-03-01,家庭收入低于当地低保标准1.5倍\n",
            resident(100_000 + i),
            i % 40 + 1
        ));
    }
    let size = csv.len();
    let before = memory(&pid);
    let start = Instant::now();
    let r = civil
        .post(format!("{base}/v1/monitoring/uploads"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    let status = r.status().as_u16();
    let answer: Value = r.json().await?;
    let upload_s = start.elapsed().as_secs_f64();
    let after = memory(&pid);
    ensure!(status == 200, "upload: {status} {answer}");
    ensure!(
        answer["inserted"] == json!(args.households),
        "upload: {answer}"
    );

    // Events about households now on the monitoring list: placed, and the warning rules evaluated
    // in the same transaction (each raises a `hospital_costs` warning).
    ensure!(
        args.events as u32 <= args.households,
        "--events must not exceed --households"
    );
    let placed_rate = push_events(&health, &base, sign_all(100_000), args.concurrency).await?;

    println!(
        "events-bench ({} events, concurrency {}; hub on SQLite, debug build unless run with --release)",
        args.events, args.concurrency
    );
    println!("  baseline durable inserts   {base_rate:>10.0} rows/s");
    println!(
        "  signed events through hub  {event_rate:>10.0} events/s  ({:.0}% of baseline)",
        100.0 * event_rate / base_rate
    );
    println!(
        "  placed events + warning rules {placed_rate:>6.0} events/s  ({:.0}% of baseline)",
        100.0 * placed_rate / base_rate
    );
    println!(
        "  upload {} households ({:.1} MiB CSV) in {upload_s:.1} s ({:.0}/s)",
        args.households,
        size as f64 / (1 << 20) as f64,
        f64::from(args.households) / upload_s
    );
    println!(
        "  hub memory: RSS {} → {} MiB, peak (VmHWM) {} → {} MiB",
        before.0 / 1024,
        after.0 / 1024,
        before.1 / 1024,
        after.1 / 1024
    );
    let _ = child.kill().await;
    Ok(())
}
