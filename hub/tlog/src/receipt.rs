//! C2SP `tlog-proof@v1` receipts (日志收据): an offline-verifiable proof that entry `index` is in the
//! log, made of an index, an RFC 6962 inclusion proof and the signed checkpoint it leads to.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64 opaque data>]
//! index <n>
//! <base64 proof hash, leaf sibling first>…
//!
//! <signed checkpoint note, verbatim, with log signature and any witness cosignatures>
//! ```
//!
//! Verifying ([`Receipt::verify`]) checks the checkpoint's log signature and witness policy, then the
//! inclusion proof against the entry bytes. The `extra` data is not authenticated.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::checkpoint::{SignedCheckpoint, WitnessPolicy, open_checkpoint};
use crate::hash::{Hash, leaf_hash};
use crate::note::VerifierKey;
use crate::proof::check_record;
use crate::{Error, Result};

/// First line of a receipt.
pub const RECEIPT_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A parsed (not yet verified) receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Optional opaque extra data (unauthenticated).
    pub extra: Option<Vec<u8>>,
    /// 0-based index of the entry.
    pub index: u64,
    /// Inclusion proof, leaf sibling first.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

impl Receipt {
    /// Serialises to the `.tlog-proof` text form.
    pub fn to_text(&self) -> String {
        let mut out = format!("{RECEIPT_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", B64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            out.push_str(&h.to_base64());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint);
        out
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Receipt> {
        let (head, checkpoint) = text.split_once("\n\n").ok_or_else(|| {
            Error::malformed("receipt", "missing blank line before the checkpoint")
        })?;
        let mut lines = head.split('\n');
        if lines.next() != Some(RECEIPT_HEADER) {
            return Err(Error::malformed(
                "receipt",
                format!("first line must be {RECEIPT_HEADER}"),
            ));
        }
        let mut line = lines.next();
        let mut extra = None;
        if let Some(e) = line.and_then(|l| l.strip_prefix("extra ")) {
            extra =
                Some(B64.decode(e).map_err(|_| {
                    Error::malformed("receipt.extra", "not standard padded base64")
                })?);
            line = lines.next();
        }
        let idx = line
            .and_then(|l| l.strip_prefix("index "))
            .ok_or_else(|| Error::malformed("receipt.index", "missing 'index <n>' line"))?;
        let index: u64 = idx
            .parse()
            .ok()
            .filter(|i: &u64| i.to_string() == idx)
            .ok_or_else(|| {
                Error::malformed("receipt.index", "must be a decimal without leading zeros")
            })?;
        let proof = lines
            .map(|l| Hash::from_base64("receipt.proof", l))
            .collect::<Result<Vec<_>>>()?;
        if proof.len() > 64 {
            return Err(Error::malformed("receipt.proof", "more than 64 hashes"));
        }
        if checkpoint.is_empty() {
            return Err(Error::malformed("receipt.checkpoint", "missing"));
        }
        Ok(Receipt {
            extra,
            index,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Verifies the receipt for `entry` (the entry's bytes): checkpoint signature and witness policy,
    /// origin, then inclusion. Returns the opened checkpoint.
    pub fn verify(
        &self,
        entry: &[u8],
        origin: &str,
        log_key: &VerifierKey,
        policy: &WitnessPolicy,
    ) -> Result<SignedCheckpoint> {
        self.verify_leaf_hash(leaf_hash(entry), origin, log_key, policy)
    }

    /// Like [`Receipt::verify`] with the entry's leaf hash.
    pub fn verify_leaf_hash(
        &self,
        leaf: Hash,
        origin: &str,
        log_key: &VerifierKey,
        policy: &WitnessPolicy,
    ) -> Result<SignedCheckpoint> {
        let signed = open_checkpoint(self.checkpoint.as_bytes(), origin, log_key, policy)?;
        check_record(
            &self.proof,
            signed.checkpoint.size,
            signed.checkpoint.root,
            self.index,
            leaf,
        )?;
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::note::Signer;
    use crate::proof::prove_record;
    use crate::stored::MemoryHashStore;

    #[test]
    fn receipt_round_trip_verify_and_tamper() {
        let origin = "hub.example/audit-log";
        let signer = Signer::from_seed(origin, [3; 32]).unwrap();
        let mut store = MemoryHashStore::new();
        for i in 0..13 {
            store.append(format!("access-record-{i}").as_bytes());
        }
        let cp = Checkpoint::new(origin, 13, store.root()).unwrap();
        let r = Receipt {
            extra: Some(b"req-42".to_vec()),
            index: 5,
            proof: prove_record(13, 5, &store).unwrap(),
            checkpoint: cp.sign(&signer).unwrap(),
        };
        let text = r.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra cmVxLTQy\nindex 5\n"));
        let parsed = Receipt::parse(&text).unwrap();
        assert_eq!(parsed, r);
        let vk = signer.verifier_key();
        let none = WitnessPolicy::default();
        parsed
            .verify(b"access-record-5", origin, &vk, &none)
            .unwrap();
        assert!(
            parsed
                .verify(b"access-record-4", origin, &vk, &none)
                .is_err()
        );
        let mut wrong_index = parsed.clone();
        wrong_index.index = 4;
        assert!(
            wrong_index
                .verify(b"access-record-5", origin, &vk, &none)
                .is_err()
        );
        let other = Signer::from_seed(origin, [4; 32]).unwrap();
        assert!(
            parsed
                .verify(b"access-record-5", origin, &other.verifier_key(), &none)
                .is_err()
        );
        // Without extra, parse round-trips too.
        let plain = Receipt { extra: None, ..r };
        assert_eq!(Receipt::parse(&plain.to_text()).unwrap(), plain);
        for bad in [
            "",
            "c2sp.org/tlog-proof@v2\nindex 1\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 01\n\nx",
        ] {
            assert!(Receipt::parse(bad).is_err(), "{bad:?}");
        }
    }
}
