//! 日志完整性: what the hub checks before it signs anything over the stored log, and the one way
//! to re-sign a checkpoint (an explicit, recorded key/origin rotation).
//!
//! # Architecture invariant
//! The hub never signs a checkpoint over a state it has not verified. At start-up (and whenever the
//! writer reloads the head) the stored checkpoint note must verify with the configured key and
//! origin for exactly the head's size and root, and the stored tree is checked against that signed
//! root ([`StartupAudit`]); otherwise the hub refuses to start and signs nothing. The empty
//! checkpoint is signed only over an empty database. Re-signing the same size and root with another
//! key or origin happens only through [`rotate`] (`hub log rotate`), which first verifies the stored
//! note with the OLD key and origin, audits the stored tree against it, and records the old and the
//! new note together in `log_rotations` (served at `GET /v1/log/rotations`).
//!
//! What this does not catch: a database rolled back to an older, genuinely signed state (or a fork
//! served to different readers) verifies here; witnesses' cosignatures over consistent checkpoints
//! are what detect those (the scale-out work).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tlog::checkpoint::{Checkpoint, WitnessPolicy, open_checkpoint};
use tlog::stored::{split_stored_hash_index, stored_hash_count, stored_hash_index};
use tlog::{Hash, Signer, VerifierKey};

use super::store::{self, Head};
use super::{LogError, MapReader, frontier_indexes, now_ms};
use crate::store::Db;

/// How much of the stored tree start-up recomputes from the entry bytes (`[log] startup_audit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StartupAudit {
    /// The newest 256 entries ([`RECENT_ENTRIES`]): their leaf hashes from the entry bytes, every stored
    /// hash they created, and the root from those and the older subtrees (fast at any size).
    #[default]
    Recent,
    /// `recent`, plus `startup_audit_samples` random entries, each checked by an inclusion proof
    /// from its bytes to the signed root.
    Sample,
    /// Every leaf hash from the entry bytes, every stored hash, and the root.
    Full,
}

/// Entries the `recent` audit recomputes (one full tile's worth).
pub const RECENT_ENTRIES: u64 = 256;

/// Entries read per query by the full audit.
const AUDIT_CHUNK: u64 = 256 * 64;

/// Checks that `note` is a checkpoint signed by `vkey` for `origin` with exactly `size` and `root`.
/// Only the log's own signature counts here (witness cosignatures are the auditors' concern).
pub fn verify_note(
    note: &str,
    origin: &str,
    vkey: &VerifierKey,
    size: u64,
    root: Hash,
) -> Result<(), String> {
    let signed = open_checkpoint(note.as_bytes(), origin, vkey, &WitnessPolicy::default())
        .map_err(|e| e.to_string())?;
    let cp = &signed.checkpoint;
    if cp.size != size {
        return Err(format!(
            "it is signed for size {}, the head says {size}",
            cp.size
        ));
    }
    if cp.root != root {
        return Err(format!("it is signed for another root at size {size}"));
    }
    Ok(())
}

/// The refusal when the stored checkpoint does not verify with the configured key.
pub(crate) fn unverified(head: &Head, vkey: &VerifierKey, origin: &str, why: String) -> LogError {
    LogError::Unverified(format!(
        "stored checkpoint does not verify for size {} with key {} and origin {origin:?} ({why}): \
         refusing to start and signing nothing. If you rotated the log key or origin, run \
         `hub log rotate --config <hub.toml> --old-vkey <old key file> --operator <name>`; \
         otherwise the database was changed outside the hub: restore it and run `hub audit verify`",
        head.size,
        vkey.name()
    ))
}

/// Checks the stored tree against the (already verified) head as `mode` asks. A mismatch is
/// [`LogError::Tampered`] naming the first bad entry index.
pub async fn audit(
    db: &Db,
    head: &Head,
    mode: StartupAudit,
    samples: usize,
) -> Result<(), LogError> {
    match mode {
        StartupAudit::Recent => {
            audit_from(db, head, head.size.saturating_sub(RECENT_ENTRIES)).await
        }
        StartupAudit::Sample => {
            audit_from(db, head, head.size.saturating_sub(RECENT_ENTRIES)).await?;
            audit_sample(db, head, samples).await
        }
        StartupAudit::Full => audit_from(db, head, 0).await,
    }
}

