//! Several `hub serve` processes on one PostgreSQL database (issue 15, items 1 and 3): three real
//! processes, each named by `HUB_REPLICA_ID` alone (no `[log] replica_id`), take log-appending
//! requests at once (auditors' searches, each answered with its entry's index); one is killed with
//! SIGKILL mid-load and restarted. Afterwards:
//! - every acknowledged entry is at its acknowledged index, with its request id;
//! - the log verifies end to end (`hub audit verify`, over mTLS and offline from the database) and
//!   with the Go reference implementation (golang.org/x/mod/sumdb);
//! - no fork: every checkpoint any replica served during the run is a prefix of the final tree;
//! - receipts asked of another replica than the one that appended the entry are served (a replica
//!   re-reads the head another replica moved), and verify;
//! - the distinct-household cap, counted in PostgreSQL, holds across replicas for requests sent to
//!   all three at once.
//!
//! The longest pause between two acknowledgements around the kill is printed (measured, not
//! asserted: timings belong to benchmarks).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub::audit::Verdict;
use hub::log::tlog;
use hub_tests::{PgTestDb, TestEnv};
use serde_json::{Value, json};
use tlog::checkpoint::WitnessPolicy;
use tlog::tile::tile_at_size;

use crate::access_log::{get_bytes, go_checks, remote, residents, verify_args};
use crate::process::HubProcess;
use crate::trawling::plain_households;
use crate::verification::{letter, verification};

const REPLICAS: usize = 3;

#[derive(Debug, Clone)]
struct Ack {
    replica: usize,
    request_id: String,
    index: u64,
    at: Instant,
}

/// What the load tasks saw.
#[derive(Default)]
struct Seen {
    acks: Mutex<Vec<Ack>>,
    /// (index, receipt text) served by a replica other than the one that appended the entry.
    receipts: Mutex<Vec<(u64, String)>>,
    /// Receipts refused by a live replica (status and body).
    receipt_failures: Mutex<Vec<String>>,
    /// Searches a live replica answered with anything but success (no replica may refuse an
    /// append for not being "the sequencer").
    refusals: Mutex<Vec<String>>,
    /// Every checkpoint note a replica served.
    checkpoints: Mutex<Vec<String>>,
}

fn start_replica(env: &TestEnv, n: usize, run: usize) -> anyhow::Result<HubProcess> {
    let id = format!("replica-{n}");
    HubProcess::start_with_env(
        &env.config_path(),
        &env.path().join(format!("{id}-{run}.log")),
        &[("HUB_REPLICA_ID", id.as_str())],
    )
}

fn base_of(p: &HubProcess) -> anyhow::Result<String> {
    Ok(format!("https://localhost:{}", p.addr()?.port()))
}

/// One load task on replica `n`: auditors' searches until `stop` or until the replica's connection
/// fails (it was killed). Every eighth acknowledged entry's receipt is asked of the next replica.
fn load(
    env: &TestEnv,
    n: usize,
    bases: Arc<Mutex<Vec<String>>>,
    who: String,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let client = env.http("auditor")?;
    let base = bases.lock().unwrap()[n].clone();
    Ok(tokio::spawn(async move {
        let mut k = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let Ok(r) = client
                .post(format!("{base}/v1/log/search"))
                .json(&json!({"resident_id": who, "limit": 1}))
                .send()
                .await
            else {
                break;
            };
            let rid = r
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let status = r.status();
            let Ok(v) = r.json::<Value>().await else {
                break;
            };
            let (true, Some(request_id), Some(index)) =
                (status.is_success(), rid, v["logged_as"].as_u64())
            else {
                seen.refusals
                    .lock()
                    .unwrap()
                    .push(format!("replica {n}: {status} {v}"));
                continue;
            };
            seen.acks.lock().unwrap().push(Ack {
                replica: n,
                request_id,
                index,
                at: Instant::now(),
            });
            k += 1;
            if k.is_multiple_of(8) {
                let other = bases.lock().unwrap()[(n + 1) % REPLICAS].clone();
                let Ok(r) = client
                    .get(format!("{other}/v1/log/receipt?index={index}"))
                    .send()
                    .await
                else {
                    continue; // that replica is down right now
                };
                let status = r.status();
                let Ok(text) = r.text().await else { continue };
                if status.is_success() {
                    seen.receipts.lock().unwrap().push((index, text));
                } else {
                    seen.receipt_failures.lock().unwrap().push(format!(
                        "receipt {index} from replica {}: {status} {text}",
                        (n + 1) % REPLICAS
                    ));
                }
            }
        }
    }))
}

