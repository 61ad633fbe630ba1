//! 访问日志服务: the access-log service. Every access to personal data through the hub becomes one
//! [`schemas::access_log::AccessLogEntry`] appended to a C2SP transparency log (RFC 6962 tree,
//! Ed25519 signed-note checkpoints, tlog-tiles served under `/log/`).
//!
//! # Durability and group commit
//! [`AccessLog::append`] returns only after the transaction holding the entry has committed (SQLite
//! runs WAL with `synchronous=FULL`, so a commit is on disk). Appends go through an mpsc queue to ONE
//! writer task, which takes everything queued (up to `max_batch`), assigns indices, computes the
//! new stored hashes (Go sumdb layout) from an in-memory frontier, signs a checkpoint for the new
//! size, and commits entries + stored hashes + checkpoint + head in one transaction: one fsync per
//! batch, not per entry. Tiles are computed from stored hashes, which commit in the same transaction
//! as the checkpoint, so no checkpoint ever covers a tile that is not durable. A crash at any point
//! leaves either the old head (and none of the batch) or the new head (and all of it); start-up
//! ([`AccessLog::start`]) recomputes the root from stored hashes and refuses to run if it disagrees
//! with the head.
//!
//! Other durable work that belongs with an entry rides in the same commit instead of a second
//! one: [`AccessLog::append_with`] queues an [`Attached`] write (e.g. a department event's row and
//! its warnings) that the writer runs inside the batch transaction after the entries, each in its
//! own savepoint (a failed one rolls back only its own writes; its entry still commits, as an
//! entry logged before a failed write did before). So a batch of N pushed events costs one
//! transaction and one fsync, not 2N; the caller is answered only after the commit.
//! [`AccessLog::append_many_with`] does the same for a group of entries (a verification's
//! department entries and its stored report): the group takes one slot of the batch, is never
//! split (it counts its entries toward `max_batch`), and its work is told where the entries landed
//! and, if it asks, handed receipts against the checkpoint signed in the same transaction
//! ([`Placed`]).
//!
//! # Never sign what was not verified
//! Start-up refuses (and signs nothing) unless the stored checkpoint verifies with the configured
//! key and origin for exactly the head's size and root, and the stored tree passes the configured
//! start-up audit against it; a deleted head over existing entries is refused too. Re-signing with
//! another key or origin is only the explicit, recorded rotation (`hub log rotate`). See
//! [`integrity`].
//!
//! # One sequence across replicas
//! The single-row `log_head` holds the size, root and signed note of the one sequence. Every batch
//! transaction first takes the head ([`store::commit_batch`]):
//! - **PostgreSQL (several replicas):** `SELECT … FROM log_head FOR UPDATE`. Every replica's writer
//!   sequences; PostgreSQL serializes their batches on the head row. If the locked head is not the
//!   one this writer last committed (another replica appended), the frontier at the locked size is
//!   read inside the same transaction and the locked checkpoint is verified with our key and origin
//!   before anything is integrated on top of it; then the batch is integrated, the checkpoint for
//!   the new size signed, and everything committed together. So the tree never forks, no replica
//!   answers 503 for not being "the sequencer", and nothing is forwarded. A replica killed
//!   mid-transaction loses its connection and PostgreSQL aborts its transaction (its callers were
//!   never answered); a hung one is cut off by the transaction's
//!   `idle_in_transaction_session_timeout` (`[log] sequencer_timeout_ms`), which bounds how long
//!   the others wait. `lease_holder` records which replica (`name#pid`) sequenced the last batch.
//! - **SQLite (one process):** the sequencer lease (`lease_holder`, `lease_expires_ms`, keyed by
//!   `[log] replica_id`) is taken by a compare-and-swap as the transaction's first, writing
//!   statement; another holder's unexpired lease refuses the batch with
//!   [`LogError::NotSequencer`]. A restarted process with the same id re-takes its lease at once.
//!
//! Each replica keeps a served head, a hash cache and watchers ([`AccessLog::subscribe`], the
//! witness cosigner) that only its own writer advances; on PostgreSQL a task re-reads the head every
//! `[log] head_refresh_ms` and any read asking beyond the local head re-reads it first
//! ([`AccessLog::head_at_least`]). A head read from the database is published only after its
//! checkpoint verifies with our key and origin, and only when it is larger than the one served.

pub mod api;
mod cache;
pub mod integrity;
pub mod store;
pub mod witnessing;

pub use integrity::StartupAudit;

/// The format library, re-exported for tools and tests that verify what the log serves.
pub use tlog;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use schemas::access_log::AccessLogEntry;
use tlog::checkpoint::{Checkpoint, WitnessPolicy};
use tlog::stored::{stored_hash_count, stored_hash_index};
use tlog::{Hash, HashReader, Signer, StoredHashIndex, VerifierKey};
use tokio::sync::{mpsc, oneshot, watch};

use crate::store::Db;
use cache::{CacheReader, HashCache};
use store::{EntryRow, Head};

/// Access-log failures. Messages never contain entry contents.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("invalid entry: {0}")]
    InvalidEntry(#[from] schemas::access_log::AccessLogError),
    #[error("log storage is inconsistent: {0}")]
    Corrupt(String),
    #[error("this replica does not hold the sequencer lease (or the head moved); retry")]
    NotSequencer,
    #[error("the log writer has stopped")]
    Stopped,
    #[error("{0}")]
    Tlog(#[from] tlog::Error),
    #[error("{field}: {rule}")]
    BadRequest { field: &'static str, rule: String },
    /// The stored checkpoint does not verify with the configured key and origin (or the head was
    /// deleted over existing history): the hub refuses to start and signs nothing.
    #[error("access log: {0}")]
    Unverified(String),
    /// The stored tree disagrees with the signed checkpoint.
    #[error(
        "access log: the stored log differs from its signed checkpoint; first bad index {index}: {reason}; refusing to start"
    )]
    Tampered { index: u64, reason: String },
    /// `hub log rotate` refused.
    #[error("access log rotation refused: {0}")]
    RotationRefused(String),
}