fn tampered(index: u64, reason: impl Into<String>) -> LogError {
    LogError::Tampered {
        index,
        reason: reason.into(),
    }
}

/// Recomputes, from the entry bytes of `[from, size)` and the stored subtree hashes left of
/// `from`, every stored hash those entries created, compares each with the stored one, and checks
/// the root against the head's (signed) root. Memory stays O(chunk + log n).
async fn audit_from(db: &Db, head: &Head, from: u64) -> Result<(), LogError> {
    let size = head.size;
    if size == 0 {
        return Ok(());
    }
    // The hashes records >= `from` read are exactly the maximal complete subtrees at `from`.
    let mut overlay = store::read_hashes(db, &frontier_indexes(from)).await?;
    let mut first = from;
    while first < size {
        let end = (first + AUDIT_CHUNK).min(size);
        let entries = store::read_entries_indexed(db, first, end).await?;
        let stored =
            store::read_hash_range(db, stored_hash_count(first), stored_hash_count(end)).await?;
        let mut rows = entries.into_iter().peekable();
        for n in first..end {
            let data = match rows.peek() {
                Some((i, _)) if *i == n => rows.next().map(|(_, d)| d).unwrap_or_default(),
                _ => return Err(tampered(n, "entry missing")),
            };
            let leaf = tlog::hash::leaf_hash(&data);
            let new = tlog::stored::stored_hashes_for_record_hash(n, leaf, &MapReader(&overlay))
                .map_err(|e| tampered(n, e.to_string()))?;
            let base = stored_hash_count(n);
            for (k, h) in new.into_iter().enumerate() {
                let id = base + k as u64;
                if stored.get(&id) != Some(&h) {
                    let (level, _) = split_stored_hash_index(id);
                    return Err(tampered(
                        n,
                        if level == 0 {
                            "entry bytes do not match the stored leaf hash".to_owned()
                        } else {
                            format!(
                                "stored hash at level {level} ending at this entry differs from the \
                                 one recomputed from the entries"
                            )
                        },
                    ));
                }
                overlay.insert(id, h);
            }
        }
        // Keep only what later records (and the root) read.
        let keep = frontier_indexes(end);
        overlay.retain(|id, _| keep.contains(id));
        first = end;
    }
    let root = tlog::stored::tree_hash(size, &MapReader(&overlay))?;
    if root != head.root {
        return Err(tampered(
            from,
            "root recomputed from the entries differs from the signed root",
        ));
    }
    Ok(())
}

/// `samples` random entries, each: bytes → leaf hash (equal to the stored leaf hash) → inclusion
/// proof from the stored hashes → the signed root. Reports the lowest bad index among them.
async fn audit_sample(db: &Db, head: &Head, samples: usize) -> Result<(), LogError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let size = head.size;
    if size == 0 || samples == 0 {
        return Ok(());
    }
    let mut bytes = vec![0u8; samples * 8];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| LogError::Corrupt("no randomness for the sampled audit".into()))?;
    let mut picks: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()) % size)
        .collect();
    picks.sort_unstable();
    picks.dedup();
    let entries: HashMap<u64, Vec<u8>> = store::read_entries_at(db, &picks)
        .await?
        .into_iter()
        .collect();
    let leaf_ids: Vec<u64> = picks.iter().map(|i| stored_hash_index(0, *i).0).collect();
    let stored_leaves = store::read_hashes(db, &leaf_ids).await?;
    let proofs = super::with_db_reader(db, |r| {
        picks
            .iter()
            .map(|i| tlog::proof::prove_record(size, *i, r))
            .collect::<tlog::Result<Vec<_>>>()
    })
    .await
    .map_err(|e| tampered(picks[0], format!("inclusion proofs: {e}")))?;
    for (i, proof) in picks.iter().zip(proofs) {
        let Some(data) = entries.get(i) else {
            return Err(tampered(*i, "entry missing"));
        };
        let leaf = tlog::hash::leaf_hash(data);
        if stored_leaves.get(&stored_hash_index(0, *i).0) != Some(&leaf) {
            return Err(tampered(
                *i,
                "entry bytes do not match the stored leaf hash",
            ));
        }
        if tlog::proof::check_record(&proof, size, head.root, *i, leaf).is_err() {
            return Err(tampered(
                *i,
                "entry is not included in the signed tree (inclusion proof fails)",
            ));
        }
    }
    Ok(())
}

