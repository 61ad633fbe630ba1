//! `replica-bench`: checks per second with 1, 2 and 3 `hub serve` replicas on one PostgreSQL
//! database, in one run (issue 15, item 3). Ratios against one replica measured in the same run are
//! what counts; the absolute figures depend on the machine (the load generator, the seven simulated
//! departments and every replica share its cores).
//!
//! Three hub processes (this binary re-executed as `replica-bench serve --config F`, which is
//! `hub::cli::main`; each named by `HUB_REPLICA_ID`) run on a fresh PostgreSQL database
//! (`HUB_TEST_PG_URL`). For k = 1, 2, 3 the load is spread round-robin over the first k replicas:
//! - **checks**: full cross-checks (`POST /v1/verifications`, `dibao_application`, seven
//!   departments, `force_fresh`), as a city-level caseworker with the caps raised;
//! - **log appends**: auditors' searches (`POST /v1/log/search`), each one access-log entry and
//!   nothing else: the shared sequencer (every replica's batches serialized on the head row) is all
//!   they measure.
//!
//! Every request must succeed (200; a check's seven departments answered); a failure ends the run
//! with an error. Run:
//! `cargo run --release -p hub-tests --bin replica-bench -- --seconds 10 --concurrency 12`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use connectors::sim::AwkwardCase;
use hub::pki::ClientSpec;
use hub_tests::{PgTestDb, TestEnv};
use schemas::{Department, Household, Purpose, Role};
use serde_json::{Value, json};

const CASEWORKER: &str = "bench-officer";
const REPLICAS: usize = 3;

#[derive(Debug, Parser)]
#[command(
    name = "replica-bench",
    about = "Checks and log appends per second with 1, 2 and 3 hub replicas on one PostgreSQL database"
)]
struct Args {
    /// Measured seconds per phase (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests in flight at once, spread over the replicas (closed loop).
    #[arg(long, default_value_t = 12)]
    concurrency: usize,
    /// Warm-up seconds per phase (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// The replicas' log filter (`info` logs every request, as deployed).
    #[arg(long, default_value = "info")]
    hub_log_filter: String,
    /// `[log] sequencer_timeout_ms` of the replicas: the bound the hand-over trials measure.
    #[arg(long, default_value_t = 2000)]
    sequencer_timeout_ms: u64,
    /// Hand-over trials with a replica frozen (SIGSTOP), and with one killed (SIGKILL).
    #[arg(long, default_value_t = 3)]
    trials: usize,
}

fn main() -> anyhow::Result<()> {
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
        .block_on(async {
            let pg = PgTestDb::create().await?;
            let r = run(&args, &pg.url).await;
            pg.drop_db().await?;
            r
        })
}

/// A replica process, killed when dropped.
struct Replica {
    child: tokio::process::Child,
    log: PathBuf,
    base: String,
}

impl Replica {
    async fn start(env: &TestEnv, n: usize) -> anyhow::Result<Replica> {
        let log = env.path().join(format!("replica-{n}.log"));
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--config")
            .arg(env.config_path())
            .env("HUB_REPLICA_ID", format!("bench-{n}"))
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting a replica")?;
        let mut r = Replica {
            child,
            log,
            base: String::new(),
        };
        let by = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = r.child.try_wait()? {
                bail!("replica {n} exited at start-up ({status}):\n{}", r.tail());
            }
            let text = std::fs::read_to_string(&r.log).unwrap_or_default();
            let addr = text.lines().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["fields"]["message"] == "hub listening (mTLS)")
                    .then(|| v["fields"]["addr"].as_str().map(str::to_owned))?
            });
            if let Some(a) = addr {
                let port = a.rsplit(':').next().unwrap_or_default();
                r.base = format!("https://localhost:{port}");
                return Ok(r);
            }
            ensure!(Instant::now() < by, "replica {n} not listening after 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let r = client.post(url).json(body).send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
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

struct Case {
    household: Household,
    authorization_id: String,
}

/// Closed-loop `concurrency` workers running `op(n)`: requests completing inside the window after
/// `warmup` are counted. The first failure ends the phase with an error. Returns requests/s.
async fn phase<F, Fut>(
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
    op: F,
) -> anyhow::Result<f64>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let seq = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (from, to) = (start + warmup, start + warmup + measure);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (op, seq) = (op.clone(), seq.clone());
        workers.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < to {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                op(n).await.with_context(|| format!("request {n}"))?;
                let t = Instant::now();
                if t >= from && t <= to {
                    done += 1;
                }
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await??;
    }
    Ok(total as f64 / measure.as_secs_f64())
}

