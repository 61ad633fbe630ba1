//! C2SP `tlog-cosignature/v1` (Ed25519, signature type 0x04): witness cosignatures on checkpoints.
//!
//! A cosignature is a signed-note signature line whose key ID is
//! `SHA-256(name || "\n" || 0x04 || public key)[:4]` and whose bytes are
//! `timestamp (u64 big-endian, unix seconds) || Ed25519 signature`, the signature covering
//!
//! ```text
//! cosignature/v1
//! time <timestamp>
//! <checkpoint note text, final newline included, no signature lines>
//! ```
//!
//! It means "as of `time`, this is the largest consistent tree this witness has seen for the origin".
//! Witness keys are [`VerifierKey`]s of kind [`KeyKind::CosignatureV1`]; [`crate::note::open_note`]
//! verifies them like any other key, and [`verify_cosignature`] checks one line on its own.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use crate::note::{
    ALG_COSIGNATURE_V1, KeyKind, Signature, Verifier as _, VerifierKey, is_valid_key_name, key_id,
    parse_skey_text, random_seed, skey_text,
};
use crate::{Error, Result};

/// The bytes a cosigner signs for `note_text` at `timestamp`.
pub fn cosigned_message(timestamp: u64, note_text: &[u8]) -> Vec<u8> {
    let header = format!("cosignature/v1\ntime {timestamp}\n");
    let mut msg = Vec::with_capacity(header.len() + note_text.len());
    msg.extend_from_slice(header.as_bytes());
    msg.extend_from_slice(note_text);
    msg
}

/// Verifies one cosignature by `witness` (a type-0x04 key) on `note_text` and returns its timestamp.
pub fn verify_cosignature(witness: &VerifierKey, note_text: &str, sig: &Signature) -> Result<u64> {
    if witness.kind() != KeyKind::CosignatureV1 {
        return Err(Error::InvalidInput(format!(
            "key {} is not a cosignature/v1 (0x04) key",
            witness.name()
        )));
    }
    if sig.name != witness.name() || sig.key_id != witness.key_id() {
        return Err(Error::InvalidInput(format!(
            "signature by {}+{:08x} is not from witness {}+{:08x}",
            sig.name,
            sig.key_id,
            witness.name(),
            witness.key_id()
        )));
    }
    if sig.sig.len() != 72 {
        return Err(Error::malformed(
            "cosignature",
            format!(
                "must be 72 bytes (timestamp + signature), got {}",
                sig.sig.len()
            ),
        ));
    }
    if !witness.verify(note_text.as_bytes(), &sig.sig) {
        return Err(Error::InvalidSignature {
            name: sig.name.clone(),
            key_id: sig.key_id,
        });
    }
    Ok(cosignature_timestamp(sig).unwrap_or(0))
}

/// The timestamp of a 72-byte cosignature, if it is one.
pub fn cosignature_timestamp(sig: &Signature) -> Option<u64> {
    let ts: [u8; 8] = sig.sig.get(..8)?.try_into().ok()?;
    (sig.sig.len() == 72).then(|| u64::from_be_bytes(ts))
}

/// A witness's cosigning key (`hub witness`). Its `Debug` never shows the key.
pub struct CosignatureSigner {
    name: String,
    key_id: u32,
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl CosignatureSigner {
    /// From a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self> {
        if !is_valid_key_name(name) {
            return Err(Error::malformed(
                "key name",
                "must be non-empty without spaces or '+'",
            ));
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| Error::malformed("cosigner key", "invalid Ed25519 seed"))?;
        Ok(CosignatureSigner {
            name: name.to_owned(),
            key_id: key_id(name, ALG_COSIGNATURE_V1, pair.public_key().as_ref()),
            seed,
            pair,
        })
    }

    /// A fresh random cosigning key (ring's system RNG).
    pub fn generate(name: &str) -> Result<Self> {
        Self::from_seed(name, random_seed()?)
    }

