//! TLS: the one module that owns the crypto provider, protocol versions and client verification.
//!
//! Invariants:
//! - The ring provider only (no aws-lc-rs); TLS 1.2 and 1.3.
//! - Client certificates are mandatory and verified against the configured CA bundle and CRLs
//!   (full chain; an expired CRL refuses the clients it covers — `enforce_revocation_expiration`).
//! - The leaf must carry an extended-key-usage extension that lists clientAuth. WebPKI alone accepts
//!   a leaf without the extension (RFC 5280 reads "no EKU" as "any purpose"); the hub does not, and
//!   refuses it with the reason `no_extended_key_usage` (test `tls::tests::a_leaf_without_eku_is_refused`,
//!   e2e `handshake::a_certificate_without_extended_key_usage_is_refused`).
//! - After chain verification the certificate must also name a valid identity (URI SAN), else the
//!   handshake fails: an unidentifiable client never reaches the HTTP layer.
//! - [`TlsState`] holds the current material in an `ArcSwap`; every accepted connection reads the
//!   current `ServerConfig`. A reload builds a complete new config first and swaps only on success,
//!   so a bad file leaves the old config in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ExtendedKeyPurpose, RootCertStore,
    ServerConfig, SignatureScheme,
};

use crate::identity::{IdentityError, IdentityRules, identity_from_der};

/// The process-wide crypto provider: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Install ring as the process default (call first thing in `main`; harmless if already set).
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Files that make up the TLS material.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    pub crls: Vec<PathBuf>,
}

/// Why TLS material could not be loaded. Names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("TLS configuration rejected: {0}")]
    Config(String),
}

/// Freshness of one loaded CRL.
#[derive(Debug, Clone)]
pub struct CrlInfo {
    pub path: PathBuf,
    pub issuer: String,
    pub this_update: SystemTime,
    /// None when the CRL has no nextUpdate (then it never expires; discouraged).
    pub next_update: Option<SystemTime>,
    pub revoked_count: usize,
}

impl CrlInfo {
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.next_update.is_none_or(|n| n > now)
    }
}

/// One complete, consistent set of TLS material.
pub struct TlsMaterial {
    pub server_config: Arc<ServerConfig>,
    pub crls: Vec<CrlInfo>,
    /// Hash of the bytes of every file, to detect changes when polling.
    pub fingerprint: [u8; 32],
}

/// The live TLS state shared by the accept loop, `/readyz` and the reloader.
pub struct TlsState {
    paths: TlsPaths,
    rules: IdentityRules,
    current: ArcSwap<TlsMaterial>,
    /// Fingerprint of the last file set that failed to load, so polling logs a bad file once, not
    /// on every tick.
    last_refused: std::sync::Mutex<Option<[u8; 32]>>,
}

impl TlsState {
    /// Load the material; fails with the file at fault.
    pub fn load(paths: TlsPaths, rules: IdentityRules) -> Result<Arc<TlsState>, TlsError> {
        let material = build_material(&paths, &rules)?;
        Ok(Arc::new(TlsState {
            paths,
            rules,
            current: ArcSwap::from_pointee(material),
            last_refused: Default::default(),
        }))
    }