async fn run(args: &Args, pg_url: &str) -> anyhow::Result<()> {
    let measure = Duration::from_secs(args.seconds);
    let warmup = Duration::from_secs_f64(args.warmup);
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
    let filter = args.hub_log_filter.clone();
    let timeout = args.sequencer_timeout_ms;
    let url = pg_url.to_owned();
    env.config(|t| {
        let t = t.replace("sqlite://hub.db", &url).replace(
            "log_filter = \"info\"",
            &format!("log_filter = \"{filter}\""),
        );
        format!(
            "{t}\n\n[log]\nsequencer_timeout_ms = {timeout}\n\n# Raised so that the limits do not interfere with the benchmark.\n\
             [rate_limits]\ncaseworker = {{ per_second = 1000000, burst = 1000000 }}\n\
             auditor = {{ per_second = 1000000, burst = 1000000 }}\n\
             households_per_hour = 1000000000\npeople_per_hour = 1000000000\n"
        )
    })?;
    let mut replicas = Vec::new();
    for n in 0..REPLICAS {
        replicas.push(Replica::start(&env, n).await?);
    }
    let mut bases: Arc<Vec<String>> = Arc::new(replicas.iter().map(|r| r.base.clone()).collect());
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(env.client_config(Some(CASEWORKER))?)
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    let auditor = reqwest::Client::builder()
        .tls_backend_preconfigured(env.client_config(Some("auditor"))?)
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(60))
        .build()?;

    // 4-member households the hub places (as hub-bench), each with a letter.
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
    let mut cases = Vec::new();
    for (i, household) in households.into_iter().enumerate() {
        let ids: Vec<&str> = household
            .members
            .iter()
            .map(|m| m.resident_id.as_str())
            .collect();
        let letter = json!({
            "registered_division": household.registered_division.as_str(),
            "signed_by": [household.applicant().map(|a| a.resident_id.as_str()).unwrap_or(ids[0])],
            "members": ids,
            "purposes": [Purpose::DibaoApplication.code()],
            "valid_until": (time::OffsetDateTime::now_utc().date() + time::Duration::days(180)).to_string(),
            "letter_sha256": format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
        });
        let base = &bases[i % REPLICAS];
        let (status, body) = post(&client, &format!("{base}/v1/authorizations"), &letter).await?;
        ensure!(status == 201, "authorization letter: HTTP {status}: {body}");
        cases.push(Case {
            household,
            authorization_id: body["id"].as_str().context("letter id")?.to_owned(),
        });
    }
    let cases = Arc::new(cases);
    println!(
        "setup: {REPLICAS} replicas on PostgreSQL, {} four-member households with letters; \
         {} s measured per phase after {:.1} s warm-up, concurrency {}; {} CPU cores shared by the \
         replicas, PostgreSQL, the 7 simulated departments and the load generator",
        cases.len(),
        args.seconds,
        args.warmup,
        args.concurrency,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut rows = Vec::new();
    for k in 1..=REPLICAS {
        let checks = {
            let (client, bases, cases) = (client.clone(), bases.clone(), cases.clone());
            phase(args.concurrency, warmup, measure, move |n| {
                let (client, bases, cases) = (client.clone(), bases.clone(), cases.clone());
                async move {
                    let case = &cases[n as usize % cases.len()];
                    let base = &bases[n as usize % k];
                    let body = json!({
                        "household": household_json(&case.household),
                        "purpose": Purpose::DibaoApplication.code(),
                        "case_ref": format!("BENCH-R{k}-{n}"),
                        "urgency": "normal",
                        "authorization_id": case.authorization_id,
                        "force_fresh": true,
                    });
                    let (status, report) =
                        post(&client, &format!("{base}/v1/verifications"), &body).await?;
                    ensure!(status == 200, "verification: HTTP {status}: {report}");
                    let answered = report["departments"].as_array().map_or(0, |d| {
                        d.iter().filter(|d| d["status"] == "answered").count()
                    });
                    ensure!(
                        answered == Department::ALL.len(),
                        "{answered} departments answered: {report}"
                    );
                    Ok(())
                }
            })
            .await?
        };
        let appends = {
            let (auditor, bases) = (auditor.clone(), bases.clone());
            phase(args.concurrency, warmup, measure, move |n| {
                let (auditor, bases) = (auditor.clone(), bases.clone());
                async move {
                    let base = &bases[n as usize % k];
                    let (status, v) = post(
                        &auditor,
                        &format!("{base}/v1/log/search"),
                        &json!({"case_ref": format!("BENCH-none-{n}"), "limit": 1}),
                    )
                    .await?;
                    ensure!(
                        status == 200 && v["logged_as"].is_u64(),
                        "log search: HTTP {status}: {v}"
                    );
                    Ok(())
                }
            })
            .await?
        };
        println!("{k} replica(s): {checks:.1} checks/s, {appends:.1} log appends/s");
        rows.push((k, checks, appends));
    }
    for r in &mut replicas {
        if let Some(status) = r.child.try_wait()? {
            bail!(
                "a replica exited during the benchmark ({status}):\n{}",
                r.tail()
            );
        }
    }

    // Hand-over: log appends on all three; replica 2 is frozen (SIGSTOP: it may hold the head
    // lock, as a hung replica would) or killed (SIGKILL) mid-load; the longest pause between two
    // acknowledgements on replicas 0 and 1 is what the others' callers wait.
    let mut handover = Vec::new();
    for (signal, name) in [("-STOP", "frozen (SIGSTOP)"), ("-KILL", "killed (SIGKILL)")] {
        for trial in 0..args.trials {
            let pid = replicas[2].child.id().context("replica 2 pid")?;
            let pause = stall(&auditor, bases.clone(), pid, signal, args).await?;
            println!(
                "hand-over, replica 2 {name}, trial {}: longest pause on the others {} ms",
                trial + 1,
                pause.as_millis()
            );
            handover.push((name, pause));
            if signal == "-STOP" {
                std::process::Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status()?;
            } else {
                let _ = replicas[2].child.wait().await;
                replicas[2] = Replica::start(&env, 2).await?;
                let mut b = (*bases).clone();
                b[2] = replicas[2].base.clone();
                bases = Arc::new(b);
            }
        }
    }
    for r in &mut replicas {
        if let Some(status) = r.child.try_wait()? {
            bail!(
                "a replica exited during the benchmark ({status}):\n{}",
                r.tail()
            );
        }
    }
    let (_, c1, a1) = rows[0];
    println!(
        "\n| replicas 副本数 | checks/s 核对每秒 | ratio vs 1 | log appends/s 日志追加每秒 | ratio vs 1 |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for (k, c, a) in &rows {
        println!(
            "| {k} | {c:.1} | {:.2} | {a:.1} | {:.2} |",
            c / c1.max(f64::MIN_POSITIVE),
            a / a1.max(f64::MIN_POSITIVE)
        );
    }
    for name in ["frozen (SIGSTOP)", "killed (SIGKILL)"] {
        let worst = handover
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, d)| *d)
            .max()
            .unwrap_or_default();
        println!(
            "hand-over, replica {name}: longest pause of the other replicas' appends over {} trials: \
             {} ms (sequencer_timeout_ms = {})",
            args.trials,
            worst.as_millis(),
            args.sequencer_timeout_ms
        );
    }
    drop(replicas);
    for (_, h) in deps.handles {
        h.shutdown().await;
    }
    Ok(())
}