/// How often, at most, the WAL of an SQLite log is checkpointed beside the writer.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Knobs of the service.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Most appends per transaction (1 = one transaction per append, the benchmark baseline).
    pub max_batch: usize,
    /// Name of this replica (the SQLite lease key).
    pub replica_id: String,
    /// This process: `<replica_id>#<pid>` (recorded as the last sequencer on PostgreSQL, shown by
    /// /readyz).
    pub instance: String,
    /// PostgreSQL: how long a batch transaction may sit idle holding the head lock
    /// (`idle_in_transaction_session_timeout`); waiting for the lock gives up after three times it.
    pub sequencer_timeout: Duration,
    /// PostgreSQL: how often the served head is re-read from the database.
    pub head_refresh: Duration,
    /// How long a lease lasts after the last batch.
    pub lease: Duration,
    /// Witness keys (cosignature/v1) whose cosignatures are checked when present.
    pub witnesses: Vec<VerifierKey>,
    /// Witnesses are asked to cosign ([`witnessing`]): GET /log/checkpoint serves the newest
    /// checkpoint that has enough cosignatures instead of the head.
    pub serve_cosigned: bool,
    /// How much of the stored tree start-up checks against the signed checkpoint.
    pub startup_audit: StartupAudit,
    /// Entries the `sample` start-up audit checks by inclusion proof.
    pub startup_audit_samples: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            max_batch: 4096,
            replica_id: "primary".into(),
            instance: format!("primary#{}", std::process::id()),
            sequencer_timeout: Duration::from_secs(5),
            head_refresh: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            witnesses: Vec::new(),
            serve_cosigned: false,
            startup_audit: StartupAudit::Recent,
            startup_audit_samples: 256,
        }
    }
}

/// The result of a durable append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// 序号: the entry's 0-based index in the log.
    pub index: u64,
    /// Size of the first checkpoint that covers the entry (signed in the same transaction).
    pub checkpoint_size: u64,
}

/// One slot of the writer's batch: a group of entries (one for [`AccessLog::append`]) and the work
/// made durable with them. A group is never split across transactions; it counts its entries
/// toward `max_batch`.
struct AppendRequest {
    /// The group's entries (rows and leaf hashes), in the order given.
    rows: Vec<(EntryRow, Hash)>,
    attached: Option<Box<dyn Attached>>,
    reply: oneshot::Sender<Result<Vec<Appended>, LogError>>,
}

/// A connection inside the log writer's batch transaction (for [`Attached`] work).
pub enum TxConn<'a> {
    Sqlite(&'a mut sqlx::SqliteConnection),
    Postgres(&'a mut sqlx::PgConnection),
}

/// The future an [`Attached`] write returns.
pub type AttachedFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;

impl TxConn<'_> {
    /// The same connection for a shorter borrow (to run several statements through it).
    pub fn reborrow(&mut self) -> TxConn<'_> {
        match self {
            TxConn::Sqlite(c) => TxConn::Sqlite(c),
            TxConn::Postgres(c) => TxConn::Postgres(c),
        }
    }
}

/// Where an [`Attached`] work's group landed in the batch being committed.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The group's entries' indexes, in the order they were given (consecutive within the batch).
    pub indexes: Vec<u64>,
    /// Size of the checkpoint signed in this transaction; it covers every entry of the group.
    pub checkpoint_size: u64,
    /// Receipts against that checkpoint, when [`Attached::receipts_for`] asked for them: first the
    /// earlier indexes it named, then the group's own entries, in that order.
    pub receipts: Vec<tlog::Receipt>,
}

/// Work made durable together with a group of access-log entries, in the log writer's batch
/// transaction (one commit, one fsync for the whole batch): e.g. a department event's row and its
/// warnings ([`AccessLog::append_with`]), or a verification's stored report
/// ([`AccessLog::append_many_with`]). It runs after the batch's entries, stored hashes and signed
/// checkpoint are written, inside its own savepoint: `false` (the work recorded its own failure)
/// rolls back its writes only, and the entries and the rest of the batch still commit. Its outcome
/// is for its caller to read once the append returned `Ok` (durable); when the batch fails,
/// nothing of it and none of the entries are written.
pub trait Attached: Send {
    /// Write inside the batch transaction, knowing where the group's entries landed.
    fn write<'a>(&'a mut self, conn: TxConn<'a>, placed: &'a Placed) -> AttachedFuture<'a>;

    /// `Some(earlier)`: the work wants receipts (inclusion proofs against the checkpoint signed in
    /// this transaction) for the entries at `earlier` and for the group's own entries, handed to
    /// it in [`Placed::receipts`]. `None` (the default): no receipts.
    fn receipts_for(&self) -> Option<Vec<u64>> {
        None
    }
}

/// Where an [`Attached`] work leaves what it did (a cell shared with its caller, who takes it once
/// the append returned: empty if the work never ran).
pub struct Outcome<T>(Arc<std::sync::Mutex<Option<T>>>);

impl<T> Default for Outcome<T> {
    fn default() -> Self {
        Outcome(Arc::new(std::sync::Mutex::new(None)))
    }
}

impl<T> Clone for Outcome<T> {
    fn clone(&self) -> Self {
        Outcome(self.0.clone())
    }
}

