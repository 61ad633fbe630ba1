//! 见证服务: a C2SP `tlog-witness` witness (`hub witness`), run by the audit office or a partner
//! department next to the hub, never by the hub operator alone.
//!
//! A witness has its own Ed25519 cosignature/v1 key ([`tlog::cosig::CosignatureSigner`]), its own
//! SQLite state (per log origin: the size, root and note of the latest checkpoint it cosigned) and
//! a list of logs it witnesses (origin + the log's Ed25519 verifier key). [`Witness::add_checkpoint`]
//! implements `POST /add-checkpoint` (c2sp.org/tlog-witness@v1.0.0, as summarised in
//! `/work/shared/reference/anchors-tlog.md` §1.6); [`serve`] puts it behind mTLS.
//!
//! Checks, in order, each with its HTTP status ([`AddError::status`]):
//! 1. the body parses (`old <size>`, ≤ 63 base64 proof lines, blank line, a checkpoint note) — 400;
//! 2. the checkpoint's origin is a configured log — 404;
//! 3. a signature by that log's key verifies (unknown signatures are ignored) — 403;
//! 4. `old` ≤ the checkpoint's size — 400;
//! 5. `old` equals the size this witness last cosigned for the origin (0 if never) — 409 with
//!    `text/x.tlog.size` body `<size>\n`;
//! 6. the consistency proof leads from the witness's OWN stored root at `old` to the new root (empty
//!    from 0; the empty tree's root for size 0; equal sizes need equal roots) — 422. A forked log
//!    (another tree at the same origin signed with the same key) fails here. The refusal, with the
//!    signed note, is kept in `witness_refusals`: it is evidence of the log's misbehaviour.
//!
//! Invariant: the state only moves forward along one consistent tree. The update is a
//! compare-and-swap on (origin, size, root) in one statement ([`State::advance`]); a submission that
//! lost a race is answered 409 with the size that won, so concurrent submissions cannot roll the
//! state back. The cosignature is produced only after the new state is durable (SQLite WAL,
//! `synchronous=FULL`).

pub mod serve;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tlog::checkpoint::{Checkpoint, WitnessPolicy, open_checkpoint, parse_witness_request};
use tlog::cosig::CosignatureSigner;
use tlog::{Hash, VerifierKey};

use crate::log::store::to_i64;

/// Why a submission was not cosigned. The message names the field or the rule; it never carries
/// entry data (a checkpoint holds none anyway).
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// 400: the body does not parse, or `old` is above the checkpoint's size.
    #[error("{0}")]
    BadRequest(String),
    /// 404: the witness does not witness this origin.
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// 403: no signature by the log's key verifies.
    #[error("checkpoint is not signed by the log's key: {0}")]
    Forbidden(String),
    /// 409: `old` is not the size this witness last cosigned (which is `size`).
    #[error("old size {old} does not match the witness's latest cosigned size {size}")]
    Conflict { old: u64, size: u64 },
    /// 422: the checkpoint is not consistent with what the witness cosigned before.
    #[error("checkpoint is inconsistent with the witnessed tree: {0}")]
    Inconsistent(String),
    /// 500: the witness's own state failed.
    #[error("witness state: {0}")]
    State(#[from] sqlx::Error),
}

impl AddError {
    /// The tlog-witness HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            AddError::BadRequest(_) => 400,
            AddError::Forbidden(_) => 403,
            AddError::UnknownOrigin(_) => 404,
            AddError::Conflict { .. } => 409,
            AddError::Inconsistent(_) => 422,
            AddError::State(_) => 500,
        }
    }

    /// A stable machine code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AddError::BadRequest(_) => "bad_request",
            AddError::Forbidden(_) => "log_signature_invalid",
            AddError::UnknownOrigin(_) => "unknown_origin",
            AddError::Conflict { .. } => "old_size_mismatch",
            AddError::Inconsistent(_) => "inconsistent_checkpoint",
            AddError::State(_) => "state_error",
        }
    }
}

/// What the witness last cosigned for one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    pub size: u64,
    pub root: Hash,
    /// The signed checkpoint as submitted (empty before the first cosignature).
    pub note: String,
}

/// The witness's persistent state: one SQLite file.
#[derive(Debug, Clone)]
pub struct State {
    pool: SqlitePool,
}

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS witness_state (\
        origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL, \
        updated_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS witness_refusals (\
        id INTEGER PRIMARY KEY AUTOINCREMENT, origin TEXT NOT NULL, received_ms INTEGER NOT NULL, \
        old_size INTEGER NOT NULL, size INTEGER NOT NULL, note TEXT NOT NULL, reason TEXT NOT NULL)",
];

