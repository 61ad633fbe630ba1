//! The department's answer-signing key (Ed25519, PKCS#8 v2 as produced by ring).
//!
//! `connector keygen` writes a fresh key with [`generate_pkcs8`]; the server loads it with
//! [`load_key`]. The public key is what the hub operator configures for the department; it is
//! printed in hex, in base64 and with its protocol key id (`ed25519:<16 hex>`).

use std::path::Path;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use schemas::DepartmentKey;

/// Why a signing key could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key: cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("signing key: {path} is not an Ed25519 PKCS#8 key ({detail})")]
    Invalid { path: String, detail: String },
    #[error("signing key: the system random generator failed")]
    Random,
}

/// A fresh Ed25519 key as PKCS#8 v2 DER.
pub fn generate_pkcs8() -> Result<Vec<u8>, KeyError> {
    Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| KeyError::Random)
}

/// Parse a PKCS#8 key (ring's v2 form; v1 keys from OpenSSL are accepted too).
pub fn key_from_pkcs8(der: &[u8], path: &str) -> Result<Ed25519KeyPair, KeyError> {
    Ed25519KeyPair::from_pkcs8(der)
        .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
        .map_err(|e| KeyError::Invalid {
            path: path.to_owned(),
            detail: e.to_string(),
        })
}

/// Load the key file (raw DER, or PEM with a `PRIVATE KEY` block).
pub fn load_key(path: &Path) -> Result<Ed25519KeyPair, KeyError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: shown.clone(),
        source,
    })?;
    let der = if bytes.starts_with(b"-----BEGIN") {
        let text = String::from_utf8_lossy(&bytes);
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("");
        base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| KeyError::Invalid {
                path: shown.clone(),
                detail: format!("PEM body: {e}"),
            })?
    } else {
        bytes
    };
    key_from_pkcs8(&der, &shown)
}

/// The PEM form of a PKCS#8 key.
pub fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// How the public key is shown to the hub operator.
pub fn describe_public_key(key: &Ed25519KeyPair) -> String {
    let pk = key.public_key().as_ref();
    let dk = DepartmentKey::of(key);
    format!(
        "key_id     = {}\npublic_hex = {}\npublic_b64 = {}\n",
        dk.key_id,
        hex::encode(pk),
        base64::engine::general_purpose::STANDARD.encode(pk)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_from_der_and_pem() {
        let dir = tempfile::tempdir().unwrap();
        let der = generate_pkcs8().unwrap();
        let der_path = dir.path().join("k.der");
        let pem_path = dir.path().join("k.pem");
        std::fs::write(&der_path, &der).unwrap();
        std::fs::write(&pem_path, pkcs8_pem(&der)).unwrap();
        let a = load_key(&der_path).unwrap();
        let b = load_key(&pem_path).unwrap();
        assert_eq!(a.public_key().as_ref(), b.public_key().as_ref());
        assert!(describe_public_key(&a).contains(&DepartmentKey::of(&a).key_id));
        std::fs::write(&der_path, b"not a key").unwrap();
        let err = load_key(&der_path).unwrap_err().to_string();
        assert!(err.contains("is not an Ed25519 PKCS#8 key"), "{err}");
    }
}