impl<T> Outcome<T> {
    /// Record what the work did (a second call replaces the first).
    pub fn set(&self, value: T) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
    }

    /// What the work recorded, if it ran.
    pub fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The current head as served (size, root, signed checkpoint note).
#[derive(Debug, Clone)]
pub struct Served {
    pub size: u64,
    pub root: Hash,
    pub note: String,
}

/// The access-log service (cheap to share behind an `Arc`).
pub struct AccessLog {
    db: Db,
    tx: mpsc::Sender<AppendRequest>,
    head: Arc<RwLock<Served>>,
    /// Durable stored hashes kept in memory (shared with the writer).
    cache: Arc<Mutex<HashCache>>,
    vkey: VerifierKey,
    origin: String,
    witnesses: WitnessPolicy,
    /// Why a watch: the witnessing task wakes on every new head without polling, and a task that
    /// was busy sees only the newest size (intermediate heads need no cosignature).
    size_rx: watch::Receiver<u64>,
    /// Shared with the writer: a head read from the database (another replica's) is published too.
    size_tx: Arc<watch::Sender<u64>>,
    /// `<replica_id>#<pid>`.
    instance: String,
    /// Whether GET /log/checkpoint serves `cosigned` instead of the head.
    serve_cosigned: bool,
    /// The newest checkpoint with enough witness cosignatures (set by [`witnessing`]).
    cosigned: RwLock<Option<Served>>,
    /// Where the writer commits (on SQLite a connection of its own), for tests to look at.
    #[cfg(test)]
    writer_db: Db,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The log signer from the hub's PKCS#8 v2 Ed25519 signing key (as `hub keygen` writes it), named
/// by the origin. Checks that the extracted seed gives the key's public key.
pub fn signer_from_pkcs8(origin: &str, der: &[u8]) -> Result<Signer, LogError> {
    let bad = || LogError::Corrupt("signing key: not an Ed25519 PKCS#8 v2 key".into());
    let pos = der
        .windows(4)
        .position(|w| w == [0x04, 0x22, 0x04, 0x20])
        .ok_or_else(bad)?;
    let seed: [u8; 32] = der
        .get(pos + 4..pos + 36)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(bad)?;
    let signer = Signer::from_seed(origin, seed)?;
    let pair =
        ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| bad())?;
    use ring::signature::KeyPair as _;
    if signer.verifier_key().public_key().as_slice() != pair.public_key().as_ref() {
        return Err(bad());
    }
    Ok(signer)
}

/// Writes the log's verifier key (`<name>+<hex id>+<base64>` and a newline) for auditors, e.g. the
/// demo's `DIR/log.vkey`.
pub fn write_vkey_file(
    signing_key: &std::path::Path,
    origin: &str,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let der = std::fs::read(signing_key)
        .with_context(|| format!("{}: cannot read", signing_key.display()))?;
    let signer = signer_from_pkcs8(origin, &der)?;
    std::fs::write(out, format!("{}\n", signer.verifier_key()))
        .with_context(|| format!("{}: cannot write", out.display()))?;
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    crate::store::now_ms()
}

/// Unix milliseconds of an entry's time.
pub fn entry_time_ms(e: &AccessLogEntry) -> i64 {
    (e.time.unix_timestamp_nanos() / 1_000_000) as i64
}

fn action_code(e: &AccessLogEntry) -> String {
    serde_json::to_value(e.action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The stored-hash indexes of the maximal complete subtrees of a tree of `size` leaves: all that
/// later appends need from earlier ones, and all a root needs.
pub fn frontier_indexes(size: u64) -> Vec<u64> {
    (0..64u32)
        .rev()
        .filter(|l| size >> l & 1 == 1)
        .map(|l| stored_hash_index(l, (size >> l) - 1).0)
        .collect()
}

/// A [`HashReader`] over a map of stored hashes.
struct MapReader<'a>(&'a HashMap<u64, Hash>);

impl HashReader for MapReader<'_> {
    fn read_hashes(&self, indexes: &[StoredHashIndex]) -> tlog::Result<Vec<Hash>> {
        indexes
            .iter()
            .map(|i| {
                self.0
                    .get(&i.0)
                    .copied()
                    .ok_or_else(|| tlog::Error::Reader(format!("stored hash {} missing", i.0)))
            })
            .collect()
    }
}

/// Records the indexes asked for, answering zeros (first pass of [`with_db_reader`]).
struct Recorder(RefCell<Vec<u64>>);

impl HashReader for Recorder {
    fn read_hashes(&self, indexes: &[StoredHashIndex]) -> tlog::Result<Vec<Hash>> {
        self.0.borrow_mut().extend(indexes.iter().map(|i| i.0));
        Ok(vec![Hash([0; 32]); indexes.len()])
    }
}

/// Runs a synchronous tlog computation against stored hashes in the database: a first pass records
/// which indexes it reads (they depend only on sizes and indices, never on hash values), then they
/// are fetched in one query and the computation runs again on them.
pub async fn with_db_reader<T>(
    db: &Db,
    f: impl Fn(&dyn HashReader) -> tlog::Result<T>,
) -> Result<T, LogError> {
    let rec = Recorder(RefCell::new(Vec::new()));
    f(&rec)?;
    let mut ids = rec.0.into_inner();
    ids.sort_unstable();
    ids.dedup();
    let map = store::read_hashes(db, &ids).await?;
    Ok(f(&MapReader(&map))?)
}