/// One recorded key/origin rotation (a row of `log_rotations`), as served to auditors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Rotation {
    /// Row id (rotations in order).
    pub id: i64,
    /// Tree size both notes sign.
    pub size: u64,
    /// Root both notes sign (base64).
    pub root: String,
    /// The note that verified with the old key and origin (kept whole).
    pub old_note: String,
    /// The old verifier key (`<name>+<hex id>+<base64>`).
    pub old_vkey: String,
    /// The new note, signed by the hub with the new key and origin.
    pub new_note: String,
    /// The new verifier key.
    pub new_vkey: String,
    /// Unix milliseconds.
    pub rotated_at_ms: i64,
    /// Who ran it (`--operator`) and the OS account it ran under.
    pub operator: String,
    /// Why (`--reason`), if given.
    pub reason: Option<String>,
}

/// What a rotation needs.
#[derive(Debug)]
pub struct RotateRequest<'a> {
    /// The key that signed the stored note.
    pub old_vkey: &'a VerifierKey,
    /// The origin of the stored note.
    pub old_origin: &'a str,
    /// The new signer (its name is the new origin).
    pub new_signer: &'a Signer,
    /// This hub's replica id: its own unexpired lease does not block the rotation.
    pub replica_id: &'a str,
    pub operator: &'a str,
    pub reason: Option<&'a str>,
    /// How much of the stored tree to audit against the old note first.
    pub audit: StartupAudit,
    pub samples: usize,
}

/// Re-signs the head's size and root with `new_signer`, after verifying the stored note with the
/// old key and origin and auditing the stored tree against it; records the rotation and the new
/// note in one transaction. Every hub replica must be stopped.
pub async fn rotate(db: &Db, req: &RotateRequest<'_>) -> Result<Rotation, LogError> {
    let refuse = |why: String| LogError::RotationRefused(why);
    let head = store::read_head_opt(db)
        .await?
        .ok_or_else(|| refuse("the log has no head row".into()))?;
    let new_vkey = req.new_signer.verifier_key();
    let new_origin = req.new_signer.name();
    if verify_note(&head.note, new_origin, &new_vkey, head.size, head.root).is_ok() {
        return Err(refuse(format!(
            "the stored checkpoint already verifies with the configured key {new_vkey} and origin \
             {new_origin:?}: nothing to rotate"
        )));
    }
    verify_note(
        &head.note,
        req.old_origin,
        req.old_vkey,
        head.size,
        head.root,
    )
    .map_err(|why| {
        refuse(format!(
            "the stored checkpoint does not verify for size {} with the old key {} and origin {:?} \
             ({why}); not re-signing",
            head.size,
            req.old_vkey.name(),
            req.old_origin
        ))
    })?;
    let now = now_ms();
    if head.lease_holder != req.replica_id
        && !head.lease_holder.is_empty()
        && head.lease_expires_ms >= now
    {
        return Err(refuse(format!(
            "replica {:?} holds the sequencer lease: stop every hub replica first",
            head.lease_holder
        )));
    }
    super::AccessLog::check_head(db, &head).await?;
    audit(db, &head, req.audit, req.samples).await?;
    let new_note = Checkpoint::new(new_origin, head.size, head.root)?.sign(req.new_signer)?;
    let rotation = Rotation {
        id: 0,
        size: head.size,
        root: head.root.to_base64(),
        old_note: head.note.clone(),
        old_vkey: req.old_vkey.to_string(),
        new_note,
        new_vkey: new_vkey.to_string(),
        rotated_at_ms: now,
        operator: req.operator.to_owned(),
        reason: req.reason.map(str::to_owned),
    };
    let id = store::record_rotation(db, &rotation)
        .await?
        .ok_or_else(|| refuse("the head changed during the rotation (is a hub running?)".into()))?;
    tracing::warn!(
        size = head.size,
        old_key = %req.old_vkey,
        new_key = %new_vkey,
        operator = %req.operator,
        "access log: checkpoint re-signed by an explicit key/origin rotation"
    );
    Ok(Rotation { id, ..rotation })
}

