//! Unit tests of the access-log service on SQLite: durable concurrent appends, roots equal to an
//! independent in-memory tree, proofs, restart recovery and the sequencer CAS.

use std::sync::Arc;

use schemas::access_log::{
    AccessLogEntry, Action, Actor, Decision, Effect, FORMAT_V1, Outcome, PseudonymKey, pseudonymize,
};
use schemas::{DivisionCode, Role};
use tlog::checkpoint::{WitnessPolicy, open_checkpoint};
use tlog::{MemoryHashStore, Signer};

use super::*;

/// A valid entry for actor `cw-<n>`, subject = pseudonym of a test resident id.
pub(crate) fn test_entry(n: u64, subject: Option<&str>) -> AccessLogEntry {
    let key = PseudonymKey::new(&[7u8; 32]).unwrap();
    AccessLogEntry {
        format: FORMAT_V1.into(),
        time: time::OffsetDateTime::from_unix_timestamp(1_790_000_000 + n as i64).unwrap(),
        actor: Actor {
            uri: format!("spiffe://jishijiu.jining/caseworker/office-1/370811/cw-{n}"),
            principal: format!("cw-{n}"),
            role: Role::Caseworker,
            organisation: "office-1".into(),
            division: DivisionCode::parse("370811").unwrap(),
        },
        action: Action::VerificationRequested,
        purpose: None,
        case_ref: Some(format!("case-{}", n % 7)),
        decision: Decision {
            effect: Effect::Allow,
            policy_ids: vec!["p1".into()],
        },
        departments: vec![],
        fact_kinds: vec![],
        outcome: Outcome::Succeeded,
        request_id: format!("req-{n}"),
        subjects: subject
            .map(|s| vec![pseudonymize(&key, s)])
            .unwrap_or_default(),
    }
}

async fn open(path: &std::path::Path, max_batch: usize, replica: &str) -> Arc<AccessLog> {
    let url = format!("sqlite://{}", path.join("log.db").display());
    let store = crate::store::sqlite::SqliteStore::connect(&url, 4)
        .await
        .unwrap();
    let db = crate::store::Db::Sqlite(store.pool().clone());
    let signer = Signer::from_seed("test.example/log", [9; 32]).unwrap();
    AccessLog::start(
        db,
        signer,
        LogOptions {
            max_batch,
            replica_id: replica.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_durable_and_match_an_independent_tree() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 64, "primary").await;
    let mut tasks = Vec::new();
    for n in 0..500u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.append(test_entry(n, None)).await
        }));
    }
    let mut indexes = Vec::new();
    for t in tasks {
        let a = t.await.unwrap().unwrap();
        assert!(a.index < a.checkpoint_size);
        indexes.push(a.index);
    }
    indexes.sort_unstable();
    assert_eq!(indexes, (0..500).collect::<Vec<_>>());
    // Recompute from the stored entries with an independent in-memory tree.
    let entries = store::read_entries(log.db(), 0, 500).await.unwrap();
    let mut mem = MemoryHashStore::new();
    for e in &entries {
        mem.append(e);
    }
    let head = log.head();
    assert_eq!((head.size, head.root), (500, mem.root()));
    let vkey = log.vkey().clone();
    let cp = open_checkpoint(
        head.note.as_bytes(),
        "test.example/log",
        &vkey,
        &WitnessPolicy::default(),
    )
    .unwrap();
    assert_eq!(cp.checkpoint.size, 500);
    // Proofs from the DB verify.
    for (i, size) in [(0u64, 500u64), (257, 500), (499, 500), (3, 4)] {
        let proof = log.inclusion_proof(i, size).await.unwrap();
        let root = tlog::stored::tree_hash(size, &mem).unwrap();
        tlog::proof::check_record(
            &proof,
            size,
            root,
            i,
            tlog::hash::leaf_hash(&entries[i as usize]),
        )
        .unwrap();
    }
    let proof = log.consistency_proof(100, 500).await.unwrap();
    let old_root = tlog::stored::tree_hash(100, &mem).unwrap();
    tlog::proof::check_tree(&proof, 500, mem.root(), 100, old_root).unwrap();
    drop(log);
    // Restart: recovery accepts the head and appends continue at 500.
    let log = open(dir.path(), 64, "primary").await;
    assert_eq!(log.head().size, 500);
    assert_eq!(log.append(test_entry(9, None)).await.unwrap().index, 500);
}