    /// Parses `PRIVATE+KEY+<name>+<hex8 key ID>+<base64(0x04 || seed)>` (the signer-key form of
    /// [`crate::note::Signer`] with the cosignature/v1 type byte).
    pub fn from_skey_text(skey: &str) -> Result<Self> {
        let (name, id, seed) = parse_skey_text(skey, ALG_COSIGNATURE_V1)?;
        let signer = Self::from_seed(&name, seed)?;
        if id != signer.key_id {
            return Err(Error::malformed(
                "signer key.key_id",
                "does not match the key",
            ));
        }
        Ok(signer)
    }

    /// The secret key text. Treat it as a secret: never log it.
    pub fn to_skey_text(&self) -> String {
        skey_text(&self.name, self.key_id, ALG_COSIGNATURE_V1, &self.seed)
    }

    /// The witness's key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The witness's public key (type 0x04) in vkey form.
    pub fn verifier_key(&self) -> VerifierKey {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(self.pair.public_key().as_ref());
        // The name was validated in `from_seed`.
        VerifierKey::cosignature_v1(&self.name, pk).expect("validated name")
    }

    /// The cosignature line (`— name base64\n`) for `note_text` at `timestamp`.
    pub fn cosign(&self, note_text: &str, timestamp: u64) -> String {
        let sig = self
            .pair
            .sign(&cosigned_message(timestamp, note_text.as_bytes()));
        let mut bytes = Vec::with_capacity(4 + 8 + 64);
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(sig.as_ref());
        format!("\u{2014} {} {}\n", self.name, B64.encode(bytes))
    }
}

impl std::fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CosignatureSigner({}+{:08x}, <secret>)",
            self.name, self.key_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{Signer, open_note, split_note};

    #[test]
    fn cosignature_round_trip_and_rejections() {
        let log = Signer::from_seed("hub.example/audit-log", [7; 32]).unwrap();
        let w = CosignatureSigner::from_seed("witness.example/w1", [9; 32]).unwrap();
        let wk = w.verifier_key();
        assert_eq!(VerifierKey::parse(&wk.to_string()).unwrap(), wk);
        let text = "hub.example/audit-log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let signed = crate::note::sign_note(text, &[&log]).unwrap();
        let cosigned = format!("{signed}{}", w.cosign(text, 1_700_000_000));
        let (_, sigs) = split_note(cosigned.as_bytes()).unwrap();
        assert_eq!(sigs[1].sig.len(), 72, "4+8+64 byte payload");
        assert_eq!(
            verify_cosignature(&wk, text, &sigs[1]).unwrap(),
            1_700_000_000
        );
        // Through open_note with both keys.
        let n = open_note(cosigned.as_bytes(), &[log.verifier_key(), wk.clone()]).unwrap();
        assert_eq!(n.verified.len(), 2);
        // Wrong text, wrong key kind, changed timestamp.
        assert!(verify_cosignature(&wk, "other\n", &sigs[1]).is_err());
        assert!(verify_cosignature(&log.verifier_key(), text, &sigs[1]).is_err());
        let mut tampered = sigs[1].clone();
        tampered.sig[7] ^= 1;
        assert!(matches!(
            verify_cosignature(&wk, text, &tampered),
            Err(Error::InvalidSignature { .. })
        ));
        // An Ed25519 (0x01) key with the witness's name and seed has a different key ID.
        let same_seed = Signer::from_seed("witness.example/w1", [9; 32]).unwrap();
        assert_ne!(same_seed.key_id(), wk.key_id());
        // The secret key text round-trips, and is not taken for a 0x01 note key or vice versa.
        let again = CosignatureSigner::from_skey_text(&w.to_skey_text()).unwrap();
        assert_eq!(again.verifier_key(), wk);
        assert!(Signer::from_skey_text(&w.to_skey_text()).is_err());
        assert!(CosignatureSigner::from_skey_text(&same_seed.to_skey_text()).is_err());
        assert!(!format!("{w:?}").contains(&w.to_skey_text()));
        let fresh = CosignatureSigner::generate("witness.example/w2").unwrap();
        assert_ne!(fresh.verifier_key(), wk);
    }
}
