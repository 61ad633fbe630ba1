//! `tlog`: the pure, format-level transparency-log library behind Jishijiu Hub's access log
//! (访问日志) and the auditors' verifier (审计核验工具).
//!
//! No I/O, no database, no clock: callers hand in bytes and get bytes, hashes, proofs or errors back.
//! The hub persists stored hashes, tiles and checkpoints; auditors fetch them; both use this crate to
//! compute and check everything.
//!
//! # Layout
//! - [`hash`]: RFC 6962 hashing ([`Hash`](struct@Hash), [`hash::leaf_hash`], [`hash::node_hash`],
//!   [`hash::empty_root`]) and [`hash::TreeHasher`], an O(log n)-memory streaming root computer.
//! - [`stored`]: the "stored hashes" layout of Go's `sumdb/tlog` ([`stored::StoredHashIndex`],
//!   [`stored::HashReader`], [`stored::stored_hashes_for_record`], [`stored::tree_hash`]) and an
//!   in-memory store. A hub can keep stored hashes in SQL and answer proofs with O(log n) reads.
//! - [`proof`]: inclusion and consistency proofs: generation from a [`stored::HashReader`]
//!   ([`proof::prove_record`], [`proof::prove_tree`]) and verification as in RFC 9162 §2.1.3.2 and
//!   §2.1.4.2 ([`proof::check_record`], [`proof::check_tree`]).
//! - [`note`]: C2SP `signed-note` with Ed25519 (ring): keys, signing, verification.
//! - [`checkpoint`]: C2SP `tlog-checkpoint` bodies.
//! - [`cosig`]: C2SP `tlog-cosignature/v1` (Ed25519, type 0x04) signing and verification.
//! - [`tile`]: C2SP `tlog-tiles`: tile coordinates and paths, tiles needed for a size, tile data from
//!   stored hashes, entry bundles, a tile-backed [`stored::HashReader`] and a streaming
//!   [`tile::LogAuditor`] that recomputes a whole log and names the first bad index.
//! - [`receipt`]: C2SP `tlog-proof@v1` receipts (index + inclusion proof + checkpoint).
//!
//! Architecture invariant: nothing here performs I/O or reads the time; the Go reference
//! implementation (`golang.org/x/mod/sumdb/{note,tlog}`) accepts what this crate produces, and this
//! crate accepts what it produces (see `tests/go_interop.rs`).
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod cosig;
pub mod hash;
pub mod note;
pub mod proof;
pub mod receipt;
pub mod stored;
pub mod tile;

pub use checkpoint::Checkpoint;
pub use hash::Hash;
pub use note::{Signer, Verifier, VerifierKey};
pub use receipt::Receipt;
pub use stored::{HashReader, MemoryHashStore, PrefetchedHashes, StoredHashIndex};
pub use tile::Tile;

/// Errors from this crate. Messages name the field and the rule that failed; they never contain entry
/// contents (entries may be personal data in other deployments).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Input that does not follow the format (field named in the message).
    #[error("{field}: {rule}")]
    Malformed { field: &'static str, rule: String },
    /// Arguments outside the valid range (e.g. index ≥ tree size).
    #[error("invalid arguments: {0}")]
    InvalidInput(String),
    /// A Merkle proof did not verify.
    #[error("proof verification failed: {0}")]
    ProofFailed(String),
    /// A signed note carried a signature from a known key that does not verify.
    #[error("invalid signature by known key {name}+{key_id:08x}")]
    InvalidSignature { name: String, key_id: u32 },
    /// No signature from a known key was present.
    #[error("note has no signature from a known key")]
    UnverifiedNote,
    /// Fewer witnesses cosigned a checkpoint than a policy requires; `missing` names (as
    /// `<name>+<hex key id>`) the required witnesses whose cosignature is absent.
    #[error(
        "witness quorum not met: {cosigned} of {required} required cosignatures; missing: {}",
        missing.join(", ")
    )]
    QuorumNotMet {
        cosigned: usize,
        required: usize,
        missing: Vec<String>,
    },
    /// A hash reader (storage) failed or returned the wrong number of hashes.
    #[error("hash reader: {0}")]
    Reader(String),
}

impl Error {
    pub(crate) fn malformed(field: &'static str, rule: impl Into<String>) -> Self {
        Error::Malformed {
            field,
            rule: rule.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
