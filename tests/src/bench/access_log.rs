//! P3, the access log's own figures, shared by `hub-bench` (in its run, beside P1/P2/P4/P5) and
//! `log-bench` (the same code with its own knobs): durable appends per second with group commit
//! against one transaction per append (the baseline, same run, same backend), DB-backed inclusion
//! proofs, and `hub audit verify --db` over the SQLite log just written.
//!
//! The log runs in the calling process ([`AccessLog::start`] on a fresh SQLite file or PostgreSQL
//! database of its own), appenders are closed-loop tasks each awaiting its append's durability.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hub::audit::{Remote, Verdict, VerifyArgs};
use hub::log::tlog::Signer;
use hub::log::{AccessLog, LogOptions};
use schemas::access_log::{
    AccessLogEntry, Action, Actor, Decision, Effect, FORMAT_V1, Outcome, PseudonymKey, pseudonymize,
};
use schemas::{Department, DivisionCode, Purpose, Role};

use crate::PgTestDb;

/// The log's origin and signing seed (the verifier key is derived from them).
const ORIGIN: &str = "bench.example/log";
const SEED: [u8; 32] = [5; 32];

/// How long an append measurement runs.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// Exactly this many appends.
    Count(u64),
    /// Appends started before this much time has passed (the ones in flight then are awaited and
    /// counted; the elapsed time is until the last one is durable).
    For(Duration),
}

/// Appends made and the time they took.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub appends: u64,
    pub secs: f64,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.appends as f64 / self.secs.max(f64::MIN_POSITIVE)
    }
}

/// One backend's figures.
#[derive(Debug, Clone)]
pub struct Backend {
    pub name: &'static str,
    /// Group commit (batches of up to 4,096).
    pub batched: Rate,
    /// One transaction per append (`max_batch` 1): the baseline.
    pub unbatched: Rate,
    pub concurrency: u64,
    pub unbatched_concurrency: u64,
    /// The batched log's size when the proofs were timed, and one proof's mean time.
    pub proof_size: u64,
    pub proof: Duration,
}

impl Backend {
    /// The `log-bench` lines for this backend.
    pub fn print(&self) {
        let (b, u) = (&self.batched, &self.unbatched);
        println!(
            "{}: batched {:.0} durable appends/s ({} appends in {:.2} s, {} concurrent); \
             unbatched baseline {:.0}/s ({} appends, {} concurrent); ratio {:.1}x",
            self.name,
            b.per_second(),
            b.appends,
            b.secs,
            self.concurrency,
            u.per_second(),
            u.appends,
            self.unbatched_concurrency,
            b.per_second() / u.per_second().max(f64::MIN_POSITIVE)
        );
        println!(
            "{}: inclusion proof from the database at size {}: {:.1} µs",
            self.name,
            self.proof_size,
            self.proof.as_secs_f64() * 1e6
        );
    }
}

/// `hub audit verify --db` over a log: its size and the seconds it took.
#[derive(Debug, Clone, Copy)]
pub struct Verified {
    pub size: u64,
    pub secs: f64,
}

impl Verified {
    pub fn per_second(&self) -> f64 {
        self.size as f64 / self.secs.max(f64::MIN_POSITIVE)
    }
}

/// Everything P3 measures in one go.
#[derive(Debug, Clone)]
pub struct Figures {
    pub sqlite: Backend,
    pub verify: Verified,
    /// `None` when PostgreSQL was skipped (quick experiments only).
    pub postgres: Option<Backend>,
}

/// What to measure and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Unmeasured appends on the batched log before the measured ones.
    pub warmup: Option<Duration>,
    pub batched: Budget,
    pub unbatched: Budget,
    /// Concurrent appenders on the batched log (the baseline uses at most 64).
    pub concurrency: u64,
    pub postgres: bool,
}

fn entry(key: &PseudonymKey, i: u64) -> AccessLogEntry {
    AccessLogEntry {
        format: FORMAT_V1.into(),
        time: time::OffsetDateTime::now_utc(),
        actor: Actor {
            uri: "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-xuzhuang-01".into(),
            principal: "cw-xuzhuang-01".into(),
            role: Role::Caseworker,
            organisation: "mz-370811002".into(),
            division: DivisionCode::parse("370811002").expect("valid division"),
        },
        action: Action::DepartmentQueried,
        purpose: Some(Purpose::DibaoApplication),
        case_ref: Some(format!("case-{}", i % 1000)),
        decision: Decision {
            effect: Effect::Allow,
            policy_ids: vec!["caseworker-own-township".into()],
        },
        departments: vec![Department::CivilAffairs, Department::Health],
        fact_kinds: vec![],
        outcome: Outcome::Succeeded,
        request_id: format!("req-{i}"),
        subjects: vec![pseudonymize(key, &format!("subject-{}", i % 5000))],
    }
}

