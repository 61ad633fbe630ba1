//! `console-bench`: console pages per second and their latency with many caseworkers at once and
//! a large store (issue 13 item 10; a benchmark, not a test).
//!
//! The hub is a separate process (this binary re-executed as `console-bench serve --config F`) on
//! SQLite (WAL, `synchronous=FULL`), with the seven simulated departments in this process. First
//! `--cases` open cases are filed through the API by the 12345 hotline (each: resident ID checked,
//! registration asked of civil affairs, personal fields sealed, access-log entry) and every third
//! is accepted by the township. Then `--users` concurrent browsers (one mTLS connection each,
//! kept alive, as a browser keeps it) ask, in turn:
//! - **baseline**: `GET /healthz`: what TLS, HTTP and the runtime allow without any page work;
//! - **queue**: `GET /console/` (我的待办, ordered by deadline: the store lists the nearest open
//!   deadlines first, Cedar decides each case, its clocks are computed from its timeline);
//! - **case page**: `GET /console/cases/{id}` of a random seeded case (Cedar, the applicant's sealed
//!   fields opened, the timeline and clocks, and one durable access-log entry per view).
//!
//! Every answer must be 200. Reported: pages/s, p50 / p99 / max latency, and the ratio of each
//! page rate to the baseline measured in the same run.
//!
//! Run: `cargo build --workspace --locked --bin console-bench && target/debug/console-bench`
//! (debug build; add `--release` for release figures).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use clap::Parser;
use hub_tests::TestEnv;
use hub_tests::bench::{BenchHub, drive};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "console-bench",
    about = "Console pages per second and latency (vs. GET /healthz on the same connections)"
)]
struct Args {
    /// Open cases in the store before the pages are asked for.
    #[arg(long, default_value_t = 10_000)]
    cases: usize,
    /// Filings in flight while seeding.
    #[arg(long, default_value_t = 8)]
    seed_concurrency: usize,
    /// Concurrent users (browsers), one connection each.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Requests of each measured phase.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
}

const XUZHUANG: &str = "370811002";

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return hub::cli::main();
    }
    let args = Args::parse();
    ensure!(
        args.cases > 0 && args.seed_concurrency > 0 && args.users > 0 && args.requests > 0,
        "--cases, --seed-concurrency, --users and --requests must be > 0"
    );
    hub::tls::install_default_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// The `q`-quantile (0..=1) of sorted latencies, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

