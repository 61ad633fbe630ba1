//! Key material the hub holds: the Ed25519 signing key (log checkpoints, reports) and the HMAC key
//! for subject pseudonyms. `hub keygen` writes both; the hub loads them at start-up and refuses to
//! start without them (`/readyz` reports them).

use std::path::Path;

use ring::signature::{Ed25519KeyPair, KeyPair};

/// Loaded keys.
pub struct HubKeys {
    pub signing: Ed25519KeyPair,
    pseudonym: schemas::access_log::PseudonymKey,
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
        Ok(HubKeys { signing, pseudonym })
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
