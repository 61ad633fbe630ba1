//! Server-side mTLS for the department adapter: one place that picks the crypto provider (ring),
//! the protocol versions and the client-certificate policy.
//!
//! Invariants: client certificates are REQUIRED and verified against the configured CA (the hub's
//! CA); there is no anonymous mode. Only the ring provider is used (no aws-lc-rs). ALPN offers
//! HTTP/2 and HTTP/1.1.

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS material could not be loaded or assembled. Names the item at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: cannot read {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{what}: not valid PEM: {detail}")]
    Pem { what: &'static str, detail: String },
    #[error("{what}: contains no certificate")]
    Empty { what: &'static str },
    #[error("client CA: {0}")]
    ClientCa(String),
    #[error("server certificate/key: {0}")]
    Config(String),
}

/// The material a department's server needs: its certificate chain and key, and the CA that
/// issues the hub's client certificates.
#[derive(Debug)]
pub struct ServerTls {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub client_ca: Vec<CertificateDer<'static>>,
}

impl Clone for ServerTls {
    fn clone(&self) -> Self {
        Self {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            client_ca: self.client_ca.clone(),
        }
    }
}

/// The ring crypto provider (the only one the project uses).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl ServerTls {
    /// From PEM text: the server's chain (leaf first), its private key, and the client CA bundle.
    pub fn from_pem(
        cert_chain_pem: &str,
        key_pem: &str,
        client_ca_pem: &str,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            cert_chain: certs("server certificate", cert_chain_pem.as_bytes())?,
            key: PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Pem {
                what: "server key",
                detail: e.to_string(),
            })?,
            client_ca: certs("client CA", client_ca_pem.as_bytes())?,
        })
    }

    /// From PEM files.
    pub fn from_files(cert_chain: &Path, key: &Path, client_ca: &Path) -> Result<Self, TlsError> {
        let read = |what: &'static str, p: &Path| {
            std::fs::read_to_string(p).map_err(|source| TlsError::Read {
                what,
                path: p.display().to_string(),
                source,
            })
        };
        Self::from_pem(
            &read("server certificate", cert_chain)?,
            &read("server key", key)?,
            &read("client CA", client_ca)?,
        )
    }

    /// A rustls server config that requires and verifies client certificates.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = provider();
        let mut roots = rustls::RootCertStore::empty();
        for ca in &self.client_ca {
            roots
                .add(ca.clone())
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn certs(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty { what });
    }
    Ok(certs)
}