#[tokio::test]
async fn a_second_sequencer_is_refused_while_the_lease_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 8, "replica-a").await;
    a.append(test_entry(1, None)).await.unwrap();
    let b = open(dir.path(), 8, "replica-b").await;
    let err = b.append(test_entry(2, None)).await.unwrap_err();
    assert!(matches!(err, LogError::NotSequencer), "{err}");
    assert_eq!(a.append(test_entry(3, None)).await.unwrap().index, 1);
}

#[tokio::test]
async fn start_up_refuses_a_head_that_disagrees_with_stored_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 8, "primary").await;
    for n in 0..5 {
        log.append(test_entry(n, None)).await.unwrap();
    }
    let crate::store::Db::Sqlite(pool) = log.db().clone() else {
        unreachable!()
    };
    // The head check covers the frontier (here the subtree [0,4)) and the last leaf; the start-up
    // audit (integrity.rs, tested end to end in tests/tests/e2e/log_integrity.rs) the newest
    // entries; older tampering is for `startup_audit = "full"` and `hub audit verify`.
    sqlx::query("UPDATE log_hashes SET hash = $1 WHERE id = $2")
        .bind(vec![0u8; 32])
        .bind(tlog::stored::stored_hash_index(2, 0).0 as i64)
        .execute(&pool)
        .await
        .unwrap();
    drop(log);
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    let store = crate::store::sqlite::SqliteStore::connect(&url, 4)
        .await
        .unwrap();
    let signer = Signer::from_seed("test.example/log", [9; 32]).unwrap();
    let err = AccessLog::start(
        crate::store::Db::Sqlite(store.pool().clone()),
        signer,
        LogOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LogError::Corrupt(_)), "{err}");
}

#[test]
fn signer_from_hub_keygen_key() {
    let dir = tempfile::tempdir().unwrap();
    let (signing, _) = crate::keys::HubKeys::generate(dir.path()).unwrap();
    let der = std::fs::read(signing).unwrap();
    let s = signer_from_pkcs8("jishijiu.jining/access-log", &der).unwrap();
    assert!(
        s.verifier_key()
            .to_string()
            .starts_with("jishijiu.jining/access-log+")
    );
    assert!(signer_from_pkcs8("x/y", &der[..20]).is_err());
}

/// Receipts (single and batched, from the in-memory cache or, after a restart, from the database)
/// are byte-identical to proofs computed from the database alone and verify against the signed
/// checkpoint they carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_from_the_cache_equal_receipts_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 16, "primary").await;
    let mut tasks = Vec::new();
    for n in 0..300u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            log.append(test_entry(n, None)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let check = |log: Arc<AccessLog>| async move {
        let entries = store::read_entries(log.db(), 0, 300).await.unwrap();
        let head = log.head();
        let wanted = [0u64, 1, 17, 256, 298, 299];
        let batch = log.receipts(&wanted).await.unwrap();
        assert_eq!(batch.len(), wanted.len());
        for (r, i) in batch.iter().zip(wanted) {
            assert_eq!(r.index, i);
            assert_eq!(r.checkpoint, head.note);
            let db_only = with_db_reader(log.db(), |h| tlog::proof::prove_record(300, i, h))
                .await
                .unwrap();
            assert_eq!(r.proof, db_only, "entry {i}");
            assert_eq!(log.receipt(i).await.unwrap(), *r);
            r.verify(
                &entries[i as usize],
                "test.example/log",
                log.vkey(),
                &WitnessPolicy::default(),
            )
            .unwrap();
        }
        let err = log.receipts(&[1, 300]).await.unwrap_err();
        assert!(matches!(err, LogError::BadRequest { .. }), "{err}");
    };
    check(log.clone()).await;
    drop(log);
    // After a restart the cache holds only the frontier: misses come from the database.
    let log = open(dir.path(), 16, "primary").await;
    check(log.clone()).await;
    // Consistency proofs through the cache equal the database's.
    let p = log.consistency_proof(100, 300).await.unwrap();
    let q = with_db_reader(log.db(), |h| tlog::proof::prove_tree(300, 100, h))
        .await
        .unwrap();
    assert_eq!(p, q);
}