/// Appends from `concurrency` closed-loop tasks until `budget` is spent.
pub async fn appends(
    log: &Arc<AccessLog>,
    budget: Budget,
    concurrency: u64,
) -> anyhow::Result<Rate> {
    let key = Arc::new(PseudonymKey::new(&[3u8; 32])?);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (log, key, next) = (log.clone(), key.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut made = 0u64;
            loop {
                let more = match budget {
                    Budget::Count(n) => {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        (i < n).then_some(i)
                    }
                    Budget::For(d) => {
                        (start.elapsed() < d).then(|| next.fetch_add(1, Ordering::Relaxed))
                    }
                };
                let Some(i) = more else { break };
                log.append(entry(&key, i)).await?;
                made += 1;
            }
            anyhow::Ok(made)
        }));
    }
    let mut made = 0;
    for t in tasks {
        made += t.await??;
    }
    Ok(Rate {
        appends: made,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// A log on `url` (a fresh database) with group commits of at most `max_batch` appends.
pub async fn open(url: &str, max_batch: usize) -> anyhow::Result<Arc<AccessLog>> {
    let store = hub::store::connect(&secrecy::SecretString::from(url.to_owned()), 8).await?;
    let signer = Signer::from_seed(ORIGIN, SEED)?;
    Ok(AccessLog::start(
        store.db(),
        signer,
        LogOptions {
            max_batch,
            ..Default::default()
        },
    )
    .await?)
}

/// Mean time of an inclusion proof read from the database (2,000 spread over the log).
pub async fn proof_time(log: &AccessLog) -> anyhow::Result<Duration> {
    let size = log.head().size;
    let rounds = 2000u64;
    let start = Instant::now();
    for k in 0..rounds {
        let i = (k * 7_919_993) % size;
        log.inclusion_proof(i, size).await?;
    }
    Ok(start.elapsed() / rounds as u32)
}

/// One backend: the unbatched baseline on `url_single`, then the batched log on `url_batched`
/// (warm-up, measured appends, proofs).
pub async fn backend(
    name: &'static str,
    url_batched: &str,
    url_single: &str,
    o: &Options,
) -> anyhow::Result<Backend> {
    let unbatched_concurrency = o.concurrency.min(64);
    let single = open(url_single, 1).await?;
    let unbatched = appends(&single, o.unbatched, unbatched_concurrency).await?;
    drop(single);
    let batched_log = open(url_batched, 4096).await?;
    if let Some(w) = o.warmup {
        appends(&batched_log, Budget::For(w), o.concurrency).await?;
    }
    let batched = appends(&batched_log, o.batched, o.concurrency).await?;
    let proof = proof_time(&batched_log).await?;
    Ok(Backend {
        name,
        batched,
        unbatched,
        concurrency: o.concurrency,
        unbatched_concurrency,
        proof_size: batched_log.head().size,
        proof,
    })
}

/// `hub audit verify --db <url>` (offline, every entry and the tree) over a log this module wrote.
pub async fn verify_db(url: &str, dir: &Path) -> anyhow::Result<Verified> {
    let signer = Signer::from_seed(ORIGIN, SEED)?;
    let vkey = dir.join("log.vkey");
    std::fs::write(&vkey, format!("{}\n", signer.verifier_key()))?;
    let args = VerifyArgs {
        remote: Remote {
            url: None,
            cacert: None,
            cert: None,
            key: None,
        },
        db: Some(url.to_owned()),
        vkey,
        origin: None,
        trusted_checkpoint: None,
        trusted_vkey: None,
        witnesses: vec![],
        witness_quorum: 0,
        save_checkpoint: None,
        quiet: true,
    };
    let start = Instant::now();
    let verdict = hub::audit::verify(&args, |_, _| {}).await?;
    let secs = start.elapsed().as_secs_f64();
    let Verdict::Ok { size, .. } = verdict else {
        anyhow::bail!("benchmark log does not verify: {verdict:?}");
    };
    Ok(Verified { size, secs })
}

/// P3 whole: SQLite (files in a temporary directory), `hub audit verify --db` over the SQLite log
/// just written, then PostgreSQL (two fresh databases at `HUB_TEST_PG_URL`, dropped afterwards;
/// required unless `o.postgres` is off).
pub async fn measure(o: &Options) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let sq_b = format!("sqlite://{}", dir.path().join("batched.db").display());
    let sq_s = format!("sqlite://{}", dir.path().join("single.db").display());
    let sqlite = backend("SQLite", &sq_b, &sq_s, o).await?;
    let verify = verify_db(&sq_b, dir.path()).await?;
    let postgres = if o.postgres {
        let pg_b = PgTestDb::create().await?;
        let pg_s = PgTestDb::create().await?;
        let r = backend("PostgreSQL", &pg_b.url, &pg_s.url, o).await;
        pg_b.drop_db().await?;
        pg_s.drop_db().await?;
        Some(r?)
    } else {
        None
    };
    Ok(Figures {
        sqlite,
        verify,
        postgres,
    })
}