/// Fetches every replica's served checkpoint every 20 ms until `stop`.
fn watch_checkpoints(
    env: &TestEnv,
    bases: Arc<Mutex<Vec<String>>>,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let client = env.http("auditor")?;
    Ok(tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let list = bases.lock().unwrap().clone();
            for b in list {
                if let Ok(note) = get_bytes(&client, &format!("{b}/log/checkpoint")).await
                    && let Ok(note) = String::from_utf8(note)
                {
                    seen.checkpoints.lock().unwrap().push(note);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }))
}

/// The longest pause between two consecutive acknowledgements (any replica) within `window` of
/// `at`.
fn longest_pause(acks: &[Ack], at: Instant, window: Duration) -> Duration {
    let mut times: Vec<Instant> = acks
        .iter()
        .map(|a| a.at)
        .filter(|t| *t + window >= at && *t <= at + window)
        .collect();
    times.sort_unstable();
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_sequence_a_kill_nine_loses_nothing_and_caps_hold() -> anyhow::Result<()>
{
    let pg = PgTestDb::create().await?;
    let r = three_replicas(&pg.url).await;
    pg.drop_db().await?;
    r
}

async fn three_replicas(pg_url: &str) -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let deps = env.start_departments().await?;
    let url = pg_url.to_owned();
    env.config(move |t| {
        let t = t
            .replace("sqlite://hub.db", &url)
            .replace("reload_poll_ms = 2000", "reload_poll_ms = 0");
        format!(
            "{t}\n[log]\nsequencer_timeout_ms = 2000\nhead_refresh_ms = 200\n\n[rate_limits]\n\
             auditor = {{ per_second = 100000, burst = 100000 }}\nhouseholds_per_hour = 3\n"
        )
    })?;
    let mut procs = Vec::new();
    for n in 0..REPLICAS {
        procs.push(start_replica(&env, n, 0)?);
    }
    let mut list = Vec::new();
    for p in &procs {
        list.push(base_of(p)?);
    }
    let bases = Arc::new(Mutex::new(list));

    // Replica identity from the environment alone: /readyz names `<HUB_REPLICA_ID>#<pid>`.
    let c = env.http("auditor")?;
    for (n, p) in procs.iter().enumerate() {
        let b = bases.lock().unwrap()[n].clone();
        let v: Value = c.get(format!("{b}/readyz")).send().await?.json().await?;
        assert_eq!(
            v["replica"],
            format!("replica-{n}#{}", p.pid()),
            "readyz of replica {n}: {v}"
        );
    }

    // The distinct-household cap (3 per hour) is counted in PostgreSQL: five households checked at
    // once, spread over the three replicas, and exactly three pass.
    let hh = plain_households(&deps.population, 5);
    let cw = env.http("caseworker")?;
    let mut checks = Vec::new();
    for (i, h) in hh.iter().enumerate() {
        let b = bases.lock().unwrap()[i % REPLICAS].clone();
        let r = cw
            .post(format!("{b}/v1/authorizations"))
            .json(&letter(h, &["dibao_application"]))
            .send()
            .await?;
        anyhow::ensure!(r.status().as_u16() == 201, "letter: {}", r.text().await?);
        let auth: Value = r.json().await?;
        let body = verification(
            h,
            "dibao_application",
            &format!("case-replicas-{i}"),
            "normal",
            auth["id"].as_str(),
        );
        let cw = cw.clone();
        checks.push(tokio::spawn(async move {
            let r = cw
                .post(format!("{b}/v1/verifications"))
                .json(&body)
                .send()
                .await?;
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or_default();
            anyhow::Ok((status, v))
        }));
    }
    let mut passed = 0;
    let mut capped = 0;
    for t in checks {
        let (status, v) = t.await??;
        match status {
            200 => passed += 1,
            429 if v["error"]["code"] == "household_limit" => capped += 1,
            _ => panic!("unexpected answer {status}: {v}"),
        }
    }
    assert_eq!(
        (passed, capped),
        (3, 2),
        "the distinct-household cap holds across replicas"
    );

    // Load on all three, checkpoints watched.
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let people = residents(6);
    let mut tasks = Vec::new();
    for n in 0..REPLICAS {
        for w in 0..2 {
            let who = people[(2 * n + w) % people.len()].clone();
            tasks.push(load(
                &env,
                n,
                bases.clone(),
                who,
                seen.clone(),
                stop.clone(),
            )?);
        }
    }
    tasks.push(watch_checkpoints(
        &env,
        bases.clone(),
        seen.clone(),
        stop.clone(),
    )?);
    let acked = |n: usize| {
        seen.acks
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.replica == n)
            .count()
    };
    let started = Instant::now();
    while (0..REPLICAS).any(|n| acked(n) < 150) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "too little load before the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // kill -9 replica 1 mid-load; the others go on; restart it.
    let victim = 1;
    let killed_at = Instant::now();
    procs[victim].signal("-9")?;
    let before_kill = seen.acks.lock().unwrap().len();
    let restarted = start_replica(&env, victim, 1)?;
    bases.lock().unwrap()[victim] = base_of(&restarted)?;
    let old = std::mem::replace(&mut procs[victim], restarted);
    drop(old);
    for w in 0..2 {
        tasks.push(load(
            &env,
            victim,
            bases.clone(),
            people[(2 * victim + w) % people.len()].clone(),
            seen.clone(),
            stop.clone(),
        )?);
    }
    let after = |n: usize| {
        seen.acks
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.replica == n && a.at > killed_at)
            .count()
    };
    let started = Instant::now();
    while (0..REPLICAS).any(|n| after(n) < 100) {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "too little load after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let acks = seen.acks.lock().unwrap().clone();
    println!(
        "replicas: {} entries acknowledged ({} before the kill); longest pause between two \
         acknowledgements within 3 s of the kill -9: {} ms (sequencer_timeout_ms = 2000)",
        acks.len(),
        before_kill,
        longest_pause(&acks, killed_at, Duration::from_secs(3)).as_millis()
    );

    let refusals = seen.refusals.lock().unwrap().clone();
    assert!(refusals.is_empty(), "searches refused: {refusals:?}");

    // Every acknowledged index is distinct.
    let mut indexes: Vec<u64> = acks.iter().map(|a| a.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), acks.len(), "an index acknowledged twice");

    // `hub audit verify` over mTLS (replica 0) and offline from the database. Replica 0 serves
    // the newest head once asked about the last acknowledged entry (it may have been appended by
    // another replica after replica 0's last refresh).
    let base0 = bases.lock().unwrap()[0].clone();
    let last = acks.iter().map(|a| a.index).max().expect("acks");
    let r = c
        .get(format!("{base0}/v1/log/receipt?index={last}"))
        .send()
        .await?;
    assert!(r.status().is_success(), "receipt {last}: {}", r.status());
    let args = verify_args(&env, remote(&env, Some(base0.clone()), "auditor"), None);
    let Verdict::Ok { size, root } = hub::audit::verify(&args, |_, _| {}).await? else {
        panic!("the log does not verify over mTLS");
    };
    let offline = verify_args(&env, remote(&env, None, "auditor"), Some(pg_url.to_owned()));
    let verdict = hub::audit::verify(&offline, |_, _| {}).await?;
    let Verdict::Ok { size: db_size, .. } = verdict else {
        panic!("the log does not verify offline: {verdict:?}");
    };
    assert!(db_size >= size);

    // Every acknowledged entry is at its index, with its request id.
    let mut entries = Vec::new();
    for n in 0..size.div_ceil(256) {
        let t = tile_at_size(0, n, size).expect("tile");
        let b = get_bytes(&c, &format!("{base0}/log/{}", t.entries_path())).await?;
        entries.extend(
            tlog::tile::parse_bundle(&b)?
                .into_iter()
                .map(<[u8]>::to_vec),
        );
    }
    assert_eq!(entries.len() as u64, size);
    for a in &acks {
        let e = schemas::access_log::decode(&entries[a.index as usize])?;
        assert_eq!(
            e.request_id, a.request_id,
            "acknowledged entry {} (replica {}) lost or changed",
            a.index, a.replica
        );
    }

    // No fork: every checkpoint any replica served is a prefix of the final tree.
    let mut tree = tlog::MemoryHashStore::new();
    for e in &entries {
        tree.append(e);
    }
    assert_eq!(tree.root(), root);
    let vkey_text = std::fs::read_to_string(env.path().join("log.vkey"))?;
    let vkey = tlog::VerifierKey::parse(vkey_text.trim())?;
    let origin = vkey.name().to_owned();
    let notes = seen.checkpoints.lock().unwrap().clone();
    assert!(
        notes.len() > 20,
        "too few checkpoints watched: {}",
        notes.len()
    );
    let mut sizes = std::collections::BTreeSet::new();
    for note in &notes {
        let cp = tlog::checkpoint::open_checkpoint(
            note.as_bytes(),
            &origin,
            &vkey,
            &WitnessPolicy::default(),
        )?;
        let s = cp.checkpoint.size;
        assert!(s <= size, "a served checkpoint beyond the final tree");
        assert_eq!(
            cp.checkpoint.root,
            tlog::stored::tree_hash(s, &tree)?,
            "checkpoint {s} is not a prefix of the final tree: a fork"
        );
        sizes.insert(s);
    }

    // Receipts served by another replica than the appending one verify.
    let failures = seen.receipt_failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:?}");
    let receipts = seen.receipts.lock().unwrap().clone();
    assert!(receipts.len() > 20, "too few receipts: {}", receipts.len());
    for (i, text) in &receipts {
        let r = tlog::Receipt::parse(text)?;
        assert_eq!(r.index, *i);
        r.verify(
            &entries[*i as usize],
            &origin,
            &vkey,
            &WitnessPolicy::default(),
        )?;
    }

    // The Go reference implementation accepts the checkpoint, inclusion and consistency proofs.
    go_checks(&env, &c, |p| format!("{base0}{p}"), &entries).await?;

    // Each replica's log names the replica; the restarted one started while the others appended.
    for (n, p) in procs.iter().enumerate() {
        let open = p.messages("access log open");
        assert_eq!(open.len(), 1, "replica {n}");
        assert_eq!(
            open[0]["fields"]["replica"],
            format!("replica-{n}#{}", p.pid())
        );
    }
    println!(
        "replicas: final size {size}, {} distinct checkpoints watched, {} cross-replica receipts",
        sizes.len(),
        receipts.len()
    );
    drop(procs);
    for (_, h) in deps.handles {
        h.shutdown().await;
    }
    Ok(())
}

