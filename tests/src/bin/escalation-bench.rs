//! `escalation-bench`: the escalation scan over many open cases on SQLite (issue 11 item 10; a
//! benchmark, not a test).
//!
//! Seeds `--cases` open cases (default 100,000) straight into a fresh SQLite database through the
//! hub's store (its migrations, its tables, the stored deadline columns computed by
//! `hub::cases::escalation::case_due` as a filing or move would), filed over the last `--days`
//! days across the three tiers, some accepted; then times, on the shipped calendar:
//!
//! One referral slip (转办单) per `--slip-every` cases among the accepted ones, issued an hour
//! after acceptance with a 3-day period, so that many of them are past due at seeding time.
//! The seeded database is then copied (`VACUUM INTO`) so that both runs below start from the
//! same rows, and timed on the shipped calendar:
//!
//! - **baseline**: the catch-up scan with one case (or slip) per transaction (`--batch 1`, how
//!   the scan worked before batching);
//! - **batched**: the catch-up scan on the copy with `--batch` rows per transaction (default 500,
//!   the hub's), with the number of transactions and the longest one (how long the write lock
//!   is held at a time);
//! - the **steady-state scan** right after (nothing new is due: two indexed queries), and
//!   `--rounds` more (median reported).
//!
//! Run: `cargo run --locked -p hub-tests --bin escalation-bench -- --cases 100000`.
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
    /// One referral slip per this many cases (accepted ones only; 0: none).
    #[arg(long, default_value_t = 10)]
    slip_every: u32,
    /// Rows per transaction of the batched scan.
    #[arg(long, default_value_t = escalation::BATCH)]
    batch: usize,
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
    let (mut slips, mut slips_overdue) = (0u64, 0u64);
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
        if let Some(a) = accepted
            && args.slip_every > 0
            && i % args.slip_every == 1
        {
            let issued = a + 3_600_000;
            let due = issued + 3 * 86_400_000;
            sqlx::query(
                "INSERT INTO slips (id, case_id, kind, to_department, to_township, region, applicant, state, issued_ms, issued_by, due_ms, due_provisional, personal, key_id, version, next_check_ms) \
                 VALUES ($1, $2, 'employment', 'labor', NULL, $3, $4, 'issued', $5, 'bench', $6, 0, 'sealed', 'k', 1, $7)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(&id)
            .bind(&township)
            .bind(format!("p{i}"))
            .bind(issued)
            .bind(due)
            .bind(hub::cases::slips_store::near_ms(issued, due))
            .execute(&mut *tx)
            .await?;
            slips += 1;
            if due < now_ms {
                slips_overdue += 1;
            }
        }
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
        "seeded {} open cases and {slips} slips in {:.1} s ({} cases with an overdue clock, {slips_overdue} slips past due)",
        args.cases,
        t0.elapsed().as_secs_f64(),
        overdue_at_seed
    );
    let copy = dir.path().join("copy.db");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "VACUUM INTO '{}'",
        copy.display()
    )))
    .execute(&pool)
    .await?;
    let copy_store = hub::store::connect(
        &secrecy::SecretString::from(format!("sqlite://{}", copy.display())),
        4,
    )
    .await?;

    let catch_up = |db: Db, batch: usize| {
        let (calendar, periods) = (&calendar, &periods);
        async move {
            let opts = escalation::ScanOptions { batch, lease: None };
            let t = Instant::now();
            let r = escalation::scan_with(&db, calendar, periods, now, &opts).await?;
            anyhow::Ok((t.elapsed().as_secs_f64(), r))
        }
    };
    let show = |label: &str, secs: f64, r: &escalation::ScanReport| {
        println!(
            "{label}: {secs:.3} s in {} transactions, longest {:.1} ms (checked {} cases + {} slips, escalated {} of which {} slips, deadline_near {})",
            r.batches,
            r.longest_batch_us as f64 / 1000.0,
            r.checked,
            r.slips_checked,
            r.escalated,
            r.slips_escalated,
            r.near
        );
    };
    let (base, rb) = catch_up(store.db(), 1).await?;
    show("catch-up, baseline (1 row per transaction)", base, &rb);
    let (batched, r) = catch_up(copy_store.db(), args.batch).await?;
    show(
        &format!("catch-up, batched ({} rows per transaction)", args.batch),
        batched,
        &r,
    );
    anyhow::ensure!(
        (rb.checked, rb.escalated, rb.near) == (r.checked, r.escalated, r.near),
        "the two runs did different work"
    );
    println!(
        "catch-up batched / baseline: {:.3} (time), {:.4} (longest transaction)",
        batched / base,
        r.longest_batch_us as f64 / rb.longest_batch_us.max(1) as f64
    );

    let db = copy_store.db();
    let scan = || async {
        let t = Instant::now();
        let r = escalation::scan(&db, &calendar, &periods, time::OffsetDateTime::now_utc()).await?;
        anyhow::Ok((t.elapsed().as_secs_f64(), r))
    };
    let (second, r) = scan().await?;
    println!(
        "steady-state scan: {:.4} s (checked {} cases + {} slips, escalated {})",
        second, r.checked, r.slips_checked, r.escalated
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