impl AccessLog {
    /// Opens the log on `db`: creates the head if the log is empty, verifies the stored checkpoint
    /// with the configured key and origin for exactly the head's size and root, checks the head
    /// against the stored hashes (crash recovery: the head and its hashes commit together), audits
    /// the stored tree against the signed root (`opts.startup_audit`), takes the lease, and starts
    /// the writer task. Any failure refuses to start, and nothing is signed over an unverified
    /// state: a key or origin change needs `hub log rotate` (see [`integrity`]).
    pub async fn start(
        db: Db,
        signer: Signer,
        opts: LogOptions,
    ) -> Result<Arc<AccessLog>, LogError> {
        let origin = signer.name().to_owned();
        let vkey = signer.verifier_key();
        let empty = Checkpoint::new(&origin, 0, tlog::hash::empty_root())?.sign(&signer)?;
        store::init_head(&db, &empty).await?;
        // One statement reads the head and where entries and hashes end: a consistent view even
        // while other replicas append.
        let (head, max_idx, max_hash) = store::read_head_with_max(&db).await?;
        integrity::verify_note(&head.note, &origin, &vkey, head.size, head.root)
            .map_err(|why| integrity::unverified(&head, &vkey, &origin, why))?;
        let frontier = Self::check_head_at(&db, &head, max_idx, max_hash).await?;
        integrity::audit(&db, &head, opts.startup_audit, opts.startup_audit_samples).await?;
        let shared = matches!(db, Db::Postgres(_));
        if !shared {
            let now = now_ms();
            let lease_until = now + opts.lease.as_millis() as i64;
            let have_lease = store::acquire_lease(&db, &opts.replica_id, lease_until, now).await?;
            if !have_lease {
                tracing::warn!(holder = %head.lease_holder, "access log: another replica holds the sequencer lease");
            }
        }
        let witnesses = WitnessPolicy {
            witnesses: opts.witnesses.clone(),
            quorum: 0,
        };
        let served = Arc::new(RwLock::new(Served {
            size: head.size,
            root: head.root,
            note: head.note.clone(),
        }));
        let cache = Arc::new(Mutex::new(HashCache::default()));
        lock(&cache).remember(&frontier);
        let (tx, rx) = mpsc::channel(opts.max_batch.max(1) * 4);
        let (size_tx, size_rx) = watch::channel(head.size);
        let size_tx = Arc::new(size_tx);
        let serve_cosigned = opts.serve_cosigned;
        let instance = opts.instance.clone();
        let refresh = opts.head_refresh;
        // SQLite: the writer commits on a connection of its own, and the WAL is checkpointed
        // beside it rather than inside its commits (see `store::sqlite::dedicated_writer`).
        let writer_db = match &db {
            Db::Sqlite(pool) => {
                let own = crate::store::sqlite::dedicated_writer(pool).await?;
                tokio::spawn(crate::store::sqlite::checkpoint_in_background(
                    pool.clone(),
                    size_tx.subscribe(),
                    CHECKPOINT_EVERY,
                ));
                Db::Sqlite(own)
            }
            Db::Postgres(_) => db.clone(),
        };
        let writer = Writer {
            #[cfg(not(test))]
            db: writer_db,
            #[cfg(test)]
            db: writer_db.clone(),
            signer,
            opts,
            size: head.size,
            note: head.note.clone(),
            frontier,
            served: served.clone(),
            size_tx: size_tx.clone(),
            cache: cache.clone(),
        };
        tokio::spawn(writer.run(rx));
        tracing::info!(size = head.size, origin = %origin, replica = %instance, "access log open");
        let log = Arc::new(AccessLog {
            db,
            tx,
            head: served,
            cache,
            vkey,
            origin,
            witnesses,
            size_rx,
            size_tx,
            instance,
            serve_cosigned,
            cosigned: RwLock::new(None),
            #[cfg(test)]
            writer_db,
        });
        if shared {
            tokio::spawn(refresh_task(Arc::downgrade(&log), refresh));
        }
        Ok(log)
    }

    /// Verifies that the head matches the stored hashes and entries; returns the frontier.
    pub(crate) async fn check_head(db: &Db, head: &Head) -> Result<HashMap<u64, Hash>, LogError> {
        let (max_idx, max_hash) = store::max_indexes(db).await?;
        Self::check_head_at(db, head, max_idx, max_hash).await
    }

    /// [`AccessLog::check_head`] with the highest entry and stored-hash indexes already read (in
    /// the same statement as the head).
    async fn check_head_at(
        db: &Db,
        head: &Head,
        max_idx: Option<i64>,
        max_hash: Option<i64>,
    ) -> Result<HashMap<u64, Hash>, LogError> {
        let want_idx = head.size.checked_sub(1).map(|v| v as i64);
        let want_hash = stored_hash_count(head.size)
            .checked_sub(1)
            .map(|v| v as i64);
        if max_idx != want_idx || max_hash != want_hash {
            return Err(LogError::Corrupt(format!(
                "head size {} but entries end at {max_idx:?} and stored hashes at {max_hash:?}",
                head.size
            )));
        }
        let ids = frontier_indexes(head.size);
        let frontier = store::read_hashes(db, &ids).await?;
        let root = tlog::stored::tree_hash(head.size, &MapReader(&frontier))?;
        if root != head.root {
            return Err(LogError::Corrupt(format!(
                "root recomputed from stored hashes differs from the head at size {}",
                head.size
            )));
        }
        if head.size > 0 {
            let last = store::read_entries(db, head.size - 1, head.size).await?;
            let leaf_id = stored_hash_index(0, head.size - 1).0;
            let stored = store::read_hashes(db, &[leaf_id]).await?;
            if last.len() != 1 || stored.get(&leaf_id) != Some(&tlog::hash::leaf_hash(&last[0])) {
                return Err(LogError::Corrupt(format!(
                    "entry {} does not match its stored leaf hash",
                    head.size - 1
                )));
            }
        }
        Ok(frontier)
    }

