//! SQL for the access log on both backends (SQLite and PostgreSQL): the same statement text runs on
//! both (`$N` placeholders, unix-millisecond integers, BLOB/BYTEA hashes). Only this file writes the
//! log tables.

use crate::store::BeginWrite as _;
use std::collections::HashMap;

use sqlx::{QueryBuilder, Row};
use tlog::Hash;

use crate::store::{Db, on_db};

use super::{LogError, TxConn};

impl<'a> From<&'a mut sqlx::SqliteConnection> for TxConn<'a> {
    fn from(c: &'a mut sqlx::SqliteConnection) -> Self {
        TxConn::Sqlite(c)
    }
}

impl<'a> From<&'a mut sqlx::PgConnection> for TxConn<'a> {
    fn from(c: &'a mut sqlx::PgConnection) -> Self {
        TxConn::Postgres(c)
    }
}

/// Rows per multi-row INSERT (6 parameters each keeps every statement below both backends' limits).
///
/// Every statement whose text depends on a count (a multi-row INSERT of one batch, an `IN (…)` of
/// so many ids) is run with `.persistent(false)`: prepared, run and finalized, never kept in the
/// connection's statement cache. Cached, each batch size became one more prepared statement per
/// pooled connection (up to sqlx's 100 a connection, tens of KB each for a large INSERT): the hub's
/// memory grew by about 30 MB over a two-minute soak, all of it SQLite statements (heaptrack).
const CHUNK: usize = 1000;

/// The persisted head: tree size, root, latest signed checkpoint and the sequencer lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub size: u64,
    pub root: Hash,
    pub note: String,
    pub lease_holder: String,
    pub lease_expires_ms: i64,
}

/// One entry ready to be written.
#[derive(Debug, Clone)]
pub struct EntryRow {
    pub index: u64,
    pub data: Vec<u8>,
    pub time_ms: i64,
    pub actor: String,
    pub action: String,
    pub case_ref: Option<String>,
    pub subjects: Vec<String>,
}

/// How a batch transaction takes the head (see [`commit_batch`]).
#[derive(Debug, Clone)]
pub struct Gate<'a> {
    /// Written to `lease_holder` (the replica that sequenced the last batch).
    pub holder: &'a str,
    pub lease_expires_ms: i64,
    pub now_ms: i64,
    /// PostgreSQL: the transaction's `idle_in_transaction_session_timeout`; waiting for the head
    /// lock gives up after three times this (`lock_timeout`).
    pub sequencer_timeout_ms: u64,
    /// The head the writer last committed or loaded (size and note): when the locked head differs,
    /// the frontier is read inside the transaction.
    pub known_size: u64,
    pub known_note: &'a str,
}

/// The head as the batch transaction locked it; `frontier` is present when it moved since the
/// writer's last batch (another replica appended), read inside the same transaction.
#[derive(Debug, Clone)]
pub struct Locked {
    pub size: u64,
    pub root: Hash,
    pub note: String,
    pub frontier: Option<HashMap<u64, Hash>>,
}

/// What one batch commits, computed by the writer once the head is locked.
pub struct Prepared {
    pub old_size: u64,
    pub new_size: u64,
    pub root: Hash,
    pub note: String,
    pub entries: Vec<EntryRow>,
    pub hashes: Vec<(u64, Hash)>,
    /// Stored hashes of the maximal complete subtrees at `new_size`.
    pub frontier: HashMap<u64, Hash>,
    pub attached: Vec<Group>,
}

/// One group's attached work in a batch: where its entries landed, and which receipts it wants.
pub struct Group {
    pub placed: super::Placed,
    /// [`super::Attached::receipts_for`], asked once when the batch is prepared.
    pub prove: Option<Vec<u64>>,
    pub work: Box<dyn super::Attached>,
}

fn hash_from(field: &'static str, bytes: &[u8]) -> Result<Hash, LogError> {
    Hash::from_slice(field, bytes).map_err(|e| LogError::Corrupt(e.to_string()))
}