    /// The config new connections should use.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.load().server_config.clone()
    }

    pub fn crls(&self) -> Vec<CrlInfo> {
        self.current.load().crls.clone()
    }

    pub fn rules(&self) -> &IdentityRules {
        &self.rules
    }

    /// Rebuild from the files. On success the new material is in force for new connections and
    /// `Ok(true)` is returned (`Ok(false)`: nothing changed). On failure the old material stays.
    /// With `force` (SIGHUP) a file set that was refused before is tried and reported again; without
    /// it (polling) it is skipped until the files change.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let fingerprint = fingerprint(&self.paths)?;
        if fingerprint == self.current.load().fingerprint {
            return Ok(false);
        }
        let mut refused = self.last_refused.lock().unwrap_or_else(|e| e.into_inner());
        if !force && *refused == Some(fingerprint) {
            return Ok(false);
        }
        match build_material(&self.paths, &self.rules) {
            Ok(material) => {
                self.current.store(Arc::new(material));
                *refused = None;
                Ok(true)
            }
            Err(e) => {
                *refused = Some(fingerprint);
                Err(e)
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn fingerprint(paths: &TlsPaths) -> Result<[u8; 32], TlsError> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in [&paths.cert, &paths.key, &paths.client_ca]
        .into_iter()
        .chain(paths.crls.iter())
    {
        let bytes = read(p)?;
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(&bytes);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

fn invalid(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn build_material(paths: &TlsPaths, rules: &IdentityRules) -> Result<TlsMaterial, TlsError> {
    let fp = fingerprint(paths)?;

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&paths.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(&paths.cert, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(&paths.cert, "no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&paths.key)?)
        .map_err(|e| invalid(&paths.key, format!("not a PEM private key: {e}")))?;

    let mut roots = RootCertStore::empty();
    let ca_certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&paths.client_ca)?)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(&paths.client_ca, format!("not a PEM CA bundle: {e}")))?;
    if ca_certs.is_empty() {
        return Err(invalid(&paths.client_ca, "no CA certificate found"));
    }
    for ca in ca_certs {
        roots
            .add(ca)
            .map_err(|e| invalid(&paths.client_ca, format!("CA certificate rejected: {e}")))?;
    }

    let mut crls = Vec::new();
    let mut infos = Vec::new();
    for path in &paths.crls {
        let bytes = read(path)?;
        let found: Vec<CertificateRevocationListDer<'static>> =
            CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(path, format!("not a PEM CRL: {e}")))?;
        if found.is_empty() {
            return Err(invalid(path, "no CRL found"));
        }
        for crl in found {
            infos.push(crl_info(path, &crl)?);
            crls.push(crl);
        }
    }

    let provider = provider();
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if !crls.is_empty() {
        builder = builder.with_crls(crls).enforce_revocation_expiration();
    }
    let inner = builder
        .build()
        .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
    let verifier = Arc::new(IdentityCheckingVerifier {
        inner,
        rules: rules.clone(),
    });

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&paths.key, format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        server_config: Arc::new(config),
        crls: infos,
        fingerprint: fp,
    })
}

fn crl_info(path: &Path, crl: &CertificateRevocationListDer<'_>) -> Result<CrlInfo, TlsError> {
    use x509_parser::prelude::FromDer;
    let (_, parsed) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(crl.as_ref())
            .map_err(|e| invalid(path, format!("CRL cannot be parsed: {e}")))?;
    let to_time = |t: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(t.timestamp().max(0) as u64)
    };
    Ok(CrlInfo {
        path: path.to_owned(),
        issuer: parsed.issuer().to_string(),
        this_update: to_time(parsed.last_update()),
        next_update: parsed.next_update().map(to_time),
        revoked_count: parsed.iter_revoked_certificates().count(),
    })
}

/// Wraps the WebPKI verifier: after the chain checks out, the certificate must also name an identity.
#[derive(Debug)]
struct IdentityCheckingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    rules: IdentityRules,
}

/// The error carried inside `CertificateError::Other` when the chain is fine but the identity is not.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IdentityRejected(pub IdentityError);

impl ClientCertVerifier for IdentityCheckingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        require_client_auth_usage(end_entity.as_ref())?;
        identity_from_der(end_entity.as_ref(), &self.rules).map_err(|e| {
            // A certificate error, so the client gets the `certificate_unknown` alert
            // (an `Error::Other` would give a bare `handshake_failure`).
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(IdentityRejected(e)),
            )))
        })?;
        Ok(verified)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The leaf must say it is for client authentication: an extended-key-usage extension listing