    /// Appends one entry; returns once it is durable (committed with a checkpoint covering it).
    /// The entry is normalized and validated first (a bad entry is refused with the field named).
    pub async fn append(&self, entry: AccessLogEntry) -> Result<Appended, LogError> {
        one(self.append_group(vec![entry], None).await)
    }

    /// Appends one entry and makes `attached` durable in the same transaction (the group commit
    /// shared with every append queued meanwhile); returns once both are durable. The attached
    /// work's own outcome (it may have rolled back its writes) is for the caller to read then.
    pub async fn append_with(
        &self,
        entry: AccessLogEntry,
        attached: Box<dyn Attached>,
    ) -> Result<Appended, LogError> {
        one(self.append_group(vec![entry], Some(attached)).await)
    }

    /// Appends several entries in one slot of the writer's batch (one commit, all or nothing);
    /// returns once durable, with their places in the order given. An empty group is refused.
    pub async fn append_many(
        &self,
        entries: Vec<AccessLogEntry>,
    ) -> Result<Vec<Appended>, LogError> {
        if entries.is_empty() {
            return Err(LogError::BadRequest {
                field: "entries",
                rule: "a group needs at least one entry".into(),
            });
        }
        self.append_group(entries, None).await
    }

    /// Appends several entries and makes `attached` durable with them, all or nothing: the group
    /// takes one slot of the writer's batch (it is never split), so its entries, its attached work
    /// and every append queued meanwhile commit in ONE transaction; returns once that committed,
    /// with the entries' places in the order given. The attached work learns the indexes (and,
    /// if it asks, receipts against the new checkpoint) before it writes ([`Attached`]). An empty
    /// group is refused.
    pub async fn append_many_with(
        &self,
        entries: Vec<AccessLogEntry>,
        attached: Box<dyn Attached>,
    ) -> Result<Vec<Appended>, LogError> {
        if entries.is_empty() {
            return Err(LogError::BadRequest {
                field: "entries",
                rule: "a group needs at least one entry".into(),
            });
        }
        self.append_group(entries, Some(attached)).await
    }

    /// Makes `work` durable in the writer's next group commit without an entry of its own: it runs
    /// in the batch transaction shared with every append queued meanwhile (in its own savepoint,
    /// see [`Attached`]), or, when nothing else is queued, in a transaction of its own; returns
    /// once that committed. For durable work that must precede any entry, e.g. the anti-trawling
    /// lookups counted before anyone is asked ([`crate::ratelimit::RateLimits::note_lookup_logged`]):
    /// it costs a share of a group commit, not a commit and a write lock of its own. It is told no
    /// indexes and gets no receipts (one that asks for them is refused).
    pub async fn attach(&self, work: Box<dyn Attached>) -> Result<(), LogError> {
        if work.receipts_for().is_some() {
            return Err(LogError::BadRequest {
                field: "attached",
                rule: "work without entries gets no receipts".into(),
            });
        }
        self.append_group(Vec::new(), Some(work)).await.map(|_| ())
    }

    async fn append_group(
        &self,
        entries: Vec<AccessLogEntry>,
        attached: Option<Box<dyn Attached>>,
    ) -> Result<Vec<Appended>, LogError> {
        if let Some(earlier) = attached.as_ref().and_then(|a| a.receipts_for())
            && let Some(max) = earlier.iter().max()
        {
            // Receipts only for entries already durable: a bad index must not fail the batch.
            let head = self.head_at_least(max.saturating_add(1)).await?;
            if *max >= head.size {
                return Err(LogError::BadRequest {
                    field: "index",
                    rule: format!("need index < size <= {} (got {max})", head.size),
                });
            }
        }
        let mut rows = Vec::with_capacity(entries.len());
        for mut entry in entries {
            entry.normalize();
            let data = entry.encode()?;
            let leaf = tlog::hash::leaf_hash(&data);
            let row = EntryRow {
                index: 0,
                time_ms: entry_time_ms(&entry),
                actor: entry.actor.principal.clone(),
                action: action_code(&entry),
                case_ref: entry.case_ref.clone(),
                subjects: entry
                    .subjects
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect(),
                data,
            };
            rows.push((row, leaf));
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(AppendRequest {
                rows,
                attached,
                reply,
            })
            .await
            .map_err(|_| LogError::Stopped)?;
        rx.await.map_err(|_| LogError::Stopped)?
    }

    /// The database the log lives in.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The log's origin (also its key name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key (`<name>+<hex id>+<base64>`).
    pub fn vkey(&self) -> &VerifierKey {
        &self.vkey
    }

    /// The configured witness policy.
    pub fn witness_policy(&self) -> &WitnessPolicy {
        &self.witnesses
    }

    /// This process's replica identity, `<replica_id>#<pid>`.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Re-reads the head from the database (another replica may have appended) and serves it if it
    /// is larger than the served one and its checkpoint verifies with our key and origin. Returns
    /// the head served afterwards.
    pub async fn refresh_head(&self) -> Result<Served, LogError> {
        let head = store::read_head(&self.db).await?;
        if head.size > self.head().size {
            integrity::verify_note(&head.note, &self.origin, &self.vkey, head.size, head.root)
                .map_err(|why| {
                    LogError::Unverified(format!(
                        "the log head read from the database (size {}) does not verify with this \
                         replica's key and origin ({why}); not serving it",
                        head.size
                    ))
                })?;
            publish(
                &self.head,
                &self.size_tx,
                Served {
                    size: head.size,
                    root: head.root,
                    note: head.note,
                },
            );
        }
        Ok(self.head())
    }

    /// The served head if it covers `size` entries, else the head re-read from the database
    /// ([`AccessLog::refresh_head`]): a read about entries another replica appended is answered
    /// without waiting for the periodic refresh.
    pub async fn head_at_least(&self, size: u64) -> Result<Served, LogError> {
        let head = self.head();
        if head.size >= size {
            return Ok(head);
        }
        self.refresh_head().await
    }

    /// Wakes on every new head (its value is the head's size).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.size_rx.clone()
    }