/// A size or index as the databases' signed 64-bit integer (saturating).
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Creates the head row (size 0, signed `empty_note`) if absent, but only over an empty log: a
/// missing head with entries, stored hashes, checkpoints or rotations present is refused (a
/// deleted head must not earn a fresh signature over existing history).
pub async fn init_head(db: &Db, empty_note: &str) -> Result<(), LogError> {
    let root = tlog::hash::empty_root().0.to_vec();
    on_db!(db, pool, DB => {
        let mut tx = pool.begin_write().await?;
        let heads: i64 = sqlx::query("SELECT COUNT(*) FROM log_head").fetch_one(&mut *tx).await?.try_get(0)?;
        if heads > 0 {
            tx.rollback().await?;
            return Ok(());
        }
        let rest: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM log_entries LIMIT 1) a) \
                  + (SELECT COUNT(*) FROM (SELECT 1 FROM log_hashes LIMIT 1) b) \
                  + (SELECT COUNT(*) FROM (SELECT 1 FROM log_checkpoints LIMIT 1) c) \
                  + (SELECT COUNT(*) FROM (SELECT 1 FROM log_rotations LIMIT 1) d)",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if rest > 0 {
            tx.rollback().await?;
            return Err(LogError::Unverified(
                "the log head row is missing but entries, stored hashes, checkpoints or rotations \
                 exist: refusing to start and signing nothing (restore the database and run \
                 `hub audit verify`)"
                    .into(),
            ));
        }
        sqlx::query(
            "INSERT INTO log_head (id, size, root, note, lease_holder, lease_expires_ms) \
             VALUES (1, 0, $1, $2, '', 0) ON CONFLICT (id) DO NOTHING",
        )
        .bind(root)
        .bind(empty_note)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Reads the head.
pub async fn read_head(db: &Db) -> Result<Head, LogError> {
    read_head_opt(db)
        .await?
        .ok_or_else(|| LogError::Corrupt("the log head row is missing".into()))
}

/// Reads the head, `None` when the row is absent.
pub async fn read_head_opt(db: &Db) -> Result<Option<Head>, LogError> {
    let sql = "SELECT size, root, note, lease_holder, lease_expires_ms FROM log_head WHERE id = 1";
    let row: Option<(i64, Vec<u8>, String, String, i64)> = on_db!(db, pool, DB => {
        match sqlx::query(sql).fetch_optional(pool).await? {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)),
            None => None,
        }
    });
    let Some((size, root, note, holder, exp)) = row else {
        return Ok(None);
    };
    Ok(Some(Head {
        size: u64::try_from(size).map_err(|_| LogError::Corrupt("head size negative".into()))?,
        root: hash_from("head.root", &root)?,
        note,
        lease_holder: holder,
        lease_expires_ms: exp,
    }))
}

/// Takes or renews the sequencer lease if it is free, expired or already ours. Returns whether we
/// hold it.
pub async fn acquire_lease(
    db: &Db,
    holder: &str,
    expires_ms: i64,
    now_ms: i64,
) -> Result<bool, LogError> {
    let sql = "UPDATE log_head SET lease_holder = $1, lease_expires_ms = $2 \
               WHERE id = 1 AND (lease_holder = $1 OR lease_holder = '' OR lease_expires_ms < $3)";
    let n = on_db!(db, pool, DB => {
        sqlx::query(sql).bind(holder).bind(expires_ms).bind(now_ms).execute(pool).await?.rows_affected()
    });
    Ok(n == 1)
}