/// Test work for a group: one `group_rows` row per entry of the group (its index), then `fail`
/// decides whether it reports success; what it was handed is kept.
struct RowWrite {
    fail: bool,
    prove: Option<Vec<u64>>,
    seen: Arc<std::sync::Mutex<Option<Placed>>>,
}

impl Attached for RowWrite {
    fn write<'a>(&'a mut self, mut conn: TxConn<'a>, placed: &'a Placed) -> AttachedFuture<'a> {
        Box::pin(async move {
            for i in &placed.indexes {
                let TxConn::Sqlite(c) = conn.reborrow() else {
                    return false;
                };
                sqlx::query("INSERT INTO group_rows (idx) VALUES ($1)")
                    .bind(*i as i64)
                    .execute(&mut *c)
                    .await
                    .unwrap();
            }
            *self.seen.lock().unwrap() = Some(placed.clone());
            !self.fail
        })
    }

    fn receipts_for(&self) -> Option<Vec<u64>> {
        self.prove.clone()
    }
}

/// `(entries, checkpoints, group rows)` stored.
async fn counts(log: &AccessLog) -> (i64, i64, i64) {
    let crate::store::Db::Sqlite(pool) = log.db() else {
        unreachable!()
    };
    sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM log_entries), (SELECT COUNT(*) FROM log_checkpoints), \
                (SELECT COUNT(*) FROM group_rows)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn with_group_rows(log: &AccessLog) {
    let crate::store::Db::Sqlite(pool) = log.db() else {
        unreachable!()
    };
    sqlx::query("CREATE TABLE IF NOT EXISTS group_rows (idx INTEGER NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
}

fn row_write(
    fail: bool,
    prove: Option<Vec<u64>>,
) -> (Box<RowWrite>, Arc<std::sync::Mutex<Option<Placed>>>) {
    let seen = Arc::new(std::sync::Mutex::new(None));
    (
        Box::new(RowWrite {
            fail,
            prove,
            seen: seen.clone(),
        }),
        seen,
    )
}

/// A group's entries, its attached write and the checkpoint covering them are one commit (one
/// checkpoint row), even when the group is larger than `max_batch`; the work is told the indexes
/// and handed receipts (an earlier entry's first) that verify against the checkpoint signed in
/// that commit.
#[tokio::test]
async fn a_group_and_its_attached_write_are_one_commit_with_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4, "primary").await;
    with_group_rows(&log).await;
    let earlier = log.append(test_entry(100, None)).await.unwrap().index;
    let before = counts(&log).await;
    let (work, seen) = row_write(false, Some(vec![earlier]));
    let group: Vec<_> = (0..10).map(|n| test_entry(n, Some("x"))).collect();
    let appended = log.append_many_with(group, work).await.unwrap();
    let after = counts(&log).await;
    assert_eq!(after.0 - before.0, 10, "entries");
    assert_eq!(
        after.1 - before.1,
        1,
        "one commit (checkpoint) for the group"
    );
    assert_eq!(after.2 - before.2, 10, "the attached rows");
    let placed = seen.lock().unwrap().clone().expect("the work ran");
    let indexes: Vec<u64> = appended.iter().map(|a| a.index).collect();
    assert_eq!(indexes, (1..11).collect::<Vec<_>>());
    assert_eq!(placed.indexes, indexes);
    assert_eq!(placed.checkpoint_size, 11);
    assert!(appended.iter().all(|a| a.checkpoint_size == 11));
    assert_eq!(placed.receipts.len(), 11);
    let entries = store::read_entries(log.db(), 0, 11).await.unwrap();
    for (r, i) in placed
        .receipts
        .iter()
        .zip(std::iter::once(earlier).chain(indexes))
    {
        assert_eq!(r.index, i);
        assert_eq!(r.checkpoint, log.head().note);
        r.verify(
            &entries[i as usize],
            "test.example/log",
            log.vkey(),
            &WitnessPolicy::default(),
        )
        .unwrap();
        // The same proof the service computes afterwards.
        assert_eq!(log.receipt(i).await.unwrap(), *r);
    }
}