    /// The checkpoint GET /log/checkpoint serves: with witnesses asked to cosign, the newest
    /// checkpoint that has enough cosignatures (the log note with their lines appended), or the
    /// head until the first one has them; otherwise the head.
    pub fn served_checkpoint(&self) -> String {
        if self.serve_cosigned
            && let Some(c) = self.cosigned()
        {
            return c.note;
        }
        self.head().note
    }

    /// Publishes a cosigned checkpoint (the witnessing task); an older one than the published one
    /// is ignored.
    pub fn publish_cosigned(&self, cosigned: Served) {
        let mut slot = self.cosigned.write().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|s| s.size <= cosigned.size) {
            metrics::gauge!("hub_log_cosigned_size").set(cosigned.size as f64);
            *slot = Some(cosigned);
        }
    }

    /// The newest published cosigned checkpoint, if any.
    pub fn cosigned(&self) -> Option<Served> {
        self.cosigned
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current head (size, root, signed checkpoint).
    pub fn head(&self) -> Served {
        self.head
            .read()
            .map(|h| h.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Inclusion proof of entry `index` in the tree of size `size`.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        let cur = self.head_at_least(size).await?.size;
        if size > cur || index >= size {
            return Err(LogError::BadRequest {
                field: "index",
                rule: format!("need index < size <= {cur}"),
            });
        }
        self.with_reader(|r| tlog::proof::prove_record(size, index, r))
            .await
    }

    /// Consistency proof from size `old` to size `new`.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        let cur = self.head_at_least(new).await?.size;
        if old > new || new > cur {
            return Err(LogError::BadRequest {
                field: "old",
                rule: format!("need old <= new <= {cur}"),
            });
        }
        if old == 0 || old == new {
            return Ok(Vec::new());
        }
        self.with_reader(|r| tlog::proof::prove_tree(new, old, r))
            .await
    }

    /// A `c2sp.org/tlog-proof@v1` receipt for entry `index` against the current checkpoint.
    pub async fn receipt(&self, index: u64) -> Result<tlog::Receipt, LogError> {
        let mut r = self.receipts(&[index]).await?;
        r.pop()
            .ok_or_else(|| LogError::Corrupt("no receipt computed".into()))
    }

    /// Receipts for several entries, all against ONE checkpoint (the current one): one snapshot of
    /// the head and one pass over the stored hashes (from memory for recent entries) for them all.
    /// Same order as `indexes`.
    pub async fn receipts(&self, indexes: &[u64]) -> Result<Vec<tlog::Receipt>, LogError> {
        let want = indexes.iter().max().map_or(0, |i| i.saturating_add(1));
        let head = self.head_at_least(want).await?;
        if let Some(bad) = indexes.iter().find(|i| **i >= head.size) {
            return Err(LogError::BadRequest {
                field: "index",
                rule: format!("need index < size <= {} (got {bad})", head.size),
            });
        }
        let proofs = self
            .with_reader(|r| {
                indexes
                    .iter()
                    .map(|i| tlog::proof::prove_record(head.size, *i, r))
                    .collect::<tlog::Result<Vec<_>>>()
            })
            .await?;
        Ok(indexes
            .iter()
            .zip(proofs)
            .map(|(index, proof)| tlog::Receipt {
                extra: None,
                index: *index,
                proof,
                checkpoint: head.note.clone(),
            })
            .collect())
    }

    /// Runs a synchronous tlog computation on stored hashes: from the in-memory cache when it has
    /// them all (the usual case for recent entries), else with the missing ones read from the
    /// database in one query (see [`with_db_reader`]).
    pub async fn with_reader<T>(
        &self,
        f: impl Fn(&dyn HashReader) -> tlog::Result<T>,
    ) -> Result<T, LogError> {
        let rec = Recorder(RefCell::new(Vec::new()));
        {
            let cache = lock(&self.cache);
            if let Ok(v) = f(&CacheReader(&cache)) {
                return Ok(v);
            }
            // Only a miss fails the cache pass; other errors show again in the full pass.
            f(&rec)?;
        }
        let mut ids = rec.0.into_inner();
        ids.sort_unstable();
        ids.dedup();
        let mut map = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let cache = lock(&self.cache);
            for id in ids {
                match cache.get(id) {
                    Some(h) => {
                        map.insert(id, h);
                    }
                    None => missing.push(id),
                }
            }
        }
        if !missing.is_empty() {
            let got = store::read_hashes(&self.db, &missing).await?;
            lock(&self.cache).remember(&got);
            map.extend(got);
        }
        Ok(f(&MapReader(&map))?)
    }
}

/// The one place of a one-entry group.
fn one(r: Result<Vec<Appended>, LogError>) -> Result<Appended, LogError> {
    r?.into_iter()
        .next()
        .ok_or_else(|| LogError::Corrupt("a committed group has no entry".into()))
}

/// Locks the cache; a poisoned lock still holds valid hashes (they are only ever added whole).
fn lock(cache: &Mutex<HashCache>) -> std::sync::MutexGuard<'_, HashCache> {
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `new` as the head and wakes the watchers, unless the served head is already as large
/// (the writer and the refresh both publish; the served size never goes back).
fn publish(served: &RwLock<Served>, size_tx: &watch::Sender<u64>, new: Served) {
    let size = new.size;
    {
        let mut s = served.write().unwrap_or_else(|p| p.into_inner());
        if s.size >= size {
            return;
        }
        *s = new;
    }
    size_tx.send_if_modified(|v| {
        if *v < size {
            *v = size;
            true
        } else {
            false
        }
    });
}