/// `hub log rotate` arguments, as the command line gives them.
#[derive(Debug, Clone, clap::Args)]
pub struct RotateArgs {
    /// The hub's configuration: database, `[log] origin` (the NEW origin) and `keys.signing_key`
    /// (the NEW key).
    #[arg(long, short, env = "HUB_CONFIG")]
    pub config: std::path::PathBuf,
    /// Verifier key file of the key that signed the stored checkpoint (`<name>+<hex id>+<base64>`,
    /// as in DIR/log.vkey before the change).
    #[arg(long)]
    pub old_vkey: std::path::PathBuf,
    /// Origin of the stored checkpoint (default: the old key's name).
    #[arg(long)]
    pub old_origin: Option<String>,
    /// Who runs the rotation (recorded with the OS account).
    #[arg(long)]
    pub operator: String,
    /// Why (recorded).
    #[arg(long)]
    pub reason: Option<String>,
    /// How much of the stored tree to check against the old checkpoint first.
    #[arg(long, value_enum, default_value = "full")]
    pub audit: StartupAudit,
    /// Write the new verifier key here (for auditors' --vkey).
    #[arg(long)]
    pub write_vkey: Option<std::path::PathBuf>,
}

/// Runs `hub log rotate`: opens the configured database, rotates, records, and writes the new
/// verifier key if asked.
pub async fn rotate_from_config(args: &RotateArgs) -> anyhow::Result<Rotation> {
    use anyhow::Context as _;
    let config = crate::config::Config::load(&args.config)?;
    let text = std::fs::read_to_string(&args.old_vkey)
        .with_context(|| format!("--old-vkey {}: cannot read", args.old_vkey.display()))?;
    let old_vkey = VerifierKey::parse(text.trim())
        .map_err(|e| anyhow::anyhow!("--old-vkey {}: {e}", args.old_vkey.display()))?;
    let old_origin = args
        .old_origin
        .clone()
        .unwrap_or_else(|| old_vkey.name().to_owned());
    let der = std::fs::read(&config.keys.signing_key)
        .with_context(|| format!("{}: cannot read", config.keys.signing_key.display()))?;
    let new_signer = super::signer_from_pkcs8(&config.log.origin, &der)
        .map_err(|e| anyhow::anyhow!("log.origin / keys.signing_key: {e}"))?;
    anyhow::ensure!(!args.operator.trim().is_empty(), "--operator: required");
    let os_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let operator = format!("{} (os user {os_user})", args.operator.trim());
    let store = crate::store::connect(&config.database.url, 2)
        .await
        .context("opening the database")?;
    let rotation = rotate(
        &store.db(),
        &RotateRequest {
            old_vkey: &old_vkey,
            old_origin: &old_origin,
            new_signer: &new_signer,
            replica_id: &config.log.replica_id,
            operator: &operator,
            reason: args.reason.as_deref(),
            audit: args.audit,
            samples: config.log.startup_audit_samples,
        },
    )
    .await?;
    if let Some(out) = &args.write_vkey {
        std::fs::write(out, format!("{}\n", rotation.new_vkey))
            .with_context(|| format!("--write-vkey {}: cannot write", out.display()))?;
    }
    Ok(rotation)
}