/// Four access logs in one process on one PostgreSQL database, as four replicas' writers: appends
/// made on all of them at once all succeed and form one sequence (indexes 0..n, each once; the
/// stored tree's root is every log's head after a refresh); a log opened while the others append
/// starts without refusing or signing anything; each log serves receipts and proofs for entries the
/// others appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_on_one_postgres_form_one_sequence() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let r = writers_one_sequence(&pg.url).await;
    pg.drop_db().await?;
    r
}

async fn writers_one_sequence(pg_url: &str) -> anyhow::Result<()> {
    use hub::log::{AccessLog, LogOptions};
    let env = TestEnv::new()?;
    let key = crate::access_log::pseudonym_key(&env);
    let people = residents(5);
    let store = hub::store::connect(&secrecy::SecretString::from(pg_url.to_owned()), 16).await?;
    let db = store.db();
    let open = |n: usize| {
        let db = db.clone();
        async move {
            AccessLog::start(
                db,
                tlog::Signer::from_seed("test.example/log", [9; 32])?,
                LogOptions {
                    max_batch: 16,
                    replica_id: format!("writer-{n}"),
                    instance: format!("writer-{n}#test"),
                    ..Default::default()
                },
            )
            .await
        }
    };
    let mut logs = Vec::new();
    for n in 0..3 {
        logs.push(open(n).await?);
    }
    const PER_LOG: usize = 150;
    let mut tasks = Vec::new();
    for (n, log) in logs.iter().enumerate() {
        for i in 0..PER_LOG {
            let log = log.clone();
            let e = crate::access_log::entry(
                &key,
                &people[i % people.len()],
                &format!("case-w{n}"),
                (n * PER_LOG + i) as i64,
            );
            tasks.push(tokio::spawn(async move { (n, log.append(e).await) }));
        }
    }
    // A fourth writer opens while the three append.
    let late = open(3).await?;
    let mut late_tasks = Vec::new();
    for i in 0..PER_LOG {
        let late = late.clone();
        let e = crate::access_log::entry(&key, &people[0], "case-w3", (3 * PER_LOG + i) as i64);
        late_tasks.push(tokio::spawn(async move { (3, late.append(e).await) }));
    }
    logs.push(late);
    let mut by_index = std::collections::BTreeMap::new();
    for t in tasks.into_iter().chain(late_tasks) {
        let (n, r) = t.await?;
        let a = r?;
        assert!(
            by_index.insert(a.index, n).is_none(),
            "index {} twice",
            a.index
        );
    }
    let total = 4 * PER_LOG as u64;
    assert_eq!(
        by_index.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    let by: std::collections::BTreeSet<usize> = by_index.values().copied().collect();
    assert_eq!(by.len(), 4, "every writer sequenced entries");
    let entries = hub::log::store::read_entries(&db, 0, total).await?;
    let mut tree = tlog::MemoryHashStore::new();
    for e in &entries {
        tree.append(e);
    }
    for (n, log) in logs.iter().enumerate() {
        let head = log.refresh_head().await?;
        assert_eq!((head.size, head.root), (total, tree.root()), "log {n}");
    }
    // Receipts and consistency proofs for what other writers appended.
    for (n, log) in logs.iter().enumerate() {
        let theirs: Vec<u64> = by_index
            .iter()
            .filter(|(_, w)| **w != n)
            .map(|(i, _)| *i)
            .step_by(37)
            .collect();
        for r in log.receipts(&theirs).await? {
            r.verify(
                &entries[r.index as usize],
                "test.example/log",
                log.vkey(),
                &WitnessPolicy::default(),
            )?;
        }
        let p = log.consistency_proof(17, total).await?;
        tlog::proof::check_tree(
            &p,
            total,
            tree.root(),
            17,
            tlog::stored::tree_hash(17, &tree)?,
        )?;
    }
    Ok(())
}