/// Groups sequenced concurrently with single appends: every group's entries and rows are there,
/// and the batches were shared (fewer checkpoints than appends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_groups_share_batches_and_keep_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 64, "primary").await;
    with_group_rows(&log).await;
    let mut tasks = Vec::new();
    for n in 0..40u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                log.append(test_entry(n, None)).await.map(|a| vec![a])
            } else {
                let (work, _) = row_write(false, Some(Vec::new()));
                let group = (0..3).map(|k| test_entry(n * 10 + k, None)).collect();
                log.append_many_with(group, work).await
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap().unwrap().into_iter().map(|a| a.index));
    }
    all.sort_unstable();
    assert_eq!(all, (0..80).collect::<Vec<_>>());
    let (entries, checkpoints, rows) = counts(&log).await;
    assert_eq!((entries, rows), (80, 60));
    assert!(checkpoints < 40, "{checkpoints} commits for 40 appends");
}

/// A failed attached write rolls back its own writes only: the group's entries commit (they record
/// what happened) and its caller reads the failure; a failed batch commits neither the entries nor
/// the attached writes; a receipt asked for an entry not yet in the log is refused before anything
/// is queued.
#[tokio::test]
async fn failures_leave_no_attached_write_without_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 8, "primary").await;
    with_group_rows(&log).await;
    let (work, seen) = row_write(true, None);
    let group = (0..3).map(|n| test_entry(n, None)).collect();
    log.append_many_with(group, work).await.unwrap();
    assert!(seen.lock().unwrap().is_some());
    assert_eq!(
        counts(&log).await,
        (3, 1, 0),
        "entries commit, the rows roll back"
    );

    let (work, seen) = row_write(false, Some(vec![3]));
    let err = log
        .append_many_with(vec![test_entry(9, None)], work)
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::BadRequest { .. }), "{err}");
    assert!(seen.lock().unwrap().is_none());
    assert_eq!(counts(&log).await, (3, 1, 0));

    // Another replica holds the lease: the batch is refused whole.
    let other = open(dir.path(), 8, "replica-b").await;
    let (work, seen) = row_write(false, None);
    let err = other
        .append_many_with(vec![test_entry(5, None), test_entry(6, None)], work)
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::NotSequencer), "{err}");
    assert!(seen.lock().unwrap().is_none());
    assert_eq!(
        counts(&log).await,
        (3, 1, 0),
        "nothing of the refused batch"
    );
}

/// Batches of every size from 1 to 40 leave the pooled connections' statement caches as they are
/// after the first batch: a statement whose text depends on a count is not cached (each size
/// would otherwise stay prepared on the connection, the hub's memory growing with every new size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_of_many_sizes_do_not_fill_the_statement_cache() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("log.db").display());
    let store = crate::store::sqlite::SqliteStore::connect(&url, 1)
        .await
        .unwrap();
    let signer = Signer::from_seed("test.example/log", [9; 32]).unwrap();
    let log = AccessLog::start(
        crate::store::Db::Sqlite(store.pool().clone()),
        signer,
        LogOptions::default(),
    )
    .await
    .unwrap();
    // The writer's own connection: every statement of a batch runs on it.
    let crate::store::Db::Sqlite(pool) = log.writer_db.clone() else {
        panic!("an SQLite log")
    };
    let cached = |pool: sqlx::SqlitePool| async move {
        pool.acquire().await.unwrap().cached_statements_size()
    };
    let mut n = 0;
    log.append_many((0..1).map(|i| test_entry(i, Some("a"))).collect())
        .await
        .unwrap();
    let after_one = cached(pool.clone()).await;
    for size in 2..=40u64 {
        let batch = (0..size).map(|i| test_entry(n + i, Some("b"))).collect();
        n += size;
        log.append_many(batch).await.unwrap();
    }
    assert_eq!(log.head().size, 1 + (2..=40u64).sum::<u64>());
    assert_eq!(
        cached(pool.clone()).await,
        after_one,
        "39 more batch sizes, no more cached statements"
    );
}