/// PostgreSQL: re-reads the head every `every` so that the served checkpoint, tiles, watchers and
/// the witness cosigner follow what other replicas append. Ends when the log is dropped.
async fn refresh_task(log: std::sync::Weak<AccessLog>, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(log) = log.upgrade() else { return };
        if let Err(e) = log.refresh_head().await {
            tracing::warn!(error = %e, "access log: head refresh failed");
        }
    }
}

/// The single writer task of this process (on PostgreSQL one of several, serialized by the head
/// row lock).
struct Writer {
    db: Db,
    signer: Signer,
    opts: LogOptions,
    /// The head this writer last committed or loaded.
    size: u64,
    note: String,
    /// Stored hashes of the maximal complete subtrees at `size`.
    frontier: HashMap<u64, Hash>,
    served: Arc<RwLock<Served>>,
    /// Tells the witnessing task (and anyone subscribed) about each new head.
    size_tx: Arc<watch::Sender<u64>>,
    cache: Arc<Mutex<HashCache>>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<AppendRequest>) {
        let max = self.opts.max_batch.max(1);
        let mut batch = Vec::with_capacity(max);
        while let Some(first) = rx.recv().await {
            // A group counts its entries (work without entries counts as one); one larger than
            // `max` still goes, alone.
            let mut entries = first.rows.len().max(1);
            batch.push(first);
            while entries < max {
                match rx.try_recv() {
                    Ok(r) => {
                        entries += r.rows.len().max(1);
                        batch.push(r);
                    }
                    Err(_) => break,
                }
            }
            let result = self.commit(&mut batch).await;
            match result {
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(error = %e, groups = batch.len(), "access log batch failed");
                    metrics::counter!("hub_log_batch_failures_total").increment(1);
                    if let Err(e2) = self.reload().await {
                        tracing::error!(error = %e2, "access log: reload after failure failed");
                    }
                    let shared = Arc::new(e);
                    for r in batch.drain(..) {
                        let err = match shared.as_ref() {
                            LogError::NotSequencer => LogError::NotSequencer,
                            other => LogError::Corrupt(format!("append not committed: {other}")),
                        };
                        let _ = r.reply.send(Err(err));
                    }
                }
            }
        }
    }

    /// After a failed batch: adopt the database's head (another replica may have appended) only if
    /// its checkpoint verifies with our key and origin and the newest entries check against it,
    /// so the writer never extends a state it has not verified.
    async fn reload(&mut self) -> Result<(), LogError> {
        let (head, max_idx, max_hash) = store::read_head_with_max(&self.db).await?;
        let vkey = self.signer.verifier_key();
        integrity::verify_note(&head.note, self.signer.name(), &vkey, head.size, head.root)
            .map_err(|why| integrity::unverified(&head, &vkey, self.signer.name(), why))?;
        let frontier = AccessLog::check_head_at(&self.db, &head, max_idx, max_hash).await?;
        integrity::audit(&self.db, &head, StartupAudit::Recent, 0).await?;
        self.frontier = frontier;
        lock(&self.cache).remember(&self.frontier);
        self.size = head.size;
        self.note = head.note.clone();
        publish(
            &self.served,
            &self.size_tx,
            Served {
                size: head.size,
                root: head.root,
                note: head.note,
            },
        );
        Ok(())
    }

    /// Takes the head, sequences, hashes, signs and commits `batch` (see
    /// [`store::commit_batch`]); replies to every caller on success.
    async fn commit(&mut self, batch: &mut Vec<AppendRequest>) -> Result<(), LogError> {
        if batch.iter().all(|r| r.rows.is_empty()) {
            return self.commit_attached(batch).await;
        }
        let shared = matches!(self.db, Db::Postgres(_));
        let now = now_ms();
        let holder = if shared {
            self.opts.instance.as_str()
        } else {
            self.opts.replica_id.as_str()
        };
        let gate = store::Gate {
            holder,
            // PostgreSQL: no lease, `lease_holder` only records the last sequencer.
            lease_expires_ms: if shared {
                now
            } else {
                now + self.opts.lease.as_millis() as i64
            },
            now_ms: now,
            sequencer_timeout_ms: self.opts.sequencer_timeout.as_millis() as u64,
            known_size: self.size,
            known_note: &self.note,
        };
        let signer = &self.signer;
        let mine = &self.frontier;
        // Each group's indexes, in batch order (filled by `prepare`).
        let mut places: Vec<Vec<u64>> = Vec::with_capacity(batch.len());
        let prepare = |locked: store::Locked| -> Result<store::Prepared, LogError> {
            let old = locked.size;
            let mut overlay = match locked.frontier {
                None => mine.clone(),
                Some(theirs) => {
                    // Another replica moved the head: extend only a checkpoint that verifies with
                    // our key and origin and whose root the stored frontier reproduces.
                    let vkey = signer.verifier_key();
                    integrity::verify_note(&locked.note, signer.name(), &vkey, old, locked.root)
                        .map_err(|why| {
                            LogError::Unverified(format!(
                                "the locked log head (size {old}) does not verify: {why}"
                            ))
                        })?;
                    if tlog::stored::tree_hash(old, &MapReader(&theirs))? != locked.root {
                        return Err(LogError::Corrupt(format!(
                            "the stored frontier at size {old} does not give the head's root"
                        )));
                    }
                    theirs
                }
            };
            let count: usize = batch.iter().map(|r| r.rows.len()).sum();
            let mut hashes = Vec::with_capacity(count * 2);
            let mut rows = Vec::with_capacity(count);
            let mut attached = Vec::new();
            let mut n = old;
            for r in batch.iter_mut() {
                let mut indexes = Vec::with_capacity(r.rows.len());
                for (mut row, leaf) in r.rows.drain(..) {
                    let new =
                        tlog::stored::stored_hashes_for_record_hash(n, leaf, &MapReader(&overlay))?;
                    let base = stored_hash_count(n);
                    for (k, h) in new.into_iter().enumerate() {
                        overlay.insert(base + k as u64, h);
                        hashes.push((base + k as u64, h));
                    }
                    row.index = n;
                    rows.push(row);
                    indexes.push(n);
                    n += 1;
                }
                if let Some(work) = r.attached.take() {
                    attached.push(store::Group {
                        prove: work.receipts_for(),
                        placed: Placed {
                            indexes: indexes.clone(),
                            checkpoint_size: 0,
                            receipts: Vec::new(),
                        },
                        work,
                    });
                }
                places.push(indexes);
            }
            let new_size = n;
            for g in &mut attached {
                g.placed.checkpoint_size = new_size;
            }
            let root = tlog::stored::tree_hash(new_size, &MapReader(&overlay))?;
            let note = Checkpoint::new(signer.name(), new_size, root)?.sign(signer)?;
            let frontier = frontier_indexes(new_size)
                .into_iter()
                .filter_map(|id| overlay.get(&id).map(|h| (id, *h)))
                .collect();
            Ok(store::Prepared {
                old_size: old,
                new_size,
                root,
                note,
                entries: rows,
                hashes,
                frontier,
                attached,
            })
        };
        let Some(done) = store::commit_batch(&self.db, &gate, &self.cache, prepare).await? else {
            return Err(LogError::NotSequencer);
        };
        let (old, new_size) = (done.old_size, done.new_size);
        if old != self.size {
            metrics::counter!("hub_log_head_moved_total").increment(1);
        }
        self.size = new_size;
        self.note = done.note.clone();
        // Durable now: the hashes may serve proofs (before the new head is published).
        lock(&self.cache).extend(stored_hash_count(old), done.hashes.iter().map(|(_, h)| *h));
        self.frontier = done.frontier;
        publish(
            &self.served,
            &self.size_tx,
            Served {
                size: new_size,
                root: done.root,
                note: done.note,
            },
        );
        let entries = new_size - old;
        metrics::counter!("hub_log_entries_total").increment(entries);
        metrics::histogram!("hub_log_batch_size").record(entries as f64);
        for (r, indexes) in batch.drain(..).zip(places) {
            let _ = r.reply.send(Ok(indexes
                .into_iter()
                .map(|index| Appended {
                    index,
                    checkpoint_size: new_size,
                })
                .collect()));
        }
        Ok(())
    }
}

