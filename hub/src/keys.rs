//! Key material the hub holds: the Ed25519 signing key (log checkpoints, reports), the HMAC key
//! for subject pseudonyms and the data-encryption key (数据加密密钥) personal fields are sealed
//! under at rest. `hub keygen` writes all three; the hub loads them at start-up and refuses to
//! start without the first two (`/readyz` reports them).
//!
//! Sealing: AES-256-GCM (ring), a fresh random 96-bit nonce per record, and associated data that
//! binds the ciphertext to the record it belongs to (a sealed field copied into another row does
//! not open). Every sealed record names its key id, the first 8 bytes of SHA-256 of the key in
//! hex, so keys rotate: the current key seals, retired keys still open what they sealed, and an
//! unknown key id is a clear error ([`SealError::UnknownKey`]), never a silent failure.

use std::path::Path;

use std::collections::BTreeMap;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// The file `hub keygen` writes the data-encryption key to.
pub const DATA_KEY_FILE: &str = "data.key";

/// Loaded keys.
pub struct HubKeys {
    pub signing: Ed25519KeyPair,
    pseudonym: schemas::access_log::PseudonymKey,
    /// The data-encryption keys by key id, and the id of the one that seals.
    data: BTreeMap<String, LessSafeKey>,
    data_current: Option<String>,
}

/// Why a record could not be sealed or opened. Never carries the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no data-encryption key is configured ([keys] data_key)")]
    Unconfigured,
    #[error("the record was sealed under data key {0}, which this hub does not hold")]
    UnknownKey(String),
    #[error("the sealed record does not open (damaged, or not this record's)")]
    Open,
    #[error("sealing failed")]
    Seal,
}

/// The key id of a data key: the first 8 bytes of its SHA-256, hex.
pub fn data_key_id(key: &[u8]) -> String {
    hex::encode(&ring::digest::digest(&ring::digest::SHA256, key).as_ref()[..8])
}

impl std::fmt::Debug for HubKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubKeys")
            .field(
                "signing_public",
                &hex::encode(self.signing.public_key().as_ref()),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: already exists; refusing to overwrite a key")]
    Exists { path: String },
}