/// clientAuth. WebPKI has already refused an extension that lacks clientAuth; this refuses a leaf
/// without the extension, which WebPKI accepts as "any purpose".
fn require_client_auth_usage(der: &[u8]) -> Result<(), rustls::Error> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let refused = |presented: Vec<ExtendedKeyPurpose>| {
        rustls::Error::InvalidCertificate(CertificateError::InvalidPurposeContext {
            required: ExtendedKeyPurpose::ClientAuth,
            presented,
        })
    };
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    match cert.extended_key_usage() {
        Ok(Some(eku)) if eku.value.client_auth => Ok(()),
        Ok(Some(_)) => Err(refused(vec![ExtendedKeyPurpose::Other(Vec::new())])),
        // No extension at all (or two of them, which x509-parser reports as an error).
        Ok(None) | Err(_) => Err(refused(Vec::new())),
    }
}

/// A stable reason code for a failed handshake, for the log line and the metric label.
pub fn refusal_reason(err: &std::io::Error) -> &'static str {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                "client_closed"
            }
            std::io::ErrorKind::TimedOut => "handshake_timeout",
            _ => "io_error",
        };
    };
    match tls {
        rustls::Error::NoCertificatesPresented => "no_client_certificate",
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer => "unknown_issuer",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate_expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate_not_yet_valid"
            }
            CertificateError::Revoked => "certificate_revoked",
            // Raised by `require_client_auth_usage` only: the leaf has no EKU extension.
            CertificateError::InvalidPurposeContext { presented, .. } if presented.is_empty() => {
                "no_extended_key_usage"
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "wrong_key_usage"
            }
            CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => "crl_expired",
            CertificateError::UnknownRevocationStatus => "revocation_status_unknown",
            CertificateError::BadSignature => "bad_certificate_signature",
            CertificateError::Other(other) => match other.0.downcast_ref::<IdentityRejected>() {
                Some(IdentityRejected(e)) => e.code(),
                None => "bad_certificate",
            },
            _ => "bad_certificate",
        },
        rustls::Error::Other(_) => "verifier_error",
        rustls::Error::PeerIncompatible(_) => "peer_incompatible",
        rustls::Error::NoApplicationProtocol => "no_application_protocol",
        rustls::Error::AlertReceived(_) => "alert_received",
        _ => "protocol_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CertOptions, ClientSpec, Pki};

    fn rules() -> IdentityRules {
        IdentityRules {
            trust_domain: "jishijiu.jining".into(),
            division_prefix: "3708".into(),
        }
    }

    /// The verifier the hub builds, over the CA in `pki` (no CRLs).
    fn verifier(pki: &Pki) -> IdentityCheckingVerifier {
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(pki.ca_pem_path()).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
        IdentityCheckingVerifier {
            inner,
            rules: rules(),
        }
    }

    /// Verify `name`'s certificate; the refusal reason or "accepted".
    fn verdict(pki: &Pki, name: &str) -> &'static str {
        let leaf = CertificateDer::from_pem_file(pki.cert_path(name)).unwrap();
        match verifier(pki).verify_client_cert(&leaf, &[], UnixTime::now()) {
            Ok(_) => "accepted",
            Err(e) => refusal_reason(&std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }

    #[test]
    fn a_leaf_without_eku_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(dir.path(), "Test CA", "jishijiu.jining", 30).unwrap();
        let spec = |principal: &str| ClientSpec {
            role: schemas::Role::Caseworker,
            organisation: "mz-370811002".into(),
            division: "370811002".into(),
            principal: principal.into(),
            display_name: "测试经办人".into(),
        };
        pki.issue_client("good", &spec("cw-good"), 30).unwrap();
        let no_eku = CertOptions {
            client_auth: false,
            server_auth: false,
            ..CertOptions::client(30)
        };
        pki.issue_client_with("no-eku", &spec("cw-no-eku"), &no_eku)
            .unwrap();
        let server_only = CertOptions {
            client_auth: false,
            server_auth: true,
            ..CertOptions::client(30)
        };
        pki.issue_client_with("server-only", &spec("cw-server-only"), &server_only)
            .unwrap();
        assert_eq!(verdict(&pki, "good"), "accepted");
        assert_eq!(verdict(&pki, "no-eku"), "no_extended_key_usage");
        assert_eq!(verdict(&pki, "server-only"), "wrong_key_usage");
    }
}