impl Writer {
    /// A batch of work without entries ([`AccessLog::attach`]): no head, no checkpoint, one
    /// transaction for the works (see [`store::commit_attached`]); replies to every caller once
    /// it committed.
    async fn commit_attached(&mut self, batch: &mut Vec<AppendRequest>) -> Result<(), LogError> {
        let groups = batch
            .iter_mut()
            .filter_map(|r| r.attached.take())
            .map(|work| store::Group {
                prove: None,
                placed: Placed {
                    indexes: Vec::new(),
                    checkpoint_size: self.size,
                    receipts: Vec::new(),
                },
                work,
            })
            .collect();
        store::commit_attached(&self.db, groups).await?;
        for r in batch.drain(..) {
            let _ = r.reply.send(Ok(Vec::new()));
        }
        Ok(())
    }
}

impl AccessLog {
    /// Starts the log from the hub configuration (`[log]` and the signing key file).
    pub async fn start_from_config(
        config: &crate::config::Config,
        db: Db,
    ) -> anyhow::Result<Arc<AccessLog>> {
        use anyhow::Context as _;
        let der = std::fs::read(&config.keys.signing_key)
            .with_context(|| format!("{}: cannot read", config.keys.signing_key.display()))?;
        let signer = signer_from_pkcs8(&config.log.origin, &der)
            .map_err(|e| anyhow::anyhow!("log.origin / keys.signing_key: {e}"))?;
        let mut witnesses = Vec::new();
        for (i, w) in config.log.witnesses.iter().enumerate() {
            let k =
                VerifierKey::parse(w).map_err(|e| anyhow::anyhow!("log.witnesses[{i}]: {e}"))?;
            witnesses.push(k);
        }
        for (i, w) in config.log.witness_endpoints.iter().enumerate() {
            let k = VerifierKey::parse(&w.vkey)
                .map_err(|e| anyhow::anyhow!("log.witness_endpoints[{i}].vkey: {e}"))?;
            if !witnesses.contains(&k) {
                witnesses.push(k);
            }
        }
        let opts = LogOptions {
            max_batch: config.log.max_batch.max(1),
            replica_id: config.log.replica_id.clone(),
            instance: format!("{}#{}", config.log.replica_id, std::process::id()),
            sequencer_timeout: Duration::from_millis(config.log.sequencer_timeout_ms.max(100)),
            head_refresh: Duration::from_millis(config.log.head_refresh_ms.max(50)),
            lease: Duration::from_millis(config.log.lease_ms.max(1000)),
            witnesses,
            serve_cosigned: !config.log.witness_endpoints.is_empty(),
            startup_audit: config.log.startup_audit,
            startup_audit_samples: config.log.startup_audit_samples,
        };
        Ok(AccessLog::start(db, signer, opts).await?)
    }
}

#[cfg(test)]
mod tests;
