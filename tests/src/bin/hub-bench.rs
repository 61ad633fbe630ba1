//! `hub-bench`: the verification benchmark (issue 6, item 8), in one run against the demo's seven
//! simulated departments (seed [`hub::demo::DEMO_SEED`], [`hub::demo::DEMO_HOUSEHOLDS`] households):
//!
//! - (a) a single-department query made **directly** to the simulated labor department with
//!   [`connectors::RemoteConnector`] (mTLS, the hub's outbound certificate): a 4-member household,
//!   the fact kinds the benchmark purpose asks of labor;
//! - (b) the **same query through the hub**: `POST /v1/verifications` over mTLS as a caseworker, for
//!   a purpose whose plan asks labor only, citing an authorization letter recorded beforehand;
//! - (c) full cross-checks: 4 members, 7 departments (`dibao_application`), closed loop: the
//!   maximum throughput;
//! - (c2) P2's latency half: full checks at half of (c)'s throughput, open loop (a fixed arrival
//!   schedule), each request's added latency = its latency − the slowest department's round trip
//!   (the hub's `Server-Timing: fanout;dur=…`);
//! - (d)/(e) P4: `/healthz` on kept-alive and on new mTLS connections, against (d0)/(e0) a bare
//!   hyper + rustls server with the hub's certificates (the floor);
//! - P3: the access log alone, in this process ([`hub_tests::bench::access_log`], also `log-bench`):
//!   durable appends/s with group commit on SQLite and on PostgreSQL (a fresh database at
//!   `HUB_TEST_PG_URL`) against one transaction per append, and `hub audit verify --db` over the
//!   SQLite log just written (`--skip-p3` leaves it out);
//! - (f) P5: the hub's resident memory while `--memory-clients` clients run full checks (`--soak S`
//!   for S seconds, with the RSS and thread count printed every `--rss-report-every` seconds).
//!
//! The hub runs as a **separate process** (this binary re-executed as `hub-bench serve --config F`,
//! which is `hub::cli::main`), so its CPU time is read from `/proc/<pid>/stat` (utime + stime) without
//! the load generator's and the departments' share; both of those run in this process.
//!
//! The benchmark's policies directory is a copy of the shipped one in which `annual_review` asks labor
//! only (the same labor fact kinds; `raw_visible` and `[income]` cut down to labor so the profile stays
//! valid): no shipped purpose asks a single department.
//!
//! Every request must succeed (status 200, every planned department `answered`); otherwise the
//! benchmark exits non-zero: a failed query is not a data point.
//!
//! Run: `cargo run --release -p hub-tests --bin hub-bench -- --seconds 10 --concurrency 8`.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use connectors::sim::AwkwardCase;
use connectors::{Connector, RemoteConfig, RemoteConnector};
use hub::pki::ClientSpec;
use hub_tests::TestEnv;
use hub_tests::bench::{BenchHub, HubOptions, access_log};
use schemas::protocol::{FactQuery, ProtocolVersion, QuerySubject};
use schemas::{Department, FactKind, Household, Purpose, Role};
use serde_json::{Value, json};

/// The purpose whose profile the benchmark cuts down to labor only (for (a) and (b)).
const SINGLE_PURPOSE: Purpose = Purpose::AnnualReview;
/// The full cross-check (c).
const FULL_PURPOSE: Purpose = Purpose::DibaoApplication;
/// The benchmark's caseworker: a city-level officer, so every household of the population is in
/// jurisdiction (a township caseworker has only a few 4-member households).
const CASEWORKER: &str = "bench-officer";

#[derive(Debug, Parser)]
#[command(
    name = "hub-bench",
    about = "Verification benchmark: direct department query vs. through the hub, and full 7-department cross-checks"
)]
struct Args {
    /// Measured seconds per phase (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests in flight at once (closed loop: each worker sends its next request when the last
    /// one is answered).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Warm-up seconds per phase (not measured); default: min(2, seconds).
    #[arg(long)]
    warmup: Option<f64>,
    /// The hub's log filter (`[telemetry] log_filter`); `info` logs every request, as deployed.
    #[arg(long, default_value = "info")]
    hub_log_filter: String,
    /// Repeat phases (a)-(e) this many times and report min / median / max of each figure.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Clients running full checks at once in the memory phase (f) (P5: resident memory of the hub).
    #[arg(long, default_value_t = 64)]
    memory_clients: usize,
    /// Run the memory phase (f) for this many seconds instead of `--seconds` (a soak: `--soak 600`),
    /// sampling the hub's RSS every second; memory must stay flat and no request may fail.
    #[arg(long)]
    soak: Option<u64>,
    /// Leave out P3 (the access log's durable appends on SQLite and PostgreSQL, and
    /// `hub audit verify --db`), e.g. for a short smoke run.
    #[arg(long)]
    skip_p3: bool,
    /// Concurrent appenders in P3's group-commit measurement (the baseline, one transaction per
    /// append, uses at most 64).
    #[arg(long, default_value_t = 512)]
    p3_concurrency: u64,
    /// Leave out P2's latency half (the open-loop phase (c2) at half of (c)'s throughput).
    #[arg(long)]
    skip_latency: bool,
    /// An environment variable for the hub process only, `NAME=VALUE` (repeatable); e.g.
    /// `--hub-env MALLOC_ARENA_MAX=2` to compare the hub's memory.
    #[arg(long, value_parser = parse_env)]
    hub_env: Vec<(String, String)>,
    /// In the memory phase (f), print the hub's RSS and thread count this often (seconds).
    #[arg(long, default_value_t = 60)]
    rss_report_every: u64,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("{s}: empty NAME"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn main() -> anyhow::Result<()> {
    // The hub process of the benchmark: this same binary, re-executed.
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return hub::cli::main();
    }
    // The floor of P4: a bare hyper + rustls server with the hub's certificates (this binary
    // re-executed as `hub-bench floor CERT KEY CA PORT`).
    if std::env::args().nth(1).as_deref() == Some("floor") {
        let a: Vec<String> = std::env::args().skip(2).collect();
        ensure!(a.len() == 4, "usage: hub-bench floor CERT KEY CA PORT");
        hub::tls::install_default_provider();
        return tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(floor::serve(
                Path::new(&a[0]),
                Path::new(&a[1]),
                Path::new(&a[2]),
                a[3].parse()?,
            ));
    }
    let args = Args::parse();
    ensure!(args.runs > 0, "--runs must be at least 1");
    ensure!(
        args.memory_clients > 0,
        "--memory-clients must be at least 1"
    );
    ensure!(args.seconds > 0, "--seconds must be at least 1");
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    hub::tls::install_default_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// One measured phase.
struct Phase {
    name: &'static str,
    /// Completed requests inside the measured window.
    count: u64,
    window: Duration,
    p50: Duration,
    p99: Duration,
    /// Hub process CPU (utime + stime) during the window.
    hub_cpu: Duration,
    /// This process's CPU (load generator and departments) during the window.
    bench_cpu: Duration,
    /// Department queries per request.
    departments: u64,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.count as f64 / self.window.as_secs_f64()
    }
    fn hub_cpu_per_request_us(&self) -> f64 {
        self.hub_cpu.as_secs_f64() * 1e6 / self.count.max(1) as f64
    }
    fn hub_cpu_per_department_query_us(&self) -> f64 {
        self.hub_cpu_per_request_us() / self.departments.max(1) as f64
    }
}

/// CPU time (utime + stime) of a process from `/proc/<pid>/stat` fields 14 and 15.
fn process_cpu(pid: &str, ticks_per_second: u64) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces: count after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .context("short /proc stat")?
            .parse::<u64>()
            .context("/proc stat field")
    };
    let ticks = field(14)? + field(15)?;
    Ok(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second as f64,
    ))
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How each phase loads the system, and where the hub's CPU is read.
#[derive(Clone)]
struct Load {
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
    hub_pid: String,
    /// `getconf CLK_TCK`.
    ticks: u64,
}