impl HubKeys {
    pub fn load(signing_key: &Path, pseudonym_key: &Path) -> Result<HubKeys, KeyError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| KeyError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let der = read(signing_key)?;
        let signing = Ed25519KeyPair::from_pkcs8(&der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der))
            .map_err(|e| KeyError::Invalid {
                path: signing_key.display().to_string(),
                message: format!("not an Ed25519 PKCS#8 key: {e}"),
            })?;
        let secret = read(pseudonym_key)?;
        let pseudonym =
            schemas::access_log::PseudonymKey::new(&secret).map_err(|e| KeyError::Invalid {
                path: pseudonym_key.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(HubKeys {
            signing,
            pseudonym,
            data: BTreeMap::new(),
            data_current: None,
        })
    }

    /// Add the data-encryption key (`current`, which seals) and retired ones (which only open).
    pub fn with_data_keys(
        mut self,
        current: Option<&Path>,
        retired: &[std::path::PathBuf],
    ) -> Result<HubKeys, KeyError> {
        let load = |p: &Path| -> Result<(String, LessSafeKey), KeyError> {
            let bytes = std::fs::read(p).map_err(|source| KeyError::Read {
                path: p.display().to_string(),
                source,
            })?;
            let invalid = || KeyError::Invalid {
                path: p.display().to_string(),
                message: "a data key is exactly 32 bytes".into(),
            };
            if bytes.len() != 32 {
                return Err(invalid());
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| invalid())?;
            Ok((data_key_id(&bytes), LessSafeKey::new(key)))
        };
        for p in retired {
            let (id, key) = load(p)?;
            self.data.insert(id, key);
        }
        if let Some(p) = current {
            let (id, key) = load(p)?;
            self.data.insert(id.clone(), key);
            self.data_current = Some(id);
        }
        Ok(self)
    }

    /// Write a fresh data-encryption key into `dir` (never overwriting).
    pub fn generate_data_key(dir: &Path) -> Result<std::path::PathBuf, KeyError> {
        let path = dir.join(DATA_KEY_FILE);
        if path.exists() {
            return Err(KeyError::Exists {
                path: path.display().to_string(),
            });
        }
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        write_private(&path, &secret)?;
        Ok(path)
    }

    /// The id of the key that seals, if one is configured.
    pub fn data_key_id(&self) -> Option<&str> {
        self.data_current.as_deref()
    }

    /// Seal `plaintext` under the current data key, bound to `aad` (the record it belongs to).
    /// Returns the key id and `hex(nonce || ciphertext || tag)`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<(String, String), SealError> {
        let id = self.data_current.as_ref().ok_or(SealError::Unconfigured)?;
        let key = self.data.get(id).ok_or(SealError::Unconfigured)?;
        let mut nonce = [0u8; NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| SealError::Seal)?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map_err(|_| SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok((id.clone(), hex::encode(out)))
    }

    /// Open what [`HubKeys::seal`] sealed under `key_id` with the same `aad`.
    pub fn open(&self, key_id: &str, aad: &[u8], sealed: &str) -> Result<Vec<u8>, SealError> {
        let key = self
            .data
            .get(key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.chars().take(32).collect()))?;
        let bytes = hex::decode(sealed).map_err(|_| SealError::Open)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Open);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = rest.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }

    /// Write a fresh signing key and pseudonym key into `dir` (never overwriting).
    pub fn generate(dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf), KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Read {
            path: dir.display().to_string(),
            source,
        })?;
        let signing = dir.join("hub-signing.pk8");
        let pseudonym = dir.join("pseudonym.key");
        for p in [&signing, &pseudonym] {
            if p.exists() {
                return Err(KeyError::Exists {
                    path: p.display().to_string(),
                });
            }
        }
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Invalid {
            path: signing.display().to_string(),
            message: "key generation failed".into(),
        })?;
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        write_private(&signing, pkcs8.as_ref())?;
        write_private(&pseudonym, &secret)?;
        if !dir.join(DATA_KEY_FILE).exists() {
            Self::generate_data_key(dir)?;
        }
        Ok((signing, pseudonym))
    }

    /// The signing key's raw 32-byte Ed25519 public key.
    pub fn signing_public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.signing.public_key().as_ref());
        out
    }

    /// The keyed pseudonym (hex HMAC-SHA256) of a subject identifier. Used wherever a person must be
    /// referred to in logs, traces, metrics or the access log.
    pub fn pseudonym(&self, subject: &str) -> String {
        schemas::access_log::pseudonymize(&self.pseudonym, subject)
            .as_str()
            .to_owned()
    }

    /// The deployment's pseudonym key (same HMAC as [`HubKeys::pseudonym`]), for access-log subjects.
    pub fn pseudonym_key(&self) -> &schemas::access_log::PseudonymKey {
        &self.pseudonym
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let err = |source| KeyError::Read {
        path: path.display().to_string(),
        source,
    };
    std::fs::write(path, bytes).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path, current: &str, retired: &[&str]) -> HubKeys {
        let retired: Vec<_> = retired.iter().map(|r| dir.join(r)).collect();
        HubKeys::load(&dir.join("hub-signing.pk8"), &dir.join("pseudonym.key"))
            .unwrap()
            .with_data_keys(Some(&dir.join(current)), &retired)
            .unwrap()
    }

    #[test]
    fn sealed_records_open_only_with_their_key_and_record() {
        let dir = tempfile::tempdir().unwrap();
        HubKeys::generate(dir.path()).unwrap();
        let k = keys(dir.path(), DATA_KEY_FILE, &[]);
        let id = k.data_key_id().unwrap().to_owned();
        assert_eq!(id.len(), 16);
        let secret = b"370811199001011234";
        let (kid, sealed) = k.seal(b"case-1", secret).unwrap();
        assert_eq!(kid, id);
        assert!(!sealed.contains("370811199001011234"));
        assert_eq!(k.open(&kid, b"case-1", &sealed).unwrap(), secret);
        // Bound to its record: another row's associated data does not open it.
        assert_eq!(k.open(&kid, b"case-2", &sealed), Err(SealError::Open));
        // A flipped byte does not open.
        let mut bad = sealed.clone().into_bytes();
        bad[30] = if bad[30] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(k.open(&kid, b"case-1", &bad), Err(SealError::Open));
        // An unknown key id is named.
        assert_eq!(
            k.open("00000000deadbeef", b"case-1", &sealed),
            Err(SealError::UnknownKey("00000000deadbeef".into()))
        );
        // Rotation: a new current key seals; the retired one still opens what it sealed.
        std::fs::rename(dir.path().join(DATA_KEY_FILE), dir.path().join("old.key")).unwrap();
        HubKeys::generate_data_key(dir.path()).unwrap();
        let rotated = keys(dir.path(), DATA_KEY_FILE, &["old.key"]);
        assert_ne!(rotated.data_key_id().unwrap(), id);
        assert_eq!(rotated.open(&kid, b"case-1", &sealed).unwrap(), secret);
        let (new_id, _) = rotated.seal(b"case-1", secret).unwrap();
        assert_ne!(new_id, id);
        // Without any data key nothing is sealed.
        let none = HubKeys::load(
            &dir.path().join("hub-signing.pk8"),
            &dir.path().join("pseudonym.key"),
        )
        .unwrap();
        assert_eq!(none.seal(b"x", b"y"), Err(SealError::Unconfigured));
    }
}
