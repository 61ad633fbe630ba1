//! `case-bench`: case operations per second over real mTLS against a hub on SQLite (issue 11
//! item 10; a benchmark, not a test).
//!
//! - **baseline**: `GET /healthz` on the same kind of mTLS connections (pooled, reused), with the
//!   same concurrency: what the TLS stack, HTTP and the runtime allow without any case work;
//! - **cases**: `--cases` urgent cases, each run through the whole loop by one worker: filed by
//!   the 12345 hotline (`POST /v1/cases`: resident ID checked, registration asked of the simulated
//!   civil-affairs department, personal fields sealed, access-log entry, row and idempotency),
//!   then accepted, first help, investigation, decision and closure by the township caseworker
//!   (each move: Cedar, access-log entry durable first, the move, its clock columns and its
//!   outbox notifications in one transaction). Six operations a case; every answer must be 2xx.
//!
//! The hub is a separate process (this binary re-executed as `case-bench serve --config F`) on
//! SQLite (WAL, `synchronous=FULL`), with the seven simulated departments in this process.
//!
//! Run: `cargo build --workspace --locked --bin case-bench && target/debug/case-bench --cases 200`
//! (debug build; add `--release` on a machine of your own for release figures).
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
    name = "case-bench",
    about = "Case operations per second over mTLS (vs. GET /healthz on the same connections)"
)]
struct Args {
    /// Cases run from filing to closure.
    #[arg(long, default_value_t = 200)]
    cases: usize,
    /// Requests (cases) in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// `GET /healthz` requests of the baseline.
    #[arg(long, default_value_t = 2000)]
    baseline: usize,
}

const XUZHUANG: &str = "370811002";

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        return hub::cli::main();
    }
    let args = Args::parse();
    ensure!(
        args.cases > 0 && args.concurrency > 0 && args.baseline > 0,
        "--cases, --concurrency and --baseline must be > 0"
    );
    hub::tls::install_default_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

fn an_hour_ago() -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The moves after filing, with their bodies (as a township caseworker sends them).
fn moves() -> Vec<(&'static str, Value)> {
    vec![
        ("accept", json!({})),
        (
            "first-help",
            json!({ "kind": "cash", "amount_fen": 50_000, "given_at": an_hour_ago(), "given_by": "许庄街道救助站" }),
        ),
        (
            "investigation",
            json!({
                "home_visit": { "visited_at": an_hour_ago(), "visited_by": ["许庄街道经办人", "村协理员"], "findings": "家中无劳动力，医疗支出大" },
                "initial_opinion": { "recommendation": "approve", "assistance_type": "temporary_assistance", "text": "建议给予临时救助" },
            }),
        ),
        (
            "decision",
            json!({ "decision": "approved", "assistance_type": "temporary_assistance", "amount_fen": 300_000 }),
        ),
        ("close", json!({})),
    ]
}

async fn run(args: Args) -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let deps = env.start_departments().await?;
    let client = |who: &str| -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .tls_backend_preconfigured(env.client_config(Some(who))?)
            .pool_max_idle_per_host(args.concurrency * 2)
            .timeout(Duration::from_secs(600))
            .build()?)
    };
    let caseworker = client("caseworker")?;
    let intake = client("intake")?;
    let BenchHub {
        mut child, base, ..
    } = BenchHub::start(&env, |text| text, &caseworker).await?;

    // Baseline first, in the same run, on the same client (connections reused).
    let (c, url) = (caseworker.clone(), format!("{base}/healthz"));
    let healthz_s = drive(args.baseline, args.concurrency, move |_, i| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let r = c.get(&url).send().await?;
            ensure!(r.status().is_success(), "healthz {i}: {}", r.status());
            r.bytes().await?;
            Ok(())
        }
    })
    .await?
    .0;
    let healthz_rate = args.baseline as f64 / healthz_s;

    // The applicants: the simulated population's households registered in 许庄.
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
    let (cw, ik, b) = (caseworker.clone(), intake.clone(), base.clone());
    let cases_s = drive(args.cases, args.concurrency, move |_, i| {
        let (cw, ik, b, applicants) = (cw.clone(), ik.clone(), b.clone(), applicants.clone());
        async move {
            let (rid, name) = &applicants[i % applicants.len()];
            let filing = json!({
                "channel": "hotline_12345",
                "tier": "urgent",
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
            for (step, body) in moves() {
                let r = cw
                    .post(format!("{b}/v1/cases/{id}/{step}"))
                    .json(&body)
                    .send()
                    .await?;
                let status = r.status().as_u16();
                let v: Value = r.json().await?;
                ensure!(status == 200, "{step} {i}: {status} {v}");
            }
            Ok(())
        }
    })
    .await?
    .0;
    let ops = args.cases * 6;
    let ops_rate = ops as f64 / cases_s;

    println!(
        "case-bench ({} cases, concurrency {}; hub on SQLite, debug build unless run with --release)",
        args.cases, args.concurrency
    );
    println!("  baseline GET /healthz (mTLS) {healthz_rate:>9.0} requests/s");
    println!(
        "  case operations             {ops_rate:>9.1} operations/s  ({:.1}% of baseline; {} operations in {cases_s:.1} s)",
        100.0 * ops_rate / healthz_rate,
        ops
    );
    println!(
        "  whole cases (file → accept → first help → investigate → decide → close) {:.2} cases/s",
        args.cases as f64 / cases_s
    );
    let _ = child.kill().await;
    for (_, h) in deps.handles {
        h.shutdown().await;
    }
    Ok(())
}