/// Run `op(n)` (n = 0, 1, 2, …) from `concurrency` closed-loop workers: `warmup` unmeasured, then
/// `measure`. Requests completing inside the measured window are counted and their latencies kept;
/// the hub's and this process's CPU are sampled at the window's edges. The first failure ends the
/// phase with an error.
async fn run_phase<F, Fut>(
    load: &Load,
    name: &'static str,
    departments: u64,
    op: F,
) -> anyhow::Result<Phase>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let Load {
        concurrency,
        warmup,
        measure,
        ref hub_pid,
        ticks,
    } = *load;
    let op = Arc::new(op);
    let seq = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let window_start = start + warmup;
    let window_end = window_start + measure;
    let sampler = {
        let pid = hub_pid.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep_until(window_start).await;
            let h0 = process_cpu(&pid, ticks)?;
            let b0 = process_cpu("self", ticks)?;
            tokio::time::sleep_until(window_end).await;
            let h1 = process_cpu(&pid, ticks)?;
            let b1 = process_cpu("self", ticks)?;
            anyhow::Ok((h1.saturating_sub(h0), b1.saturating_sub(b0)))
        })
    };
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let op = op.clone();
        let seq = seq.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let t0 = tokio::time::Instant::now();
                if t0 >= window_end {
                    break;
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                op(n)
                    .await
                    .with_context(|| format!("{name}: request {n}"))?;
                let t1 = tokio::time::Instant::now();
                if t1 >= window_start && t1 <= window_end {
                    latencies.push(t1 - t0);
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    let mut first_error = None;
    for w in workers {
        match w.await? {
            Ok(l) => all.extend(l),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        sampler.abort();
        return Err(e);
    }
    let (hub_cpu, bench_cpu) = sampler.await??;
    all.sort_unstable();
    Ok(Phase {
        name,
        count: all.len() as u64,
        window: measure,
        p50: percentile(&all, 50.0),
        p99: percentile(&all, 99.0),
        hub_cpu,
        bench_cpu,
        departments,
    })
}

/// A copy of the shipped policies directory in which [`SINGLE_PURPOSE`] asks labor only.
fn write_policies(dir: &Path) -> anyhow::Result<Vec<FactKind>> {
    let shipped = policies::PolicyEngine::shipped_dir();
    for sub in [
        policies::engine::CEDAR_DIR,
        policies::engine::PROFILES_DIR,
        policies::engine::STANDARDS_DIR,
        policies::engine::CALENDAR_DIR,
    ] {
        let to = dir.join(sub);
        std::fs::create_dir_all(&to)?;
        for f in std::fs::read_dir(shipped.join(sub))? {
            let f = f?;
            if f.file_type()?.is_file() {
                std::fs::copy(f.path(), to.join(f.file_name()))?;
            }
        }
    }
    let path = dir
        .join(policies::engine::PROFILES_DIR)
        .join(format!("{}.toml", SINGLE_PURPOSE.code()));
    let mut profile: toml::Table = toml::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("{}", path.display()))?;
    let labor = Department::Labor.code();
    let is_labor = |v: &toml::Value| {
        v.as_str()
            .is_some_and(|s| s.starts_with(&format!("{labor}.")))
    };
    let ask = profile
        .get_mut("ask")
        .and_then(toml::Value::as_table_mut)
        .context("profile without [ask]")?;
    ask.retain(|d, _| d == labor);
    ensure!(!ask.is_empty(), "the profile asks nothing of labor");
    if let Some(raw) = profile
        .get_mut("raw_visible")
        .and_then(toml::Value::as_array_mut)
    {
        raw.retain(is_labor);
    }
    if let Some(income) = profile
        .get_mut("income")
        .and_then(toml::Value::as_table_mut)
    {
        for (_, list) in income.iter_mut() {
            if let Some(list) = list.as_array_mut() {
                list.retain(is_labor);
            }
        }
    }
    std::fs::write(&path, toml::to_string(&profile)?)?;
    let engine = policies::PolicyEngine::load(dir)
        .map_err(|e| anyhow::anyhow!("benchmark policies do not load: {e}"))?;
    let plan = engine.profiles().plan(SINGLE_PURPOSE);
    ensure!(
        plan.len() == 1 && plan.contains_key(&Department::Labor),
        "benchmark profile must ask labor only"
    );
    Ok(plan[&Department::Labor].clone())
}

fn household_json(h: &Household) -> Value {
    json!({
        "registered_division": h.registered_division.as_str(),
        "members": h.members.iter().map(|m| json!({
            "resident_id": m.resident_id.as_str(),
            "name": m.name,
            "relation": m.relation.code(),
        })).collect::<Vec<_>>(),
    })
}

/// A household of the population with the id of its recorded authorization letter.
struct Case {
    household: Household,
    authorization_id: String,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// POST `body` as JSON; returns (status, JSON body).
async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let r = client.post(url).json(body).send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Check a verification answer: 200 and exactly `want` departments, each answered.
fn check_report(status: u16, report: &Value, want: usize) -> anyhow::Result<()> {
    ensure!(status == 200, "verification: HTTP {status}: {report}");
    let departments = report["departments"]
        .as_array()
        .context("report without departments")?;
    ensure!(
        departments.len() == want,
        "report names {} departments, expected {want}",
        departments.len()
    );
    for d in departments {
        ensure!(
            d["status"] == "answered",
            "department {} not answered: {}",
            d["department"],
            d["status"]
        );
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let ticks = clock_ticks();
    let measure = Duration::from_secs(args.seconds);
    let warmup = Duration::from_secs_f64(args.warmup.unwrap_or((args.seconds as f64).min(2.0)));
    let setup_started = Instant::now();

    // PKI, departments and the hub's config, as the demo and the end-to-end tests do.
    let env = TestEnv::new()?;
    env.issue(
        CASEWORKER,
        &ClientSpec {
            role: Role::Caseworker,
            organisation: "mz-370800".into(),
            division: "370800".into(),
            principal: "bench-officer-01".into(),
            display_name: "济宁市民政局基准测试 (benchmark officer)".into(),
        },
    )?;
    let deps = env.start_departments().await?;
    let labor_kinds = write_policies(&env.path().join("bench-policies"))?;
    let log_filter = args.hub_log_filter.clone();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(env.client_config(Some(CASEWORKER))?)
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    // The hub as a separate process, logging to a file.
    let (mut hub, hub_config) = BenchHub::start_with(
        &env,
        &HubOptions {
            limits: "\n\n[policies]\ndir = \"bench-policies\"\n\n\
                     # Raised so that the limits do not interfere with the benchmark.\n\
                     [rate_limits]\ncaseworker = { per_second = 1000000, burst = 1000000 }\n\
                     households_per_hour = 1000000000\npeople_per_hour = 1000000000\n",
            env: &args.hub_env,
        },
        |text| {
            // P4 and P5 open more connections than one identity may hold as deployed (32).
            let text = text.replace(
                "max_connections_per_identity = 32",
                "max_connections_per_identity = 4096",
            );
            text.replace(
                "log_filter = \"info\"",
                &format!("log_filter = \"{log_filter}\""),
            )
        },
        &client,
    )
    .await?;
    let base = hub.base.clone();

    // 4-member households of the simulated population, each with a letter on record. Households
    // civil affairs cannot place (a member unknown to it) or split across townships are left out:
    // the hub refuses those by jurisdiction before any fact query, which is not what is measured.
    let households: Vec<Household> = deps
        .population
        .households()
        .iter()
        .filter(|h| h.members.len() == 4)
        .filter(|h| {
            h.cases.iter().all(|c| {
                !matches!(
                    c,
                    AwkwardCase::UnknownToDepartment {
                        department: Department::CivilAffairs,
                        ..
                    } | AwkwardCase::SplitAcrossTownships { .. }
                )
            })
        })
        .map(|h| deps.population.household_declaration(h.id))
        .collect();
    ensure!(!households.is_empty(), "no 4-member household");
    let cases = record_letters(&client, &base, households, args.concurrency).await?;
    let cases = Arc::new(cases);

    // Does the hub take `force_fresh` (evidence reuse off for the request)? Without it, the
    // rotation over many households keeps repeats apart.
    let force_fresh = probe_force_fresh(&client, &base, &cases[0]).await?;
    println!(
        "setup: {} four-member households with letters, hub pid {}, {:.1} s; force_fresh: {}",
        cases.len(),
        hub.pid,
        setup_started.elapsed().as_secs_f64(),
        if force_fresh {
            "sent"
        } else {
            "not supported by this hub (households rotate)"
        }
    );

    let load = Load {
        concurrency: args.concurrency,
        warmup,
        measure,
        hub_pid: hub.pid.clone(),
        ticks,
    };

    // (a) Direct: the hub's connector code, the hub's outbound certificate, the labor department.
    let pki = &env.pki;
    let tls = connectors::tls::client_config_from_pem(
        &std::fs::read(pki.ca_pem_path())?,
        &std::fs::read(pki.cert_path("hub-outbound"))?,
        &std::fs::read(pki.key_path("hub-outbound"))?,
    )?;
    let labor = &deps.handles[&Department::Labor];
    let connector = Arc::new(RemoteConnector::new(
        RemoteConfig::new(Department::Labor, labor.url(), vec![labor.public_key()]),
        tls,
    )?);
    let kinds = Arc::new(labor_kinds);
    // P4's floor: a bare hyper + rustls server with the hub's certificate, key and client CA, as a
    // separate process like the hub.
    let floor_port = free_port()?;
    let mut floor = tokio::process::Command::new(std::env::current_exe()?)
        .arg("floor")
        .arg(&hub_config.tls.cert)
        .arg(&hub_config.tls.key)
        .arg(&hub_config.tls.client_ca)
        .arg(floor_port.to_string())
        .kill_on_drop(true)
        .spawn()
        .context("starting the floor server")?;
    let floor_pid = floor.id().context("floor pid")?.to_string();
    let floor_base = format!("https://localhost:{floor_port}");
    let floor_ready_by = Instant::now() + Duration::from_secs(20);
    while client
        .get(format!("{floor_base}/healthz"))
        .send()
        .await
        .is_err()
    {
        ensure!(Instant::now() < floor_ready_by, "floor server not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A client that opens a new connection (TCP + TLS handshake with its client certificate) for
    // every request: nothing is kept idle in its pool.
    let fresh = reqwest::Client::builder()
        .tls_backend_preconfigured(env.client_config(Some(CASEWORKER))?)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()?;

    let target = Target {
        cases: cases.clone(),
        force_fresh,
        base: base.clone(),
    };
    let mut runs = Vec::with_capacity(args.runs);
    for run in 0..args.runs {
        // (a) Direct: the hub's connector code, the hub's outbound certificate, the labor department.
        let direct = {
            let cases = cases.clone();
            let connector = connector.clone();
            let kinds = kinds.clone();
            run_phase(&load, "(a) direct", 1, move |n| {
                let cases = cases.clone();
                let connector = connector.clone();
                let kinds = kinds.clone();
                async move {
                    let case = &cases[n as usize % cases.len()];
                    let now = time::OffsetDateTime::now_utc();
                    let query = FactQuery {
                        protocol: ProtocolVersion,
                        request_id: uuid::Uuid::new_v4(),
                        department: Department::Labor,
                        purpose: SINGLE_PURPOSE,
                        authorization_ref: case.authorization_id.clone(),
                        as_of: now.to_offset(time::macros::offset!(+8)).date(),
                        issued_at: now,
                        subjects: case
                            .household
                            .members
                            .iter()
                            .enumerate()
                            .map(|(i, m)| QuerySubject {
                                subject_ref: format!("m{}", i + 1),
                                resident_id: m.resident_id.clone(),
                            })
                            .collect(),
                        fact_kinds: kinds.to_vec(),
                    };
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                    let answer = connector
                        .query(&query, deadline)
                        .await
                        .map_err(|e| anyhow::anyhow!("labor: {e}"))?;
                    ensure!(
                        answer.answer.results.len() == 4,
                        "labor answered {} of 4 members",
                        answer.answer.results.len()
                    );
                    Ok(())
                }
            })
            .await?
        };
        // (b) and (c) through the hub.
        let through = via_hub(
            &load,
            &client,
            &target,
            "(b) via hub",
            SINGLE_PURPOSE,
            1,
            run,
        )
        .await?;
        let full = via_hub(
            &load,
            &client,
            &target,
            "(c) full check",
            FULL_PURPOSE,
            Department::ALL.len(),
            run,
        )
        .await?;
        // (c2) P2's latency half: an open loop at half of (c)'s throughput.
        let latency = if args.skip_latency {
            None
        } else {
            let rate = full.per_second() / 2.0;
            ensure!(rate > 0.0, "(c) completed no full check: no rate for (c2)");
            Some(open_loop(&load, &client, &target, FULL_PURPOSE, rate, run).await?)
        };
        // (d) P4: requests to `/healthz` on kept-alive connections, the hub and then the floor;
        // (e) a new mTLS connection for every request, the hub and then the floor.
        let hub_kept = healthz(&load, "(d) healthz kept-alive, hub", &client, &base).await?;
        let floor_load = Load {
            hub_pid: floor_pid.clone(),
            ..load.clone()
        };
        let floor_kept = healthz(
            &floor_load,
            "(d0) healthz kept-alive, floor",
            &client,
            &floor_base,
        )
        .await?;
        let hub_new = healthz(&load, "(e) new mTLS connection, hub", &fresh, &base).await?;
        let floor_new = healthz(
            &floor_load,
            "(e0) new mTLS connection, floor",
            &fresh,
            &floor_base,
        )
        .await?;
        if let Some(status) = hub.child.try_wait()? {
            bail!(
                "the hub exited during the benchmark ({status}):\n{}",
                hub.log_tail()
            );
        }
        print_table(
            &args,
            warmup,
            cases.len(),
            force_fresh,
            &direct,
            &through,
            &full,
        );
        if let Some(l) = &latency {
            l.print(full.per_second());
        }
        print_connections(&hub_kept, &floor_kept, &hub_new, &floor_new);
        // P3: the access log alone, in this process (the hub idle meanwhile).
        let p3 = if args.skip_p3 {
            None
        } else {
            let f = access_log::measure(&access_log::Options {
                warmup: Some(warmup),
                batched: access_log::Budget::For(measure),
                unbatched: access_log::Budget::For(measure.min(Duration::from_secs(3))),
                concurrency: args.p3_concurrency,
                postgres: true,
            })
            .await?;
            println!(
                "\nP3 durable access-log appends 访问日志持久追加 (in this process, the hub idle):"
            );
            f.sqlite.print();
            println!(
                "SQLite: offline verification (hub audit verify --db) {:.0} entries/s ({} entries in {:.2} s)",
                f.verify.per_second(),
                f.verify.size,
                f.verify.secs
            );
            if let Some(pg) = &f.postgres {
                pg.print();
            }
            Some(f)
        };
        runs.push(Run {
            added_p50: latency.as_ref().map_or(f64::NAN, |l| ms(l.added.0)),
            added_p99: latency.as_ref().map_or(f64::NAN, |l| ms(l.added.1)),
            p3_sqlite: p3
                .as_ref()
                .map_or(f64::NAN, |f| f.sqlite.batched.per_second()),
            p3_sqlite_base: p3
                .as_ref()
                .map_or(f64::NAN, |f| f.sqlite.unbatched.per_second()),
            p3_pg: p3
                .as_ref()
                .and_then(|f| f.postgres.as_ref())
                .map_or(f64::NAN, |b| b.batched.per_second()),
            p3_pg_base: p3
                .as_ref()
                .and_then(|f| f.postgres.as_ref())
                .map_or(f64::NAN, |b| b.unbatched.per_second()),
            p3_verify: p3.as_ref().map_or(f64::NAN, |f| f.verify.per_second()),
            p3_verify_size: p3.as_ref().map_or(0, |f| f.verify.size),
            p1: through.per_second() / direct.per_second().max(f64::MIN_POSITIVE),
            p2: full.hub_cpu_per_department_query_us(),
            full_per_second: full.per_second(),
            kept: hub_kept.per_second() / floor_kept.per_second().max(f64::MIN_POSITIVE),
            new: hub_new.per_second() / floor_new.per_second().max(f64::MIN_POSITIVE),
            new_hub: hub_new.per_second(),
            new_floor: floor_new.per_second(),
        });
    }
    floor.kill().await?;

    // (f) P5: the hub's resident memory with `--memory-clients` clients running full checks at
    // once, for `--seconds` (or `--soak` seconds), sampled every second (every 100 ms if short).
    let memory_seconds = args.soak.unwrap_or(args.seconds);
    let memory_client = reqwest::Client::builder()
        .tls_backend_preconfigured(env.client_config(Some(CASEWORKER))?)
        .pool_max_idle_per_host(args.memory_clients * 2)
        .timeout(Duration::from_secs(120))
        .build()?;
    let memory_load = Load {
        concurrency: args.memory_clients,
        measure: Duration::from_secs(memory_seconds),
        ..load.clone()
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let every = if memory_seconds >= 60 {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(100)
    };
    let sampler = sample_rss(
        hub.pid.clone(),
        warmup,
        every,
        Duration::from_secs(args.rss_report_every.max(1)),
        stop.clone(),
    );
    let memory = via_hub(
        &memory_load,
        &memory_client,
        &target,
        "(f) full checks, memory",
        FULL_PURPOSE,
        Department::ALL.len(),
        args.runs,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await?;
    let memory = memory?;
    let rss: Vec<u64> = samples.iter().map(|s| s.0).collect();
    let threads = samples.iter().map(|s| s.1).max().unwrap_or(0);

    if let Some(status) = hub.child.try_wait()? {
        bail!(
            "the hub exited during the benchmark ({status}):\n{}",
            hub.log_tail()
        );
    }
    hub.child.kill().await?;
    for (_, h) in deps.handles {
        h.shutdown().await;
    }
    print_summary(&args, &runs, &memory, &rss, threads, every);
    Ok(())
}

/// What the verification phases send: households with letters, to which hub.
struct Target {
    cases: Arc<Vec<Case>>,
    force_fresh: bool,
    base: String,
}

/// One run's figures, for the min / median / max summary (NaN: not measured).
struct Run {
    /// P2's latency half: the hub's added latency over the slowest department, ms.
    added_p50: f64,
    added_p99: f64,
    /// P3: durable appends/s with group commit and one transaction per append; entries/s verified.
    p3_sqlite: f64,
    p3_sqlite_base: f64,
    p3_pg: f64,
    p3_pg_base: f64,
    p3_verify: f64,
    p3_verify_size: u64,
    p1: f64,
    p2: f64,
    full_per_second: f64,
    kept: f64,
    new: f64,
    new_hub: f64,
    new_floor: f64,
}

/// Full checks (or labor-only ones) through the hub from `load.concurrency` workers.
async fn via_hub(
    load: &Load,
    client: &reqwest::Client,
    target: &Target,
    name: &'static str,
    purpose: Purpose,
    want: usize,
    run: usize,
) -> anyhow::Result<Phase> {
    let cases = target.cases.clone();
    let force_fresh = target.force_fresh;
    let client = client.clone();
    let url = format!("{}/v1/verifications", target.base);
    run_phase(load, name, want as u64, move |n| {
        let cases = cases.clone();
        let client = client.clone();
        let url = url.clone();
        async move {
            let case = &cases[n as usize % cases.len()];
            let mut body = json!({
                "household": household_json(&case.household),
                "purpose": purpose.code(),
                "case_ref": format!("BENCH-{}-{run}-{n}", purpose.code()),
                "urgency": "normal",
                "authorization_id": case.authorization_id,
            });
            if force_fresh {
                body["force_fresh"] = json!(true);
            }
            let (status, report) = post(&client, &url, &body).await?;
            check_report(status, &report, want)
        }
    })
    .await
}

/// `GET /healthz` from `load.concurrency` workers through `client` (kept-alive or fresh connections).
async fn healthz(
    load: &Load,
    name: &'static str,
    client: &reqwest::Client,
    base: &str,
) -> anyhow::Result<Phase> {
    let client = client.clone();
    let url = format!("{base}/healthz");
    run_phase(load, name, 1, move |_| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client.get(&url).send().await?;
            let status = r.status().as_u16();
            r.bytes().await?;
            ensure!(status == 200, "{url}: HTTP {status}");
            Ok(())
        }
    })
    .await
}

/// Record one letter (核对授权书) per household covering both benchmark purposes.
async fn record_letters(
    client: &reqwest::Client,
    base: &str,
    households: Vec<Household>,
    concurrency: usize,
) -> anyhow::Result<Vec<Case>> {
    use futures::StreamExt as _;
    let url = format!("{base}/v1/authorizations");
    let results: Vec<anyhow::Result<Case>> = futures::stream::iter(households)
        .map(|household| {
            let url = url.clone();
            async move {
                let ids: Vec<&str> = household
                    .members
                    .iter()
                    .map(|m| m.resident_id.as_str())
                    .collect();
                let letter = json!({
                    "registered_division": household.registered_division.as_str(),
                    "signed_by": [household.applicant().map(|a| a.resident_id.as_str()).unwrap_or(ids[0])],
                    "members": ids,
                    "purposes": [SINGLE_PURPOSE.code(), FULL_PURPOSE.code()],
                    "valid_until": (time::OffsetDateTime::now_utc().date() + time::Duration::days(180)).to_string(),
                    "letter_sha256": format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
                });
                let (status, body) = post(client, &url, &letter).await?;
                ensure!(status == 201, "authorization letter: HTTP {status}: {body}");
                let authorization_id = body["id"].as_str().context("letter id")?.to_owned();
                Ok(Case {
                    household,
                    authorization_id,
                })
            }
        })
        .buffer_unordered(concurrency.max(4))
        .collect()
        .await;
    results.into_iter().collect()
}

/// One full check with `"force_fresh": true`: true if the hub accepts the field, false if it
/// refuses it as unknown; any other failure is an error.
async fn probe_force_fresh(
    client: &reqwest::Client,
    base: &str,
    case: &Case,
) -> anyhow::Result<bool> {
    let url = format!("{base}/v1/verifications");
    let mut body = json!({
        "household": household_json(&case.household),
        "purpose": FULL_PURPOSE.code(),
        "case_ref": "BENCH-probe-1",
        "urgency": "normal",
        "authorization_id": case.authorization_id,
        "force_fresh": true,
    });
    let (status, report) = post(client, &url, &body).await?;
    if status == 200 {
        check_report(status, &report, Department::ALL.len())?;
        return Ok(true);
    }
    if (400..500).contains(&status) && report.to_string().contains("force_fresh") {
        body.as_object_mut().map(|o| o.remove("force_fresh"));
        body["case_ref"] = json!("BENCH-probe-2");
        let (status, report) = post(client, &url, &body).await?;
        check_report(status, &report, Department::ALL.len())?;
        return Ok(false);
    }
    bail!("verification: HTTP {status}: {report}")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_table(
    args: &Args,
    warmup: Duration,
    households: usize,
    force_fresh: bool,
    a: &Phase,
    b: &Phase,
    c: &Phase,
) {
    println!(
        "\n核对基准 / verification benchmark: {s} s measured per phase after {w:.1} s warm-up, \
         concurrency {cc}, {households} four-member households (seed {seed}), force_fresh {ff}",
        s = args.seconds,
        w = warmup.as_secs_f64(),
        cc = args.concurrency,
        seed = hub::demo::DEMO_SEED,
        ff = if force_fresh { "on" } else { "unsupported" },
    );
    println!(
        "{} CPU cores shared by the load generator, the 7 simulated departments (this process) and the hub (pid separate)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| phase 阶段 | requests 请求数 | req/s 每秒 | p50 ms | p99 ms | hub CPU/request µs 枢纽CPU/请求 | hub CPU/dept query µs 枢纽CPU/部门查询 | bench-process CPU % |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (label, p) in [
        ("(a) labor direct 直连人社 (RemoteConnector)", a),
        (
            "(b) labor via hub 经枢纽仅人社 (annual_review, labor only)",
            b,
        ),
        ("(c) full check 全量核对 (dibao_application, 7 depts)", c),
    ] {
        let hub_cols = if p.name.starts_with("(a)") {
            format!("– (hub idle: {:.0} ms in all)", ms(p.hub_cpu))
        } else {
            format!("{:.0}", p.hub_cpu_per_request_us())
        };
        let dept_col = if p.name.starts_with("(a)") {
            "–".to_owned()
        } else {
            format!("{:.0}", p.hub_cpu_per_department_query_us())
        };
        println!(
            "| {label} | {} | {:.1} | {:.2} | {:.2} | {hub_cols} | {dept_col} | {:.0} |",
            p.count,
            p.per_second(),
            ms(p.p50),
            ms(p.p99),
            p.bench_cpu.as_secs_f64() * 100.0 / p.window.as_secs_f64(),
        );
    }
    let ratio = b.per_second() / a.per_second().max(f64::MIN_POSITIVE);
    println!(
        "\nratio 比值 (b)/(a) throughput 吞吐: {ratio:.2} (owner's target ≥ 0.5: {})",
        if ratio >= 0.5 {
            "met 达标"
        } else {
            "NOT met 未达标"
        }
    );
    println!(
        "latency 时延 (b)/(a): p50 {:.1}x, p99 {:.1}x",
        ms(b.p50) / ms(a.p50).max(f64::MIN_POSITIVE),
        ms(b.p99) / ms(a.p99).max(f64::MIN_POSITIVE)
    );
    println!(
        "full checks 全量核对: {:.1}/s, p50 {:.1} ms, p99 {:.1} ms; hub CPU per department query 每次部门查询枢纽CPU: {:.0} µs (owner's target ≤ 150 µs: {}); hub CPU per labor-only check (b): {:.0} µs",
        c.per_second(),
        ms(c.p50),
        ms(c.p99),
        c.hub_cpu_per_department_query_us(),
        if c.hub_cpu_per_department_query_us() <= 150.0 {
            "met 达标"
        } else {
            "NOT met 未达标"
        },
        b.hub_cpu_per_request_us(),
    );
}

/// P4's floor: the least an mTLS server must do per connection and per request — rustls (ring)
/// with the same certificate, key and client CA as the hub, client certificates required, the same
/// ALPN (h2, http/1.1), hyper's auto (HTTP/1 + HTTP/2) connection builder, `200 ok` for any request.
/// No identity checks, limits, routing, logging or metrics: what the hub adds on top is the ratio.
/// Like the hub: TCP_NODELAY, rustls' default in-memory session cache (no tickets).
mod floor {
    use std::convert::Infallible;
    use std::path::Path;
    use std::sync::Arc;

    use anyhow::Context;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    pub async fn serve(cert: &Path, key: &Path, ca: &Path, port: u16) -> anyhow::Result<()> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .context("floor cert")?
            .collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_file(key).context("floor key")?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).context("floor CA")? {
            roots.add(c?)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build()?;
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        loop {
            let (tcp, _) = listener.accept().await?;
            // As the hub does: no Nagle delay on small answers.
            tcp.set_nodelay(true)?;
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(String::from("ok")))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    }
}

/// The hub's resident set (`VmRSS`, KiB) and thread count (`Threads`) from `/proc/<pid>/status`.
fn rss_and_threads(pid: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

/// The hub's resident set (KiB) and thread count sampled every `every` from `start_after` (the
/// phase's warm-up) until `stop` is set; every `report_every` a line with both is printed (the
/// series of a soak).
fn sample_rss(
    pid: String,
    start_after: Duration,
    every: Duration,
    report_every: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u64, u64)>> {
    tokio::spawn(async move {
        tokio::time::sleep(start_after).await;
        let started = tokio::time::Instant::now();
        let mut next_report = started + report_every;
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            if let Some(sample) = rss_and_threads(&pid) {
                out.push(sample);
                let now = tokio::time::Instant::now();
                if now >= next_report {
                    println!(
                        "(f) +{:>4} s: hub RSS {:.1} MiB, {} threads",
                        (now - started).as_secs(),
                        sample.0 as f64 / 1024.0,
                        sample.1
                    );
                    next_report += report_every;
                }
            }
            tokio::time::sleep(every).await;
        }
        out
    })
}

/// min / median / max of a figure over the runs.
fn spread(values: &[f64]) -> String {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => "–".into(),
        1 => fmt_num(v[0]),
        n => format!(
            "{} / {} / {}",
            fmt_num(v[0]),
            fmt_num(v[n / 2]),
            fmt_num(v[n - 1])
        ),
    }
}

fn fmt_num(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// P4 for one run: the hub against the bare hyper + rustls floor.
fn print_connections(hub_kept: &Phase, floor_kept: &Phase, hub_new: &Phase, floor_new: &Phase) {
    println!(
        "\n| P4 `/healthz` 健康检查 | hub 枢纽 req/s | floor 基线 req/s (bare hyper + rustls) | hub ÷ floor | hub p99 ms | floor p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, h, f) in [
        ("kept-alive connections 长连接", hub_kept, floor_kept),
        (
            "a new mTLS connection per request 每请求新建mTLS连接",
            hub_new,
            floor_new,
        ),
    ] {
        println!(
            "| {label} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
            h.per_second(),
            f.per_second(),
            h.per_second() / f.per_second().max(f64::MIN_POSITIVE),
            ms(h.p99),
            ms(f.p99),
        );
    }
}

/// min / median / max over the runs, against the owner's targets, and P5.
fn print_summary(
    args: &Args,
    runs: &[Run],
    memory: &Phase,
    rss: &[u64],
    threads: u64,
    every: Duration,
) {
    let col = |f: fn(&Run) -> f64| spread(&runs.iter().map(f).collect::<Vec<_>>());
    let verdict = |ok: bool| {
        if ok {
            "met 达标"
        } else {
            "NOT met 未达标"
        }
    };
    let median = |f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!(
        "\n汇总 / summary over {} run(s) (min / median / max; the verdict is on the median)",
        runs.len()
    );
    println!("| figure 指标 | value 数值 | target 目标 | verdict |");
    println!("|---|---:|---:|---|");
    println!(
        "| P1 labor-only check via hub ÷ direct query (throughput) | {} | ≥ 0.5 | {} |",
        col(|r| r.p1),
        verdict(median(|r| r.p1) >= 0.5)
    );
    println!(
        "| P2 hub CPU per department query, full check, µs | {} | ≤ 150 | {} |",
        col(|r| r.p2),
        verdict(median(|r| r.p2) <= 150.0)
    );
    if !args.skip_latency {
        println!(
            "| P2 p99 added latency over the slowest department, full checks at half of the maximum throughput, ms (p50 {}) | {} | ≤ 5 | {} |",
            col(|r| r.added_p50),
            col(|r| r.added_p99),
            verdict(median(|r| r.added_p99) <= 5.0)
        );
    }
    println!(
        "| full checks/s (4 members × 7 departments) | {} | – | – |",
        col(|r| r.full_per_second)
    );
    if !args.skip_p3 {
        println!(
            "| P3 durable access-log appends/s, SQLite, group commit (one a transaction: {}) | {} | ≥ 20,000 | {} |",
            col(|r| r.p3_sqlite_base),
            col(|r| r.p3_sqlite),
            verdict(median(|r| r.p3_sqlite) >= 20_000.0)
        );
        println!(
            "| P3 durable access-log appends/s, PostgreSQL, group commit (one a transaction: {}) | {} | ≥ 10,000 | {} |",
            col(|r| r.p3_pg_base),
            col(|r| r.p3_pg),
            verdict(median(|r| r.p3_pg) >= 10_000.0)
        );
        println!(
            "| P3 `hub audit verify --db` entries/s (SQLite log of {} entries) | {} | ≥ 500,000 | {} |",
            spread(
                &runs
                    .iter()
                    .map(|r| r.p3_verify_size as f64)
                    .collect::<Vec<_>>()
            ),
            col(|r| r.p3_verify),
            verdict(median(|r| r.p3_verify) >= 500_000.0)
        );
    }
    println!(
        "| P4 new mTLS connections/s, hub ÷ floor | {} (hub {} /s, floor {} /s) | ≥ 0.8 | {} |",
        col(|r| r.new),
        col(|r| r.new_hub),
        col(|r| r.new_floor),
        verdict(median(|r| r.new) >= 0.8)
    );
    println!(
        "| P4 kept-alive `/healthz` req/s, hub ÷ floor | {} | ≥ 0.8 | {} |",
        col(|r| r.kept),
        verdict(median(|r| r.kept) >= 0.8)
    );
    let mib = |k: u64| k as f64 / 1024.0;
    let max = rss.iter().copied().max().unwrap_or(0);
    // Flatness: the mean of the first and the last tenth of the samples (at least one minute each
    // in a soak), after the phase's warm-up.
    let body = rss;
    let tenth = (body.len() / 10).max(1).min(body.len().max(1));
    let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len().max(1) as f64 / 1024.0;
    let (first, last) = if body.is_empty() {
        (0.0, 0.0)
    } else {
        (mean(&body[..tenth]), mean(&body[body.len() - tenth..]))
    };
    let growth = (last / first.max(f64::MIN_POSITIVE) - 1.0) * 100.0;
    println!(
        "| P5 hub RSS, {} clients running full checks for {} s ({:.1}/s, 0 failed), max MiB | {:.1} | ≤ 100 | {} |",
        args.memory_clients,
        memory.window.as_secs(),
        memory.per_second(),
        mib(max),
        verdict(mib(max) <= 100.0)
    );
    println!(
        "| P5 RSS first tenth → last tenth of the phase ({} samples, {} ms apart; hub threads at most {threads}), MiB | {first:.1} → {last:.1} ({growth:+.1} %) | growth ≤ 10 % | {} |",
        rss.len(),
        every.as_millis(),
        verdict(growth <= 10.0)
    );
    if args.skip_p3 {
        println!("\nP3 not measured (--skip-p3).");
    }
}

/// A verification request body for `case` (with `force_fresh` when the hub takes it).
fn verification_body(target: &Target, case: &Case, purpose: Purpose, case_ref: String) -> Value {
    let mut body = json!({
        "household": household_json(&case.household),
        "purpose": purpose.code(),
        "case_ref": case_ref,
        "urgency": "normal",
        "authorization_id": case.authorization_id,
    });
    if target.force_fresh {
        body["force_fresh"] = json!(true);
    }
    body
}

/// The hub's `Server-Timing` of a verification: (registration check, slowest department) round
/// trips.
fn server_timing(headers: &reqwest::header::HeaderMap) -> anyhow::Result<(Duration, Duration)> {
    let text = headers
        .get("server-timing")
        .context("no Server-Timing header on the verification's answer")?
        .to_str()?;
    let dur = |name: &str| -> anyhow::Result<Duration> {
        let metric = text
            .split(',')
            .map(str::trim)
            .find(|m| m.split(';').next() == Some(name))
            .with_context(|| format!("Server-Timing without {name}: {text}"))?;
        let ms: f64 = metric
            .split(';')
            .find_map(|p| p.strip_prefix("dur="))
            .with_context(|| format!("Server-Timing {name} without dur: {text}"))?
            .parse()
            .with_context(|| format!("Server-Timing {name}: {text}"))?;
        ensure!(ms.is_finite() && ms >= 0.0, "Server-Timing {name}: {text}");
        Ok(Duration::from_secs_f64(ms / 1e3))
    };
    Ok((dur("registration")?, dur("fanout")?))
}

/// (c2) P2's latency half: full checks at a fixed arrival rate (open loop: request `i` is sent at
/// `start + i / rate` whether or not earlier ones were answered), warm-up then the measured window.
/// Each request's latency is counted from its scheduled time (a late send counts against the hub
/// and the generator, never hidden); the hub's added latency is that latency less the slowest
/// department's round trip the hub reports in `Server-Timing` (`fanout`).
struct OpenLoop {
    /// The offered rate, requests/s.
    rate: f64,
    /// Requests scheduled inside the measured window (all answered: a failure fails the phase).
    count: u64,
    window: Duration,
    /// (p50, p99) of: the caller's latency, the slowest department's round trip, the added latency
    /// (latency − slowest department), and the added latency less the registration check too.
    latency: (Duration, Duration),
    fanout: (Duration, Duration),
    added: (Duration, Duration),
    added_net: (Duration, Duration),
    /// The latest a request left after its scheduled time (the load generator's own lag).
    max_lag: Duration,
    hub_cpu: Duration,
    departments: u64,
}

impl OpenLoop {
    fn print(&self, max_rate: f64) {
        let pair = |p: (Duration, Duration)| format!("{:.2} / {:.2}", ms(p.0), ms(p.1));
        println!(
            "\n(c2) P2 latency 时延: full checks at a fixed rate of {:.1}/s (half of (c)'s {:.1}/s), open loop, {} requests in {} s",
            self.rate,
            max_rate,
            self.count,
            self.window.as_secs()
        );
        println!(
            "| (c2) p50 / p99 ms | caller latency 调用方时延 | slowest department 最慢部门 (Server-Timing fanout) | hub added 枢纽附加 (latency − fanout) | hub added less the registration check 再减户籍核验 |"
        );
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| full check | {} | {} | {} | {} |",
            pair(self.latency),
            pair(self.fanout),
            pair(self.added),
            pair(self.added_net)
        );
        println!(
            "hub CPU per department query 每次部门查询枢纽CPU at this rate: {:.0} µs; the generator's worst send lag: {:.2} ms; \
             p99 added latency {:.2} ms (owner's target ≤ 5 ms: {})",
            self.hub_cpu.as_secs_f64() * 1e6 / (self.count.max(1) * self.departments) as f64,
            ms(self.max_lag),
            ms(self.added.1),
            if ms(self.added.1) <= 5.0 {
                "met 达标"
            } else {
                "NOT met 未达标"
            }
        );
    }
}

async fn open_loop(
    load: &Load,
    client: &reqwest::Client,
    target: &Target,
    purpose: Purpose,
    rate: f64,
    run: usize,
) -> anyhow::Result<OpenLoop> {
    let want = Department::ALL.len();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let window_start = start + load.warmup;
    let window_end = window_start + load.measure;
    let sampler = {
        let (pid, ticks) = (load.hub_pid.clone(), load.ticks);
        tokio::spawn(async move {
            tokio::time::sleep_until(window_start).await;
            let h0 = process_cpu(&pid, ticks)?;
            tokio::time::sleep_until(window_end).await;
            anyhow::Ok(process_cpu(&pid, ticks)?.saturating_sub(h0))
        })
    };
    let url = format!("{}/v1/verifications", target.base);
    let mut tasks = tokio::task::JoinSet::new();
    let mut max_lag = Duration::ZERO;
    for n in 0u64.. {
        let at = start + interval.mul_f64(n as f64);
        if at >= window_end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let lag = tokio::time::Instant::now().saturating_duration_since(at);
        if at >= window_start {
            max_lag = max_lag.max(lag);
        }
        let case = &target.cases[n as usize % target.cases.len()];
        let body = verification_body(
            target,
            case,
            purpose,
            format!("BENCH-{}-{run}-open-{n}", purpose.code()),
        );
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let r = client.post(&url).json(&body).send().await?;
            let status = r.status().as_u16();
            let timing = server_timing(r.headers());
            let text = r.text().await?;
            let latency = tokio::time::Instant::now().saturating_duration_since(at);
            let report = serde_json::from_str(&text).unwrap_or(Value::String(text));
            check_report(status, &report, want).with_context(|| format!("(c2): request {n}"))?;
            let (registration, fanout) = timing?;
            anyhow::Ok((at >= window_start, latency, registration, fanout))
        });
    }
    let mut latency = Vec::new();
    let mut fanout = Vec::new();
    let mut added = Vec::new();
    let mut added_net = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (measured, l, registration, f) = match joined? {
            Ok(t) => t,
            Err(e) => {
                sampler.abort();
                return Err(e);
            }
        };
        if measured {
            latency.push(l);
            fanout.push(f);
            added.push(l.saturating_sub(f));
            added_net.push(l.saturating_sub(f).saturating_sub(registration));
        }
    }
    let hub_cpu = sampler.await??;
    let pair = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        (percentile(v, 50.0), percentile(v, 99.0))
    };
    Ok(OpenLoop {
        rate,
        count: latency.len() as u64,
        window: load.measure,
        latency: pair(&mut latency),
        fanout: pair(&mut fanout),
        added: pair(&mut added),
        added_net: pair(&mut added_net),
        max_lag,
        hub_cpu,
        departments: want as u64,
    })
}