/// One hand-over trial: two appending workers per replica; after 1 s `signal` goes to `pid`
/// (replica 2); the run goes on for the sequencer timeout + 3 s. Returns the longest pause between
/// two acknowledgements of replicas 0 and 1 from 0.5 s before the signal. Replica 2's failures are
/// expected and ignored; a failure on the others ends the benchmark with an error.
async fn stall(
    auditor: &reqwest::Client,
    bases: Arc<Vec<String>>,
    pid: u32,
    signal: &str,
    args: &Args,
) -> anyhow::Result<Duration> {
    let acks = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for n in 0..REPLICAS {
        for _ in 0..2 {
            let (auditor, bases, acks, stop) =
                (auditor.clone(), bases.clone(), acks.clone(), stop.clone());
            workers.push(tokio::spawn(async move {
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let url = format!("{}/v1/log/search", bases[n]);
                    let body = json!({"case_ref": format!("BENCH-handover-{n}-{k}"), "limit": 1});
                    let call = post(&auditor, &url, &body);
                    let r = tokio::time::timeout(Duration::from_secs(2), call).await;
                    match r {
                        Ok(Ok((200, _))) if n != 2 => acks.lock().unwrap().push(Instant::now()),
                        _ if n == 2 => {
                            if !matches!(r, Ok(Ok((200, _)))) {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                        Ok(Ok((status, v))) => bail!("replica {n}: HTTP {status}: {v}"),
                        Ok(Err(e)) => bail!("replica {n}: {e}"),
                        Err(_) => {} // a request waiting longer than 2 s: the pause shows it
                    }
                }
                anyhow::Ok(())
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at = Instant::now();
    std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    tokio::time::sleep(Duration::from_millis(args.sequencer_timeout_ms) + Duration::from_secs(3))
        .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await??;
    }
    let from = at - Duration::from_millis(500);
    let mut times: Vec<Instant> = acks
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|t| *t >= from)
        .collect();
    times.sort_unstable();
    let mut longest = times
        .first()
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(from));
    for w in times.windows(2) {
        longest = longest.max(w[1] - w[0]);
    }
    Ok(longest)
}