impl State {
    /// Opens (creating if missing) the state file: WAL journal, `synchronous=FULL`.
    pub async fn open(path: &Path) -> Result<State, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        Ok(State { pool })
    }

    /// The latest cosigned checkpoint for `origin` (size 0 and the empty root if never).
    pub async fn latest(&self, origin: &str) -> Result<Witnessed, sqlx::Error> {
        let row = sqlx::query("SELECT size, root, note FROM witness_state WHERE origin = $1")
            .bind(origin)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Witnessed {
                size: 0,
                root: tlog::hash::empty_root(),
                note: String::new(),
            });
        };
        let size: i64 = row.try_get(0)?;
        let root: Vec<u8> = row.try_get(1)?;
        let corrupt =
            |what: &str| sqlx::Error::Protocol(format!("witness_state.{what} is invalid"));
        Ok(Witnessed {
            size: u64::try_from(size).map_err(|_| corrupt("size"))?,
            root: Hash::from_slice("root", &root).map_err(|_| corrupt("root"))?,
            note: row.try_get(2)?,
        })
    }

    /// Compare-and-swap: moves `origin` from `from` to `to` only if the stored state is still
    /// `from` (size and root; "no row" stands for size 0 and the empty root). Returns whether it
    /// moved; durable when it returns `true`.
    pub async fn advance(
        &self,
        origin: &str,
        from: &Witnessed,
        to: &Witnessed,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        // The first cosignature for an origin inserts its row; the insert is a no-op when a
        // concurrent submission got there first, and the guarded update below then misses.
        if from.size == 0 {
            sqlx::query(
                "INSERT INTO witness_state (origin, size, root, note, updated_ms) \
                 VALUES ($1, 0, $2, '', $3) ON CONFLICT (origin) DO NOTHING",
            )
            .bind(origin)
            .bind(tlog::hash::empty_root().0.to_vec())
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        }
        let n = sqlx::query(
            "UPDATE witness_state SET size = $1, root = $2, note = $3, updated_ms = $4 \
             WHERE origin = $5 AND size = $6 AND root = $7",
        )
        .bind(to_i64(to.size))
        .bind(to.root.0.to_vec())
        .bind(&to.note)
        .bind(now_ms)
        .bind(origin)
        .bind(to_i64(from.size))
        .bind(from.root.0.to_vec())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Keeps a refused, validly signed checkpoint as evidence.
    async fn record_refusal(
        &self,
        origin: &str,
        old_size: u64,
        size: u64,
        note: &str,
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO witness_refusals (origin, received_ms, old_size, size, note, reason) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(origin)
        .bind(crate::store::now_ms())
        .bind(to_i64(old_size))
        .bind(to_i64(size))
        .bind(note)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Number of refusals recorded for `origin` (evidence of a misbehaving log).
    pub async fn refusals(&self, origin: &str) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) FROM witness_refusals WHERE origin = $1")
            .bind(origin)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)
    }
}

