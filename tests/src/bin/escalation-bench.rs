//! `escalation-bench`: the escalation scan over many open cases on SQLite (issue 11 item 10; a
//! benchmark, not a test).
//!
//! Seeds `--cases` open cases (default 100,000) straight into a fresh SQLite database through the
//! hub's store (its migrations, its tables, the stored deadline columns computed by
//! `hub::cases::escalation::case_due` as a filing or move would), filed over the last `--days`
//! days across the three tiers, some accepted; then times, on the shipped calendar:
//!
//! - the **first scan**, which escalates every stage overdue at seeding time (it reads each due
//!   case's timeline and writes its escalation, its `deadline_missed` notification and its new
//!   check time);
//! - the **steady-state scan** right after (nothing new is due: one indexed query);
//! - `--rounds` further steady-state scans (median reported).
//!
//! Run: `cargo run -p hub-tests --bin escalation-bench -- --cases 100000`.
#![forbid(unsafe_code)]

use std::time::Instant;

use clap::Parser;
use hub::cases::clocks::Timeline;
use hub::cases::escalation;
use hub::store::Db;
use schemas::Urgency;

#[derive(Debug, Parser)]
#[command(
    name = "escalation-bench",
    about = "Escalation scan over many open cases (SQLite)"
)]
struct Args {
    /// Open cases to seed.
    #[arg(long, default_value_t = 100_000)]
    cases: u32,
    /// Filings spread over this many past days.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Steady-state scans measured after the first two.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url =
        secrecy::SecretString::from(format!("sqlite://{}", dir.path().join("hub.db").display()));
    let store = hub::store::connect(&url, 4).await?;
    let Db::Sqlite(pool) = store.db() else {
        anyhow::bail!("expected SQLite");
    };
    let calendar = policies::WorkingCalendar::load_dir(policies::WorkingCalendar::shipped_dir())?;
    let periods = policies::Deadlines::statutory().case;
    let now = time::OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let span_ms = i64::from(args.days) * 86_400_000;

    let t0 = Instant::now();
    let mut tx = pool.begin().await?;
    let mut overdue_at_seed = 0u64;
    for i in 0..args.cases {
        let id = uuid::Uuid::now_v7().to_string();
        // Deterministic spread: filing time, tier, acceptance.
        let filed = now_ms - (i64::from(i) * 7919 % span_ms.max(1));
        let tier = match i % 10 {
            0 => Urgency::Emergency,
            1 | 2 => Urgency::Urgent,
            _ => Urgency::Normal,
        };
        let accepted = (i % 3 != 0).then_some(filed + 600_000);
        // Emergency and urgent cases mostly had their first help.
        let helped = (tier != Urgency::Normal && i % 7 != 0).then_some(filed + 1_800_000);
        let t = Timeline {
            filed_ms: filed,
            accepted_ms: accepted,
            first_help_ms: helped,
            ..Default::default()
        };
        let (cs, _) = escalation::case_due(tier, &t, &calendar, &periods, now);
        // The columns as the last move stored them (computed at its time).
        let last_ms = helped.or(accepted).unwrap_or(filed);
        let at_last =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(last_ms) * 1_000_000)?;
        let (_, due) = escalation::case_due(tier, &t, &calendar, &periods, at_last);
        if cs
            .iter()
            .any(|c| c.status == hub::cases::clocks::ClockStatus::Overdue)
        {
            overdue_at_seed += 1;
        }
        let township = format!("37081100{}", 1 + i % 9);
        let mut events = vec![("open", filed, "received")];
        if let Some(a) = accepted {
            events.push(("accept", a, "accepted"));
        }
        if let Some(h) = helped {
            events.push(("first_help", h, "helped"));
        }
        let state = events.last().map_or("received", |e| e.2);
        sqlx::query(
            "INSERT INTO cases (id, created_ms, updated_ms, filed_by, channel, tier, hardship, state, township, village, applicant, personal, key_id, outcome, version, next_due_ms, next_due_kind, due_provisional, next_check_ms) \
             VALUES ($1, $2, $2, 'bench', 'walk_in', $3, 'illness', $4, $5, NULL, $6, 'sealed', 'k', NULL, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(filed)
        .bind(tier.code())
        .bind(state)
        .bind(&township)
        .bind(format!("p{i}"))
        .bind(events.len() as i64)
        .bind(due.next_due_ms)
        .bind(&due.next_due_kind)
        .bind(i64::from(due.provisional))
        .bind(due.next_check_ms)
        .execute(&mut *tx)
        .await?;
        for (seq, (action, at, to)) in events.iter().enumerate() {
            sqlx::query("INSERT INTO case_events (case_id, seq, at_ms, action, from_state, to_state, actor, township) VALUES ($1, $2, $3, $4, NULL, $5, 'bench', $6)")
                .bind(&id)
                .bind(seq as i64 + 1)
                .bind(at)
                .bind(action)
                .bind(to)
                .bind(&township)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    println!(
        "seeded {} open cases in {:.1} s ({} with an overdue clock)",
        args.cases,
        t0.elapsed().as_secs_f64(),
        overdue_at_seed
    );

    let db = store.db();
    let scan = || async {
        let t = Instant::now();
        let r = escalation::scan(&db, &calendar, &periods, time::OffsetDateTime::now_utc()).await?;
        anyhow::Ok((t.elapsed().as_secs_f64(), r))
    };
    let (first, r) = scan().await?;
    println!(
        "first scan: {:.3} s (checked {}, escalated {}, deadline_near {})",
        first, r.checked, r.escalated, r.near
    );
    let (second, r) = scan().await?;
    println!(
        "steady-state scan: {:.4} s (checked {}, escalated {})",
        second, r.checked, r.escalated
    );
    let mut times = Vec::new();
    for _ in 0..args.rounds {
        times.push(scan().await?.0);
    }
    times.sort_by(f64::total_cmp);
    if let Some(m) = times.get(times.len() / 2) {
        println!("steady-state scan, median of {}: {:.4} s", args.rounds, m);
    }
    let pending = hub::notify::deliver::pending(&db).await?;
    println!("notifications in the outbox: {pending}");
    Ok(())
}
