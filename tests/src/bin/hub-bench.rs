//! `hub-bench`: the verification benchmark (issue 6, item 8), in one run against the demo's seven
//! simulated departments (seed [`hub::demo::DEMO_SEED`], [`hub::demo::DEMO_HOUSEHOLDS`] households):
//!
//! - (a) a single-department query made **directly** to the simulated labor department with
//!   [`connectors::RemoteConnector`] (mTLS, the hub's outbound certificate): a 4-member household,
//!   the fact kinds the benchmark purpose asks of labor;
//! - (b) the **same query through the hub**: `POST /v1/verifications` over mTLS as a caseworker, for
//!   a purpose whose plan asks labor only, citing an authorization letter recorded beforehand;
//! - (c) full cross-checks: 4 members, 7 departments (`dibao_application`).
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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use connectors::sim::AwkwardCase;
use connectors::{Connector, RemoteConfig, RemoteConnector};
use hub::pki::ClientSpec;
use hub_tests::TestEnv;
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
}

fn main() -> anyhow::Result<()> {
    // The hub process of the benchmark: this same binary, re-executed.
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return hub::cli::main();
    }
    let args = Args::parse();
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

/// The hub as a child process; killed (by its pid, through the handle) when dropped.
struct HubProcess {
    child: tokio::process::Child,
    pid: String,
    log: PathBuf,
}

impl HubProcess {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
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
    let port = free_port()?;
    let log_filter = args.hub_log_filter.clone();
    env.config(|text| {
        let text = text.replacen(
            "[server]\nlisten = \"127.0.0.1:0\"",
            &format!("[server]\nlisten = \"127.0.0.1:{port}\""),
            1,
        );
        let text = text.replace(
            "log_filter = \"info\"",
            &format!("log_filter = \"{log_filter}\""),
        );
        format!(
            "{text}\n\n[policies]\ndir = \"bench-policies\"\n\n\
             # Raised so that the limits do not interfere with the benchmark.\n\
             [rate_limits]\ncaseworker = {{ per_second = 1000000, burst = 1000000 }}\n\
             households_per_hour = 1000000000\npeople_per_hour = 1000000000\n"
        )
    })?;

    // The hub as a separate process, logging to a file.
    let log_path = env.path().join("hub.log");
    let log = std::fs::File::create(&log_path)?;
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--config")
        .arg(env.config_path())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting the hub process")?;
    let pid = child.id().context("hub pid")?.to_string();
    let mut hub = HubProcess {
        child,
        pid,
        log: log_path,
    };
    let base = format!("https://localhost:{port}");
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(env.client_config(Some(CASEWORKER))?)
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = hub.child.try_wait()? {
            bail!("hub exited at start-up ({status}):\n{}", hub.log_tail());
        }
        match client.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if Instant::now() > ready_by => {
                bail!("hub not ready after 60 s:\n{}", hub.log_tail())
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

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
    let via_hub = |name: &'static str, purpose: Purpose, want: usize| {
        let cases = cases.clone();
        let client = client.clone();
        let url = format!("{base}/v1/verifications");
        run_phase(&load, name, want as u64, move |n| {
            let cases = cases.clone();
            let client = client.clone();
            let url = url.clone();
            async move {
                let case = &cases[n as usize % cases.len()];
                let mut body = json!({
                    "household": household_json(&case.household),
                    "purpose": purpose.code(),
                    "case_ref": format!("BENCH-{}-{n}", purpose.code()),
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
    };
    let through = via_hub("(b) via hub", SINGLE_PURPOSE, 1).await?;
    let full = via_hub("(c) full check", FULL_PURPOSE, Department::ALL.len()).await?;

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

    print_table(
        &args,
        warmup,
        cases.len(),
        force_fresh,
        &direct,
        &through,
        &full,
    );
    Ok(())
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
        "full checks 全量核对: {:.1}/s, p50 {:.1} ms, p99 {:.1} ms; hub CPU per department query 每次部门查询枢纽CPU: {:.0} µs (owner's target ≤ ~50 µs: {}); hub CPU per labor-only check (b): {:.0} µs",
        c.per_second(),
        ms(c.p50),
        ms(c.p99),
        c.hub_cpu_per_department_query_us(),
        if c.hub_cpu_per_department_query_us() <= 50.0 {
            "met 达标"
        } else {
            "NOT met 未达标"
        },
        b.hub_cpu_per_request_us(),
    );
}