/// A witness: its key, the logs it witnesses and its state.
pub struct Witness {
    signer: CosignatureSigner,
    /// Origin → the log's Ed25519 verifier key.
    logs: HashMap<String, VerifierKey>,
    state: State,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.signer)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// A witness over `logs` (each an Ed25519 note key whose name is the log's origin).
    pub fn new(
        signer: CosignatureSigner,
        logs: Vec<VerifierKey>,
        state: State,
    ) -> anyhow::Result<Witness> {
        let mut by_origin = HashMap::new();
        for k in logs {
            anyhow::ensure!(
                k.kind() == tlog::note::KeyKind::Ed25519,
                "log key {}: must be an Ed25519 (0x01) note key",
                k.name()
            );
            if let Some(dup) = by_origin.insert(k.name().to_owned(), k) {
                anyhow::bail!("log {} is configured twice", dup.name());
            }
        }
        Ok(Witness {
            signer,
            logs: by_origin,
            state,
        })
    }

    /// The witness's verifier key (`name+id+base64`, type 0x04), to give to auditors.
    pub fn verifier_key(&self) -> VerifierKey {
        self.signer.verifier_key()
    }

    /// The state store.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// `add-checkpoint`: checks `body` (see the module documentation) and returns the
    /// cosignature line for the checkpoint at `timestamp` (unix seconds, non-zero).
    pub async fn add_checkpoint(&self, body: &str, timestamp: u64) -> Result<String, AddError> {
        let req = parse_witness_request(body).map_err(|e| AddError::BadRequest(e.to_string()))?;
        let (text, _) = tlog::note::split_note(req.signed_checkpoint.as_bytes())
            .map_err(|e| AddError::BadRequest(format!("checkpoint: {e}")))?;
        let origin = Checkpoint::parse(&text)
            .map_err(|e| AddError::BadRequest(e.to_string()))?
            .origin;
        let key = self
            .logs
            .get(&origin)
            .ok_or_else(|| AddError::UnknownOrigin(origin.clone()))?;
        let signed = open_checkpoint(
            req.signed_checkpoint.as_bytes(),
            &origin,
            key,
            &WitnessPolicy::default(),
        )
        .map_err(|e| match e {
            tlog::Error::Malformed { .. } => AddError::BadRequest(e.to_string()),
            other => AddError::Forbidden(other.to_string()),
        })?;
        let new = signed.checkpoint;
        if req.old_size > new.size {
            return Err(AddError::BadRequest(format!(
                "old: {} is above the checkpoint's size {}",
                req.old_size, new.size
            )));
        }
        let latest = self.state.latest(&origin).await?;
        if req.old_size != latest.size {
            return Err(AddError::Conflict {
                old: req.old_size,
                size: latest.size,
            });
        }
        let consistent = if new.size == 0 && new.root != tlog::hash::empty_root() {
            Err("a size-0 checkpoint must carry the empty tree's root".to_owned())
        } else if new.size == latest.size && new.root != latest.root {
            Err(format!(
                "size {} was cosigned with another root (a fork)",
                new.size
            ))
        } else {
            tlog::proof::check_tree(&req.proof, new.size, new.root, latest.size, latest.root)
                .map_err(|e| e.to_string())
        };
        if let Err(reason) = consistent {
            tracing::warn!(
                origin = %origin,
                witnessed = latest.size,
                submitted = new.size,
                reason = %reason,
                "witness: refused a checkpoint inconsistent with the witnessed tree"
            );
            metrics::counter!("witness_refused_inconsistent_total").increment(1);
            self.state
                .record_refusal(
                    &origin,
                    req.old_size,
                    new.size,
                    &req.signed_checkpoint,
                    &reason,
                )
                .await?;
            return Err(AddError::Inconsistent(reason));
        }
        let to = Witnessed {
            size: new.size,
            root: new.root,
            note: req.signed_checkpoint.clone(),
        };
        if !self
            .state
            .advance(&origin, &latest, &to, crate::store::now_ms())
            .await?
        {
            // Another submission moved the state meanwhile: answer with the size that won.
            let now = self.state.latest(&origin).await?;
            return Err(AddError::Conflict {
                old: req.old_size,
                size: now.size,
            });
        }
        metrics::counter!("witness_cosigned_total").increment(1);
        Ok(self.signer.cosign(&text, timestamp.max(1)))
    }

    /// The monitoring view (`GET /<hex SHA-256 of the origin>/checkpoint`): the latest checkpoint
    /// this witness cosigned for that log, with a fresh cosignature at `timestamp` ("as of now,
    /// this is the largest consistent tree I have seen"). `None` for an unknown log or one never
    /// cosigned.
    pub async fn latest_cosigned(
        &self,
        origin_sha256_hex: &str,
        timestamp: u64,
    ) -> Result<Option<String>, AddError> {
        let Some(origin) = self.logs.keys().find(|o| {
            hex::encode(ring::digest::digest(&ring::digest::SHA256, o.as_bytes()))
                == origin_sha256_hex
        }) else {
            return Ok(None);
        };
        let latest = self.state.latest(origin).await?;
        if latest.note.is_empty() {
            return Ok(None);
        }
        let (text, _) = tlog::note::split_note(latest.note.as_bytes())
            .map_err(|e| AddError::BadRequest(e.to_string()))?;
        Ok(Some(format!(
            "{}{}",
            latest.note,
            self.signer.cosign(&text, timestamp.max(1))
        )))
    }
}

/// Writes a new witness key into `dir`: `witness.key` (the secret, mode 0600, never overwritten)
/// and `witness.vkey` (the public verifier key for the hub's config and for auditors). Returns
/// the verifier key.
pub fn keygen(name: &str, dir: &Path) -> anyhow::Result<VerifierKey> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let signer = CosignatureSigner::generate(name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let key_path = dir.join(KEY_FILE);
    write_new(&key_path, format!("{}\n", signer.to_skey_text()).as_bytes())?;
    let vkey = signer.verifier_key();
    std::fs::write(dir.join(VKEY_FILE), format!("{vkey}\n"))
        .with_context(|| format!("{}: cannot write", dir.join(VKEY_FILE).display()))?;
    Ok(vkey)
}

/// The secret key file `hub witness keygen` writes.
pub const KEY_FILE: &str = "witness.key";
/// The public verifier key file `hub witness keygen` writes.
pub const VKEY_FILE: &str = "witness.vkey";

/// Creates `path` with `bytes` (owner-only on Unix); refuses to overwrite.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("{}: cannot create (never overwritten)", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Reads a witness key file (`PRIVATE+KEY+<name>+<id>+<base64(0x04 || seed)>`).
pub fn load_key(path: &Path) -> anyhow::Result<CosignatureSigner> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    CosignatureSigner::from_skey_text(text.trim())
        .map_err(|e| anyhow::anyhow!("{}: not a witness key: {e}", path.display()))
}

#[cfg(test)]
mod tests;
