//! The hub's outbound TLS: one rustls `ClientConfig` per department, built here and nowhere else.
//!
//! Invariants:
//! - Crypto provider: ring, always passed explicitly (never the process default), so the build can
//!   never panic on an ambiguous provider and `aws-lc-rs` is never needed.
//! - Trust: only the department's own CA roots (no web PKI, no platform verifier). A department
//!   certificate signed by any other CA — including another department's — is rejected.
//! - The hub always presents its client certificate (mTLS).
//! - Protocol versions: TLS 1.3 and 1.2 (rustls safe defaults). To pin TLS 1.3 only, or to switch
//!   provider (post-quantum key exchange, FIPS), change [`provider`] and [`client_config`] only.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a department's TLS client configuration cannot be built (a hub configuration fault).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{what}: no PEM {kind} found")]
    Empty {
        what: &'static str,
        kind: &'static str,
    },
    #[error("{what}: unreadable PEM: {source}")]
    Pem {
        what: &'static str,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("department CA root rejected: {0}")]
    Root(#[source] rustls::Error),
    #[error("client certificate or key rejected: {0}")]
    ClientAuth(#[source] rustls::Error),
    #[error("protocol versions: {0}")]
    Versions(#[source] rustls::Error),
}

/// The crypto provider for every outbound connection: ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Build the client configuration for one department: trust `department_roots` only, present
/// `client_chain` (leaf first) with `client_key`. ALPN offers `h2` and `http/1.1`.
pub fn client_config(
    department_roots: &[CertificateDer<'static>],
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    if department_roots.is_empty() {
        return Err(TlsSetupError::Empty {
            what: "department CA",
            kind: "certificate",
        });
    }
    for root in department_roots {
        roots.add(root.clone()).map_err(TlsSetupError::Root)?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Versions)?
        .with_root_certificates(roots)
        .with_client_auth_cert(client_chain, client_key)
        .map_err(TlsSetupError::ClientAuth)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// [`client_config`] from PEM bytes: the department's CA certificate(s), the hub's client
/// certificate chain (leaf first) and the hub's private key (PKCS#8, SEC1 or PKCS#1).
pub fn client_config_from_pem(
    department_ca_pem: &[u8],
    client_chain_pem: &[u8],
    client_key_pem: &[u8],
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let roots = certs("department CA", department_ca_pem)?;
    let chain = certs("client certificate", client_chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(client_key_pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsSetupError::Empty {
            what: "client key",
            kind: "private key",
        },
        source => TlsSetupError::Pem {
            what: "client key",
            source,
        },
    })?;
    client_config(&roots, chain, key)
}

fn certs(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsSetupError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Empty {
            what,
            kind: "certificate",
        });
    }
    Ok(certs)
}
