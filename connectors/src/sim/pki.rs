//! 测试 PKI: throw-away certificates for tests and the demo, made with rcgen (ring backend).
//!
//! Never for production: keys live in memory, validity is rcgen's default, and nothing is revoked.
//! [`SimPki::generate`] makes the two trust roots the protocol needs — the hub's CA (issues the
//! hub's client certificate, trusted by departments) and a departments' CA (issues each
//! department's server certificate, trusted by the hub) — and hands out rustls configs for both
//! ends. Server certificates carry the DNS SAN `localhost` and the IP SAN `127.0.0.1`.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use schemas::Department;

use crate::adapter::tls::{ServerTls, provider};

/// Why test PKI could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("tls config: {0}")]
    Tls(String),
}

/// A certificate authority held in memory.
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

/// A leaf certificate and its private key.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Leaf {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

impl TestCa {
    /// A self-signed CA with the given common name.
    pub fn new(common_name: &str) -> Result<TestCa, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(TestCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            params,
            key,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// A server certificate for `localhost` / `127.0.0.1` (plus `extra_dns`).
    pub fn issue_server(&self, common_name: &str, extra_dns: &[&str]) -> Result<Leaf, PkiError> {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        names.extend(extra_dns.iter().map(|s| s.to_string()));
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate; `uri_san` (e.g. a `spiffe://…` identity) is added when given.
    pub fn issue_client(&self, common_name: &str, uri_san: Option<&str>) -> Result<Leaf, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(uri) = uri_san {
            params
                .subject_alt_names
                .push(SanType::URI(uri.to_owned().try_into()?));
        }
        self.issue(params)
    }

    fn issue(&self, mut params: CertificateParams) -> Result<Leaf, PkiError> {
        params.is_ca = IsCa::NoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }
}

/// The PKI of a test or demo run: hub CA + hub client certificate, departments' CA.
pub struct SimPki {
    /// Issues the hub's client certificates; departments trust it.
    pub hub_ca: TestCa,
    /// The hub's client certificate (URI SAN `spiffe://jishijiu.jining/hub/hub/370800/hub-1`).
    pub hub_client: Leaf,
    /// Issues the departments' server certificates; the hub trusts it.
    pub department_ca: TestCa,
}

/// The URI SAN of the hub's test client certificate.
pub const HUB_CLIENT_URI: &str = "spiffe://jishijiu.jining/hub/hub/370800/hub-1";

impl SimPki {
    pub fn generate() -> Result<SimPki, PkiError> {
        let hub_ca = TestCa::new("Jishijiu Hub test CA")?;
        let hub_client = hub_ca.issue_client("jishijiu-hub", Some(HUB_CLIENT_URI))?;
        let department_ca = TestCa::new("Jining departments test CA")?;
        Ok(SimPki {
            hub_ca,
            hub_client,
            department_ca,
        })
    }

    /// A fresh server certificate for `department` and the hub CA as client CA.
    pub fn server_tls(&self, department: Department) -> Result<ServerTls, PkiError> {
        let leaf = self
            .department_ca
            .issue_server(&format!("{department}.departments.jining"), &[])?;
        Ok(ServerTls {
            cert_chain: vec![leaf.cert_der.clone()],
            key: leaf.key_der(),
            client_ca: vec![self.hub_ca.cert_der()],
        })
    }

    /// A rustls client config presenting the hub's client certificate and trusting the
    /// departments' CA (what the hub's connector uses).
    pub fn hub_client_config(&self) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        client_config(&self.department_ca, Some(&self.hub_client))
    }
}

/// A ring client config trusting `ca`, optionally presenting `client`.
pub fn client_config(
    ca: &TestCa,
    client: Option<&Leaf>,
) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.cert_der())
        .map_err(|e| PkiError::Tls(e.to_string()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.cert_der.clone()], leaf.key_der())
            .map_err(|e| PkiError::Tls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