struct Phase {
    name: &'static str,
    rate: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

fn phase(name: &'static str, n: usize, (secs, mut times): (f64, Vec<Duration>)) -> Phase {
    times.sort();
    Phase {
        name,
        rate: n as f64 / secs,
        p50: quantile_ms(&times, 0.5),
        p99: quantile_ms(&times, 0.99),
        max: quantile_ms(&times, 1.0),
    }
}

/// GET `url` and require 200 (and, for a page, a whole HTML document).
async fn get_ok(c: &reqwest::Client, url: &str, html: bool) -> anyhow::Result<()> {
    let r = c.get(url).send().await?;
    let status = r.status();
    let body = r.text().await?;
    ensure!(status.is_success(), "GET {url}: {status} {body}");
    if html {
        ensure!(body.contains("</html>"), "GET {url}: not a whole page");
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let deps = env.start_departments().await?;
    let client = |who: &str, pool: usize| -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .tls_backend_preconfigured(env.client_config(Some(who))?)
            .pool_max_idle_per_host(pool)
            .timeout(Duration::from_secs(600))
            .build()?)
    };
    let caseworker = client("caseworker", args.seed_concurrency * 2)?;
    let intake = client("intake", args.seed_concurrency * 2)?;
    // The users share the bench's one caseworker certificate: let each have its connection.
    let users_cap = args.users * 2 + 16;
    let BenchHub {
        mut child, base, ..
    } = BenchHub::start(
        &env,
        |text| {
            text.lines()
                .map(|l| {
                    if l.starts_with("max_connections_per_identity") {
                        format!("max_connections_per_identity = {users_cap}\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect()
        },
        &caseworker,
    )
    .await?;

    // Seed: open cases filed by the hotline about households registered in 许庄.
    let applicants: Vec<(String, String)> = deps
        .population
        .households()
        .iter()
        .filter(|h| h.township_code().as_str() == XUZHUANG)
        .map(|h| deps.population.household_declaration(h.id))
        .filter_map(|h| {
            let a = h.applicant().or(h.members.first())?;
            Some((a.resident_id.as_str().to_owned(), a.name.clone()))
        })
        .collect();
    ensure!(!applicants.is_empty(), "no household registered in 许庄");
    let applicants = Arc::new(applicants);
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(args.cases)));
    let (cw, ik, b, seeded) = (
        caseworker.clone(),
        intake.clone(),
        base.clone(),
        ids.clone(),
    );
    let (seed_s, _) = drive(args.cases, args.seed_concurrency, move |_, i| {
        let (cw, ik, b, applicants, seeded) = (
            cw.clone(),
            ik.clone(),
            b.clone(),
            applicants.clone(),
            seeded.clone(),
        );
        async move {
            let (rid, name) = &applicants[i % applicants.len()];
            let tier = ["emergency", "urgent", "normal", "normal"][i % 4];
            let filing = json!({
                "channel": "hotline_12345",
                "tier": tier,
                "applicant": { "resident_id": rid, "name": name, "phone": "13905370001" },
                "township": XUZHUANG,
                "hardship": "illness",
                "description": "户主突发重病住院，家中无其他收入来源",
            });
            let r = ik
                .post(format!("{b}/v1/cases"))
                .json(&filing)
                .send()
                .await?;
            let status = r.status().as_u16();
            let v: Value = r.json().await?;
            ensure!(status == 201, "filing {i}: {status} {v}");
            let id = v["id"].as_str().context("case id")?.to_owned();
            if i % 3 == 0 {
                let r = cw
                    .post(format!("{b}/v1/cases/{id}/accept"))
                    .json(&json!({}))
                    .send()
                    .await?;
                ensure!(r.status() == 200, "accept {i}: {}", r.status());
            }
            seeded
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push(id);
            Ok(())
        }
    })
    .await?;
    let ids: Arc<Vec<String>> =
        Arc::new(ids.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone());
    println!(
        "console-bench: seeded {} open cases in {seed_s:.1} s ({:.0} filings/s); {} users, {} requests a phase; hub on SQLite, debug build unless run with --release",
        ids.len(),
        ids.len() as f64 / seed_s,
        args.users,
        args.requests
    );

    // One client (one kept-alive connection, HTTP/2 by ALPN as a browser negotiates it) per user;
    // each is warmed once, since the TLS handshakes are not what is measured.
    let users: Arc<Vec<reqwest::Client>> = Arc::new(
        (0..args.users)
            .map(|_| client("caseworker", 1))
            .collect::<anyhow::Result<_>>()?,
    );
    let (u, url) = (users.clone(), format!("{base}/healthz"));
    drive(args.users, args.users, move |w, _| {
        let (u, url) = (u.clone(), url.clone());
        async move { get_ok(&u[w], &url, false).await }
    })
    .await?;

    let mut phases = Vec::new();
    let (u, url) = (users.clone(), format!("{base}/healthz"));
    let timed = drive(args.requests, args.users, move |w, _| {
        let (u, url) = (u.clone(), url.clone());
        async move { get_ok(&u[w], &url, false).await }
    })
    .await?;
    phases.push(phase("baseline GET /healthz", args.requests, timed));

    let (u, url) = (users.clone(), format!("{base}/console/"));
    let timed = drive(args.requests, args.users, move |w, _| {
        let (u, url) = (u.clone(), url.clone());
        async move { get_ok(&u[w], &url, true).await }
    })
    .await?;
    phases.push(phase("queue GET /console/", args.requests, timed));

    let (u, b, all) = (users.clone(), base.clone(), ids.clone());
    let timed = drive(args.requests, args.users, move |w, i| {
        let (u, b, all) = (u.clone(), b.clone(), all.clone());
        async move {
            // A spread over the whole store, deterministic per request.
            let id = &all[(i * 7919) % all.len()];
            get_ok(&u[w], &format!("{b}/console/cases/{id}"), true).await
        }
    })
    .await?;
    phases.push(phase(
        "case page GET /console/cases/{id}",
        args.requests,
        timed,
    ));

    let baseline = phases[0].rate;
    println!(
        "  {:<36} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "phase", "req/s", "p50 ms", "p99 ms", "max ms", "× base"
    );
    for p in &phases {
        println!(
            "  {:<36} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.3}",
            p.name,
            p.rate,
            p.p50,
            p.p99,
            p.max,
            p.rate / baseline
        );
    }
    let _ = child.kill().await;
    for (_, h) in deps.handles {
        h.shutdown().await;
    }
    Ok(())
}