/// Records a key/origin rotation: replaces the head's note (compare-and-swap on the size and the
/// old note, releasing the lease) and inserts the `log_rotations` row, in one transaction. Returns
/// the row id, or `None` when the head changed meanwhile (nothing written).
pub async fn record_rotation(
    db: &Db,
    r: &super::integrity::Rotation,
) -> Result<Option<i64>, LogError> {
    on_db!(db, pool, DB => {
        let mut tx = pool.begin_write().await?;
        let n = sqlx::query(
            "UPDATE log_head SET note = $1, lease_holder = '', lease_expires_ms = 0 \
             WHERE id = 1 AND size = $2 AND note = $3",
        )
        .bind(&r.new_note)
        .bind(to_i64(r.size))
        .bind(&r.old_note)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let id: i64 = sqlx::query(
            "INSERT INTO log_rotations (size, root, old_note, old_vkey, new_note, new_vkey, \
             rotated_at_ms, operator, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(to_i64(r.size))
        .bind(&r.root)
        .bind(&r.old_note)
        .bind(&r.old_vkey)
        .bind(&r.new_note)
        .bind(&r.new_vkey)
        .bind(r.rotated_at_ms)
        .bind(&r.operator)
        .bind(&r.reason)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        Ok(Some(id))
    })
}

/// Every recorded rotation, oldest first.
pub async fn read_rotations(db: &Db) -> Result<Vec<super::integrity::Rotation>, LogError> {
    let sql = "SELECT id, size, root, old_note, old_vkey, new_note, new_vkey, rotated_at_ms, \
               operator, reason FROM log_rotations ORDER BY id";
    let rows = on_db!(db, pool, DB => {
        let rows = sqlx::query(sql).fetch_all(pool).await?;
        rows.iter()
            .map(|r| {
                Ok(super::integrity::Rotation {
                    id: r.try_get(0)?,
                    size: u64::try_from(r.try_get::<i64, _>(1)?).unwrap_or_default(),
                    root: r.try_get(2)?,
                    old_note: r.try_get(3)?,
                    old_vkey: r.try_get(4)?,
                    new_note: r.try_get(5)?,
                    new_vkey: r.try_get(6)?,
                    rotated_at_ms: r.try_get(7)?,
                    operator: r.try_get(8)?,
                    reason: r.try_get(9)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(rows)
}

/// Runs each group's attached work in `$tx`, each in its own savepoint: a work that fails is rolled
/// back alone and the batch goes on (see [`super::Attached`]). A macro because `$tx` is a different
/// transaction type on each backend (inside `on_db!`).
macro_rules! write_attached {
    ($tx:ident, $groups:expr) => {
        for g in $groups.iter_mut() {
            sqlx::query("SAVEPOINT jsj_attached")
                .execute(&mut *$tx)
                .await?;
            if g.work.write(TxConn::from(&mut *$tx), &g.placed).await {
                sqlx::query("RELEASE SAVEPOINT jsj_attached")
                    .execute(&mut *$tx)
                    .await?;
            } else {
                sqlx::query("ROLLBACK TO SAVEPOINT jsj_attached")
                    .execute(&mut *$tx)
                    .await?;
                sqlx::query("RELEASE SAVEPOINT jsj_attached")
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    };
}

/// Commits one batch in one transaction. The transaction first takes the head:
/// - PostgreSQL: `SELECT … FOR UPDATE` on the head row, which serializes the batches of every
///   replica sharing the database (each replica sequences; PostgreSQL orders them). The
///   transaction's `idle_in_transaction_session_timeout` bounds how long a hung replica can hold
///   the row; a killed one's transaction aborts when its connection closes.
/// - SQLite (one process): the sequencer-lease compare-and-swap as its first, writing, statement
///   (it also takes SQLite's write lock); `Ok(None)` when another replica holds the lease.
///
/// When the locked head differs from `gate.known_*` (another replica appended), the frontier at
/// the locked size is read inside the transaction. Then `prepare` (the writer: sequence, hash,
/// sign, after checking the locked checkpoint) runs, and entries, subjects, stored hashes, the
/// checkpoint, the head and the attached work (each in its own savepoint, see
/// [`super::Attached`]) are written and committed. Returns what was committed.
pub async fn commit_batch(
    db: &Db,
    gate: &Gate<'_>,
    cache: &std::sync::Mutex<super::HashCache>,
    prepare: impl FnOnce(Locked) -> Result<Prepared, LogError>,
) -> Result<Option<Prepared>, LogError> {
    let pg = matches!(db, Db::Postgres(_));
    on_db!(db, pool, DB => {
        let mut tx = pool.begin_write().await?;
        let row = if pg {
            let t = gate.sequencer_timeout_ms.max(1);
            sqlx::query(
                "SELECT set_config('idle_in_transaction_session_timeout', $1, true), \
                        set_config('lock_timeout', $2, true)",
            )
            .bind(format!("{t}ms"))
            .bind(format!("{}ms", t.saturating_mul(3)))
            .execute(&mut *tx)
            .await?;
            sqlx::query("SELECT size, root, note FROM log_head WHERE id = 1 FOR UPDATE")
                .fetch_optional(&mut *tx)
                .await?
        } else {
            sqlx::query(
                "UPDATE log_head SET lease_holder = $1, lease_expires_ms = $2 \
                 WHERE id = 1 AND (lease_holder = $1 OR lease_holder = '' OR lease_expires_ms < $3) \
                 RETURNING size, root, note",
            )
            .bind(gate.holder)
            .bind(gate.lease_expires_ms)
            .bind(gate.now_ms)
            .fetch_optional(&mut *tx)
            .await?
        };
        let Some(row) = row else {
            tx.rollback().await?;
            if pg {
                return Err(LogError::Corrupt("the log head row is missing".into()));
            }
            return Ok(None);
        };
        let size: i64 = row.try_get(0)?;
        let root: Vec<u8> = row.try_get(1)?;
        let note: String = row.try_get(2)?;
        let size = u64::try_from(size).map_err(|_| LogError::Corrupt("head size negative".into()))?;
        let frontier = if size != gate.known_size || note != gate.known_note {
            let ids = super::frontier_indexes(size);
            let mut got = HashMap::with_capacity(ids.len());
            if !ids.is_empty() {
                let mut q = QueryBuilder::<DB>::new("SELECT id, hash FROM log_hashes WHERE id IN (");
                let mut sep = q.separated(", ");
                for id in &ids {
                    sep.push_bind(to_i64(*id));
                }
                q.push(")");
                for r in q.build().persistent(false).fetch_all(&mut *tx).await? {
                    let id: i64 = r.try_get(0)?;
                    let h: Vec<u8> = r.try_get(1)?;
                    got.insert(id as u64, hash_from("log_hashes.hash", &h)?);
                }
            }
            Some(got)
        } else {
            None
        };
        let locked = Locked { size, root: hash_from("log_head.root", &root)?, note, frontier };
        let mut p = match prepare(locked) {
            Ok(p) => p,
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        };
        for chunk in p.entries.chunks(CHUNK) {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO log_entries (idx, data, time_ms, actor, action, case_ref) ",
            );
            q.push_values(chunk, |mut r, e| {
                r.push_bind(to_i64(e.index))
                    .push_bind(e.data.clone())
                    .push_bind(e.time_ms)
                    .push_bind(e.actor.clone())
                    .push_bind(e.action.clone())
                    .push_bind(e.case_ref.clone());
            });
            q.build().persistent(false).execute(&mut *tx).await?;
        }
        let subjects: Vec<(&str, u64)> = p
            .entries
            .iter()
            .flat_map(|e| e.subjects.iter().map(move |s| (s.as_str(), e.index)))
            .collect();
        for chunk in subjects.chunks(CHUNK) {
            let mut q = QueryBuilder::<DB>::new("INSERT INTO log_subjects (pseudonym, idx) ");
            q.push_values(chunk, |mut r, (s, i)| {
                r.push_bind(s.to_string()).push_bind(to_i64(*i));
            });
            q.build().persistent(false).execute(&mut *tx).await?;
        }
        for chunk in p.hashes.chunks(CHUNK) {
            let mut q = QueryBuilder::<DB>::new("INSERT INTO log_hashes (id, hash) ");
            q.push_values(chunk, |mut r, (id, h)| {
                r.push_bind(to_i64(*id)).push_bind(h.0.to_vec());
            });
            q.build().persistent(false).execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO log_checkpoints (size, root, note, created_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(to_i64(p.new_size))
        .bind(p.root.0.to_vec())
        .bind(&p.note)
        .bind(gate.now_ms)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query(
            "UPDATE log_head SET size = $1, root = $2, note = $3, lease_holder = $4, lease_expires_ms = $5 \
             WHERE id = 1 AND size = $6",
        )
        .bind(to_i64(p.new_size))
        .bind(p.root.0.to_vec())
        .bind(&p.note)
        .bind(gate.holder)
        .bind(gate.lease_expires_ms)
        .bind(to_i64(p.old_size))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Err(LogError::Corrupt("the log head moved inside a locked batch".into()));
        }
        if p.attached.iter().any(|g| g.prove.is_some()) {
            // Receipts against the checkpoint just written: the hashes they need come from this
            // batch, the cache, or (the rest) this transaction, in one query.
            let mut known: HashMap<u64, Hash> = p.hashes.iter().copied().collect();
            known.extend(p.frontier.iter().map(|(k, v)| (*k, *v)));
            let mut want = Vec::new();
            for g in &p.attached {
                if let Some(earlier) = &g.prove {
                    for i in earlier.iter().chain(&g.placed.indexes) {
                        want.extend(tlog::proof::prove_record_indexes(p.new_size, *i)?.into_iter().map(|x| x.0));
                    }
                }
            }
            want.sort_unstable();
            want.dedup();
            let mut missing = Vec::new();
            {
                let c = super::lock(cache);
                for id in want {
                    if known.contains_key(&id) {
                        continue;
                    }
                    match c.get(id) {
                        Some(h) => {
                            known.insert(id, h);
                        }
                        None => missing.push(id),
                    }
                }
            }
            for chunk in missing.chunks(CHUNK) {
                let mut q = QueryBuilder::<DB>::new("SELECT id, hash FROM log_hashes WHERE id IN (");
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(to_i64(*id));
                }
                q.push(")");
                for r in q.build().persistent(false).fetch_all(&mut *tx).await? {
                    let id: i64 = r.try_get(0)?;
                    let h: Vec<u8> = r.try_get(1)?;
                    known.insert(id as u64, hash_from("log_hashes.hash", &h)?);
                }
            }
            let reader = super::MapReader(&known);
            for g in &mut p.attached {
                if let Some(earlier) = &g.prove {
                    g.placed.receipts = earlier
                        .iter()
                        .chain(&g.placed.indexes)
                        .map(|i| {
                            Ok(tlog::Receipt {
                                extra: None,
                                index: *i,
                                proof: tlog::proof::prove_record(p.new_size, *i, &reader)?,
                                checkpoint: p.note.clone(),
                            })
                        })
                        .collect::<Result<Vec<_>, LogError>>()?;
                }
            }
        }
        write_attached!(tx, p.attached);
        tx.commit().await?;
        Ok(Some(p))
    })
}

/// A batch of attached work without entries: one write transaction (no head, no checkpoint), each
/// work in its own savepoint as in [`commit_batch`], committed once.
pub async fn commit_attached(db: &Db, mut groups: Vec<Group>) -> Result<(), LogError> {
    on_db!(db, pool, _DB => {
        let mut tx = pool.begin_write().await?;
        write_attached!(tx, groups);
        tx.commit().await?;
        Ok(())
    })
}

/// `log_head`'s columns with the highest entry and stored-hash indexes.
type HeadWithMax = (i64, Vec<u8>, String, String, i64, Option<i64>, Option<i64>);

/// The head and, read by the same statement (one snapshot), the highest entry index and stored
/// hash index: what start-up checks, consistent even while other replicas append.
pub async fn read_head_with_max(db: &Db) -> Result<(Head, Option<i64>, Option<i64>), LogError> {
    let sql = "SELECT size, root, note, lease_holder, lease_expires_ms, \
               (SELECT MAX(idx) FROM log_entries), (SELECT MAX(id) FROM log_hashes) \
               FROM log_head WHERE id = 1";
    let row: Option<HeadWithMax> = on_db!(db, pool, DB => {
        match sqlx::query(sql).fetch_optional(pool).await? {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?, r.try_get(6)?)),
            None => None,
        }
    });
    let Some((size, root, note, holder, exp, max_idx, max_hash)) = row else {
        return Err(LogError::Corrupt("the log head row is missing".into()));
    };
    Ok((
        Head {
            size: u64::try_from(size)
                .map_err(|_| LogError::Corrupt("head size negative".into()))?,
            root: hash_from("head.root", &root)?,
            note,
            lease_holder: holder,
            lease_expires_ms: exp,
        },
        max_idx,
        max_hash,
    ))
}

/// Reads stored hashes by index; every index must be present.
pub async fn read_hashes(db: &Db, ids: &[u64]) -> Result<HashMap<u64, Hash>, LogError> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(i64, Vec<u8>)> = on_db!(db, pool, DB => {
            let mut q = QueryBuilder::<DB>::new("SELECT id, hash FROM log_hashes WHERE id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(to_i64(*id));
            }
            q.push(")");
            let rows = q.build().persistent(false).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        for (id, h) in rows {
            out.insert(id as u64, hash_from("log_hashes.hash", &h)?);
        }
    }
    Ok(out)
}

/// Entries `[from, to)` in index order.
pub async fn read_entries(db: &Db, from: u64, to: u64) -> Result<Vec<Vec<u8>>, LogError> {
    Ok(read_entries_indexed(db, from, to)
        .await?
        .into_iter()
        .map(|(_, d)| d)
        .collect())
}

/// Entries `[from, to)` with their indexes, row by row.
async fn entry_rows(db: &Db, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let sql = "SELECT idx, data FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx";
    let rows: Vec<(i64, Vec<u8>)> = on_db!(db, pool, DB => {
        let rows = sqlx::query(sql).bind(to_i64(from)).bind(to_i64(to)).fetch_all(pool).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(rows.into_iter().map(|(i, d)| (i as u64, d)).collect())
}

/// The entries at `indexes` (index, bytes); absent ones are simply missing.
pub async fn read_entries_at(db: &Db, indexes: &[u64]) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let mut out = Vec::with_capacity(indexes.len());
    for chunk in indexes.chunks(CHUNK) {
        let rows: Vec<(i64, Vec<u8>)> = on_db!(db, pool, DB => {
            let mut q = QueryBuilder::<DB>::new("SELECT idx, data FROM log_entries WHERE idx IN (");
            let mut sep = q.separated(", ");
            for i in chunk {
                sep.push_bind(to_i64(*i));
            }
            q.push(")");
            let rows = q.build().persistent(false).fetch_all(pool).await?;
            rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        out.extend(rows.into_iter().map(|(i, d)| (i as u64, d)));
    }
    Ok(out)
}

/// The highest entry index and stored-hash index present (for start-up checks).
pub async fn max_indexes(db: &Db) -> Result<(Option<i64>, Option<i64>), LogError> {
    let r: (Option<i64>, Option<i64>) = on_db!(db, pool, DB => {
        let a: Option<i64> = sqlx::query("SELECT MAX(idx) FROM log_entries").fetch_one(pool).await?.try_get(0)?;
        let b: Option<i64> = sqlx::query("SELECT MAX(id) FROM log_hashes").fetch_one(pool).await?.try_get(0)?;
        (a, b)
    });
    Ok(r)
}

/// Search filters (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub subject: Option<String>,
    pub actor: Option<String>,
    pub case_ref: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: i64,
}

/// Entries matching `f` (index, bytes), ascending, at most `f.limit`, below `size`.
pub async fn search(db: &Db, f: &SearchFilter, size: u64) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let rows: Vec<(i64, Vec<u8>)> = on_db!(db, pool, DB => {
        let mut q = QueryBuilder::<DB>::new("SELECT e.idx, e.data FROM log_entries e");
        if let Some(s) = &f.subject {
            q.push(" JOIN log_subjects s ON s.idx = e.idx AND s.pseudonym = ");
            q.push_bind(s.clone());
        }
        q.push(" WHERE e.idx < ");
        q.push_bind(to_i64(size));
        if let Some(a) = &f.actor {
            q.push(" AND e.actor = ");
            q.push_bind(a.clone());
        }
        if let Some(c) = &f.case_ref {
            q.push(" AND e.case_ref = ");
            q.push_bind(c.clone());
        }
        if let Some(t) = f.from_ms {
            q.push(" AND e.time_ms >= ");
            q.push_bind(t);
        }
        if let Some(t) = f.to_ms {
            q.push(" AND e.time_ms < ");
            q.push_bind(t);
        }
        q.push(" ORDER BY e.idx LIMIT ");
        q.push_bind(f.limit);
        let rows = q.build().persistent(false).fetch_all(pool).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    Ok(rows.into_iter().map(|(i, d)| (i as u64, d)).collect())
}

/// Entries a [`read_entries_indexed`] group spans (they arrive as one aggregated row).
const ENTRY_GROUP: u64 = 1 << 10;

/// Entries `[from, to)` with their indexes (gaps show as missing indexes). Like
/// [`read_hash_range`], each group of [`ENTRY_GROUP`] indexes comes as ONE row (count, first
/// index, the entries' lengths and their bytes concatenated in index order); a group with a gap
/// or lengths that do not add up is read again row by row.
pub async fn read_entries_indexed(
    db: &Db,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
    let mut out = Vec::with_capacity(usize::try_from(to.saturating_sub(from)).unwrap_or(0));
    for (lo, hi) in groups(from, to, ENTRY_GROUP) {
        // (rows, first index, the lengths joined by commas, the entries concatenated)
        let (count, first, lengths, joined): (i64, Option<i64>, String, Vec<u8>) = group_row(
            db,
            [
                "SELECT count(*), min(idx), coalesce(group_concat(length(data)), ''), \
                 CAST(coalesce(group_concat(data, ''), '') AS BLOB) \
                 FROM (SELECT idx, data FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx)",
                "SELECT count(*), min(idx), \
                 coalesce(string_agg(length(data)::TEXT, ',' ORDER BY idx), ''), \
                 coalesce(string_agg(data, ''::BYTEA ORDER BY idx), ''::BYTEA) \
                 FROM log_entries WHERE idx >= $1 AND idx < $2",
            ],
            lo,
            hi,
        )
        .await?;
        let span = hi - lo;
        let split = (u64::try_from(count).ok() == Some(span) && first == Some(to_i64(lo)))
            .then(|| split_joined(&lengths, &joined, span))
            .flatten();
        match split {
            Some(parts) => out.extend((lo..hi).zip(parts.into_iter().map(<[u8]>::to_vec))),
            None if count > 0 => out.extend(entry_rows(db, lo, hi).await?),
            None => {}
        }
    }
    Ok(out)
}

/// `[from, to)` cut at the multiples of `size`: the groups an aggregated range read asks for.
fn groups(from: u64, to: u64, size: u64) -> impl Iterator<Item = (u64, u64)> {
    let end = move |lo: u64| (lo - lo % size + size).min(to);
    std::iter::successors(Some(from).filter(|lo| *lo < to), move |lo| {
        Some(end(*lo)).filter(|hi| *hi < to)
    })
    .map(move |lo| (lo, end(lo)))
}

/// The one aggregated row of the group `[lo, hi)`: `sql` for SQLite and for PostgreSQL, both
/// binding `lo` and `hi`.
async fn group_row<T>(db: &Db, sql: [&'static str; 2], lo: u64, hi: u64) -> Result<T, LogError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    let [sqlite, postgres] = sql;
    Ok(match db {
        Db::Sqlite(pool) => {
            sqlx::query_as(sqlite)
                .bind(to_i64(lo))
                .bind(to_i64(hi))
                .fetch_one(pool)
                .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_as(postgres)
                .bind(to_i64(lo))
                .bind(to_i64(hi))
                .fetch_one(pool)
                .await?
        }
    })
}

/// `joined` cut at the comma-separated `lengths`: `n` pieces that use every byte, or `None`.
fn split_joined<'a>(lengths: &str, joined: &'a [u8], n: u64) -> Option<Vec<&'a [u8]>> {
    let mut parts = Vec::with_capacity(usize::try_from(n).ok()?);
    let mut rest = joined;
    for l in lengths.split(',') {
        let (part, tail) = rest.split_at_checked(l.parse().ok()?)?;
        parts.push(part);
        rest = tail;
    }
    (rest.is_empty() && parts.len() as u64 == n).then_some(parts)
}

/// The stored hashes with ids in `[from, to)`, by id; an id without a row is `None`.
#[derive(Debug, Default)]
pub struct HashRange {
    from: u64,
    hashes: Vec<Option<Hash>>,
}

impl HashRange {
    /// The stored hash `id`, if it is in the range and has a row.
    pub fn get(&self, id: &u64) -> Option<&Hash> {
        let k = usize::try_from(id.checked_sub(self.from)?).ok()?;
        self.hashes.get(k)?.as_ref()
    }
}

impl tlog::stored::HashReader for HashRange {
    fn read_hashes(&self, indexes: &[tlog::stored::StoredHashIndex]) -> tlog::Result<Vec<Hash>> {
        indexes
            .iter()
            .map(|i| {
                self.get(&i.0)
                    .copied()
                    .ok_or_else(|| tlog::Error::Reader(format!("stored hash {} missing", i.0)))
            })
            .collect()
    }
}

/// Ids a [`read_hash_range`] group spans (its rows arrive as one aggregated row).
const HASH_GROUP: u64 = 1 << 12;

/// Stored hashes with ids in `[from, to)`. A stored hash is 32 bytes and there are about two per
/// entry: read row by row, moving the rows through the driver costs more than hashing the
/// entries (`hub audit verify --db`, the full start-up audit). So each group of [`HASH_GROUP`]
/// ids comes as ONE row (its count, its first id and its hashes concatenated in id order); a
/// group with a gap or a hash of another length is read again row by row, which reports it
/// exactly as before. On SQLite the order comes from the ordered subquery (not flattened into an
/// aggregate: a co-routine over the primary key, no sort; `group_concat(… ORDER BY id)` would
/// sort every group, 20 % slower); blob bytes, NULs included, pass through `group_concat`
/// unchanged. A hash out of place could only make verification fail, never pass.
pub async fn read_hash_range(db: &Db, from: u64, to: u64) -> Result<HashRange, LogError> {
    let mut range = HashRange {
        from,
        hashes: vec![None; usize::try_from(to.saturating_sub(from)).unwrap_or(0)],
    };
    for (lo, hi) in groups(from, to, HASH_GROUP) {
        // (rows, rows of 32 bytes, first id, the hashes concatenated in id order)
        let (count, whole, first, joined): (i64, i64, Option<i64>, Vec<u8>) = group_row(
            db,
            [
                "SELECT count(*), coalesce(sum(length(hash) = 32), 0), min(id), \
                 CAST(coalesce(group_concat(hash, ''), '') AS BLOB) \
                 FROM (SELECT id, hash FROM log_hashes WHERE id >= $1 AND id < $2 ORDER BY id)",
                "SELECT count(*), coalesce(sum(CASE WHEN length(hash) = 32 THEN 1 ELSE 0 END), 0)::BIGINT, \
                 min(id), coalesce(string_agg(hash, ''::BYTEA ORDER BY id), ''::BYTEA) \
                 FROM log_hashes WHERE id >= $1 AND id < $2",
            ],
            lo,
            hi,
        )
        .await?;
        let span = hi - lo;
        let dense = u64::try_from(count).ok() == Some(span)
            && whole == count
            && first == Some(to_i64(lo))
            && joined.len() as u64 == span * 32;
        if dense {
            let at = (lo - from) as usize;
            for (k, h) in joined.chunks_exact(32).enumerate() {
                range.hashes[at + k] = Some(hash_from("log_hashes.hash", h)?);
            }
        } else if count > 0 {
            let sql = "SELECT id, hash FROM log_hashes WHERE id >= $1 AND id < $2";
            let rows: Vec<(i64, Vec<u8>)> = on_db!(db, pool, DB => {
                let rows = sqlx::query(sql).bind(to_i64(lo)).bind(to_i64(hi)).fetch_all(pool).await?;
                rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<Vec<_>, sqlx::Error>>()?
            });
            for (i, h) in rows {
                let k = (i as u64 - from) as usize;
                range.hashes[k] = Some(hash_from("log_hashes.hash", &h)?);
            }
        }
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::{groups, split_joined};

    #[test]
    fn ranges_are_cut_at_the_multiples_of_the_group_size() {
        let cut = |from, to| groups(from, to, 4).collect::<Vec<_>>();
        assert_eq!(cut(0, 8), [(0, 4), (4, 8)]);
        assert_eq!(cut(3, 10), [(3, 4), (4, 8), (8, 10)]);
        assert_eq!(cut(5, 6), [(5, 6)]);
        assert!(cut(6, 6).is_empty() && cut(7, 6).is_empty());
    }

    #[test]
    fn joined_entries_are_split_only_when_the_lengths_add_up() {
        assert_eq!(
            split_joined("2,0,3", b"abcde", 3),
            Some(vec![&b"ab"[..], b"", b"cde"])
        );
        assert_eq!(split_joined("2,4", b"abcde", 2), None);
        assert_eq!(split_joined("2,2", b"abcde", 2), None);
        assert_eq!(split_joined("5", b"abcde", 2), None);
        assert_eq!(split_joined("x", b"abcde", 1), None);
    }
}