/// Test work without entries: one `group_rows` row (index -1), then `fail` decides.
struct MarkWrite {
    fail: bool,
}

impl Attached for MarkWrite {
    fn write<'a>(&'a mut self, conn: TxConn<'a>, _placed: &'a Placed) -> AttachedFuture<'a> {
        Box::pin(async move {
            let TxConn::Sqlite(c) = conn else {
                return false;
            };
            sqlx::query("INSERT INTO group_rows (idx) VALUES (-1)")
                .execute(&mut *c)
                .await
                .unwrap();
            !self.fail
        })
    }
}

/// Work attached without entries ([`AccessLog::attach`]) commits with no entry and no checkpoint
/// of its own, alone or in a batch with appends; a failed one rolls back only its own writes; one
/// asking for receipts is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_without_entries_commits_in_the_group_commit_without_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 64, "primary").await;
    with_group_rows(&log).await;
    log.append(test_entry(1, None)).await.unwrap();
    let before = counts(&log).await;
    log.attach(Box::new(MarkWrite { fail: false }))
        .await
        .unwrap();
    log.attach(Box::new(MarkWrite { fail: true }))
        .await
        .unwrap();
    let after = counts(&log).await;
    assert_eq!(after.0 - before.0, 0, "no entry");
    assert_eq!(after.1 - before.1, 0, "no checkpoint");
    assert_eq!(after.2 - before.2, 1, "the work that succeeded, only");

    // Mixed with appends: every entry and every work commits.
    let mut tasks = Vec::new();
    for n in 0..100u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            if n % 2 == 0 {
                log.append(test_entry(n, None)).await.map(|_| ())
            } else {
                log.attach(Box::new(MarkWrite { fail: false })).await
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mixed = counts(&log).await;
    assert_eq!(mixed.0 - after.0, 50, "entries");
    assert_eq!(mixed.2 - after.2, 50, "works");
    assert_eq!(
        log.head().size as i64,
        mixed.0,
        "the head covers every entry"
    );

    let (asks, _) = row_write(false, Some(vec![0]));
    assert!(matches!(
        log.attach(asks).await,
        Err(LogError::BadRequest { .. })
    ));
}

/// The writer commits on a connection of its own and the WAL is checkpointed beside it: with far
/// fewer than SQLite's 1,000-page auto-checkpoint in the WAL, the entries still reach the database
/// file (and the writer's connection is not one of the store's pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_is_checkpointed_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 64, "r1").await;
    let file = dir.path().join("log.db");
    let before = std::fs::metadata(&file).unwrap().len();
    // About 200 entries of ~700 bytes with their hashes and indexes: far below 1,000 WAL pages.
    for k in 0..10u64 {
        log.append_many((0..20).map(|i| test_entry(k * 20 + i, Some("s"))).collect())
            .await
            .unwrap();
    }
    let wal = dir.path().join("log.db-wal");
    let wal_pages = std::fs::metadata(&wal).unwrap().len() / 4096;
    assert!(
        wal_pages < 1000,
        "{wal_pages} WAL pages: the test must stay below auto-checkpoint"
    );
    let mut grown = before;
    for _ in 0..100 {
        grown = std::fs::metadata(&file).unwrap().len();
        if grown > before + 64 * 1024 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        grown > before + 64 * 1024,
        "the database file did not grow ({before} -> {grown} bytes): nothing checkpointed"
    );
    let crate::store::Db::Sqlite(writer) = &log.writer_db else {
        panic!("an SQLite log")
    };
    assert_eq!(writer.options().get_max_connections(), 1);
}
