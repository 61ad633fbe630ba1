//! `hub pki`: a development certificate authority (rcgen).
//!
//! Layout of a PKI directory:
//! - `ca.pem`, `ca.key` — the CA certificate and its key (the key file is mode 0600);
//! - `<name>.pem`, `<name>.key` — issued certificates and keys;
//! - `issued.json` — every certificate issued: serial, name, URI SAN, expiry, revocation;
//! - `ca.crl` — the CRL last published (`publish_crl`), numbered monotonically.
//!
//! Client certificates carry the identity as a URI SAN (see [`crate::identity`]), the clientAuth
//! extended key usage and the display name as CN. Production deployments bring their own CA: the hub
//! only needs the CA bundle, CRLs and certificates with the same SAN scheme (see README).
//!
//! Invariants (tests in this module):
//! - A principal id names one identity: a client certificate is refused when a certificate already
//!   issued from this directory (revoked or not) carries the same principal under another URI
//!   (another organisation, role or division). Re-issuing the same identity URI is renewal and is
//!   allowed. Test `pki::tests::a_principal_names_one_identity`.
//! - Server certificates are valid for at most [`MAX_SERVER_CERT_DAYS`] days (Mozilla's
//!   intermediate profile expects at most 366). Test
//!   `pki::tests::server_certificates_live_a_year_at_most`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use schemas::Role;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::identity::identity_uri;

/// Longest validity of a server certificate, in days (Mozilla's intermediate TLS profile: ≤ 366).
pub const MAX_SERVER_CERT_DAYS: i64 = 365;

/// A PKI operation failure.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

/// One issued certificate as recorded in `issued.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuedCert {
    pub serial: String,
    pub name: String,
    pub kind: String,
    pub uri: Option<String>,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    crl_number: u64,
    issued: Vec<IssuedCert>,
}

/// What a client certificate says about its holder.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub role: Role,
    pub organisation: String,
    pub division: String,
    pub principal: String,
    /// Display name (CN), e.g. `张伟 (许庄街道)`.
    pub display_name: String,
}

/// Knobs for unusual certificates (tests: expired, no clientAuth, extra SANs).
#[derive(Debug, Clone)]
pub struct CertOptions {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub client_auth: bool,
    pub server_auth: bool,
    /// URI SANs to put instead of the one derived from the spec (None: derive).
    pub uri_sans: Option<Vec<String>>,
}

impl CertOptions {
    pub fn client(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::days(days),
            client_auth: true,
            server_auth: false,
            uri_sans: None,
        }
    }
}

/// A development CA in a directory.
pub struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    trust_domain: String,
}

fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T, PkiError> {
    r.map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    io(path, std::fs::write(path, contents))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        io(
            path,
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)),
        )?;
    }
    Ok(())
}

fn random_serial() -> (SerialNumber, String) {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x10; // positive and no leading zero byte in DER
    (SerialNumber::from_slice(&bytes), hex::encode(bytes))
}

impl Pki {
    /// Create a new CA in `dir` (which must not hold one yet).
    pub fn init(
        dir: &Path,
        common_name: &str,
        trust_domain: &str,
        days: i64,
    ) -> Result<Pki, PkiError> {
        io(dir, std::fs::create_dir_all(dir))?;
        if dir.join("ca.pem").exists() {
            return Err(PkiError::Invalid(format!(
                "{} already holds a CA (ca.pem)",
                dir.display()
            )));
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "Jishijiu Hub development CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days);
        params.serial_number = Some(random_serial().0);
        params.key_identifier_method = KeyIdMethod::Sha256;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        io(
            &dir.join("ca.pem"),
            std::fs::write(dir.join("ca.pem"), cert.pem()),
        )?;
        write_private(&dir.join("ca.key"), &key.serialize_pem())?;
        std::fs::write(dir.join("trust-domain"), trust_domain).map_err(|source| PkiError::Io {
            path: dir.join("trust-domain"),
            source,
        })?;
        let pki = Pki {
            dir: dir.to_owned(),
            issuer: Issuer::new(params, key),
            trust_domain: trust_domain.to_owned(),
        };
        pki.save_index(&Index::default())?;
        Ok(pki)
    }

    /// Open an existing CA directory.
    pub fn open(dir: &Path) -> Result<Pki, PkiError> {
        let ca_pem = io(
            &dir.join("ca.pem"),
            std::fs::read_to_string(dir.join("ca.pem")),
        )?;
        let key_pem = io(
            &dir.join("ca.key"),
            std::fs::read_to_string(dir.join("ca.key")),
        )?;
        let ca_key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
        let trust_domain = std::fs::read_to_string(dir.join("trust-domain"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "jishijiu.jining".to_owned());
        Ok(Pki {
            dir: dir.to_owned(),
            issuer,
            trust_domain,
        })
    }

    /// Open the CA in `dir`, creating it first if absent.
    pub fn open_or_init(
        dir: &Path,
        common_name: &str,
        trust_domain: &str,
    ) -> Result<Pki, PkiError> {
        if dir.join("ca.pem").exists() {
            Pki::open(dir)
        } else {
            Pki::init(dir, common_name, trust_domain, 3650)
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("ca.crl")
    }
    pub fn cert_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    fn load_index(&self) -> Result<Index, PkiError> {
        let path = self.dir.join("issued.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| PkiError::Invalid(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(source) => Err(PkiError::Io { path, source }),
        }
    }

    fn save_index(&self, index: &Index) -> Result<(), PkiError> {
        let path = self.dir.join("issued.json");
        let tmp = self.dir.join("issued.json.tmp");
        io(
            &tmp,
            std::fs::write(
                &tmp,
                serde_json::to_vec_pretty(index).expect("index serializes"),
            ),
        )?;
        io(&path, std::fs::rename(&tmp, &path))
    }

    pub fn issued(&self) -> Result<Vec<IssuedCert>, PkiError> {
        Ok(self.load_index()?.issued)
    }

    fn check_name(name: &str) -> Result<(), PkiError> {
        if name.is_empty()
            || name == "ca"
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(PkiError::Invalid(format!(
                "certificate name `{name}` must be [A-Za-z0-9_-]+ and not `ca`"
            )));
        }
        Ok(())
    }

    fn issue(
        &self,
        name: &str,
        kind: &str,
        mut params: CertificateParams,
        uri: Option<String>,
    ) -> Result<IssuedCert, PkiError> {
        Self::check_name(name)?;
        let (serial, serial_hex) = random_serial();
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        io(
            &self.cert_path(name),
            std::fs::write(self.cert_path(name), cert.pem()),
        )?;
        write_private(&self.key_path(name), &key.serialize_pem())?;
        let issued = IssuedCert {
            serial: serial_hex,
            name: name.to_owned(),
            kind: kind.to_owned(),
            uri,
            not_after: params.not_after.unix_timestamp(),
            revoked_at: None,
        };
        let mut index = self.load_index()?;
        index
            .issued
            .retain(|c| c.name != name || c.revoked_at.is_some());
        index.issued.push(issued.clone());
        self.save_index(&index)?;
        Ok(issued)
    }

    /// Issue a TLS server certificate for the given DNS names and IP addresses.
    pub fn issue_server(
        &self,
        name: &str,
        dns: &[String],
        ips: &[IpAddr],
        days: i64,
    ) -> Result<IssuedCert, PkiError> {
        if !(1..=MAX_SERVER_CERT_DAYS).contains(&days) {
            return Err(PkiError::Invalid(format!(
                "服务器证书有效期须为 1 至 {MAX_SERVER_CERT_DAYS} 天 / server certificates must be valid for 1 to {MAX_SERVER_CERT_DAYS} days (Mozilla intermediate profile), not {days}"
            )));
        }
        let mut params = CertificateParams::new(dns.to_vec())?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            dns.first().cloned().unwrap_or_else(|| name.to_owned()),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + Duration::days(days);
        self.issue(name, "server", params, None)
    }

    /// Issue a client certificate for an identity.
    pub fn issue_client(
        &self,
        name: &str,
        spec: &ClientSpec,
        days: i64,
    ) -> Result<IssuedCert, PkiError> {
        self.issue_client_with(name, spec, &CertOptions::client(days))
    }

    /// Issue a client certificate with unusual options (validity, key usage, SANs).
    pub fn issue_client_with(
        &self,
        name: &str,
        spec: &ClientSpec,
        opts: &CertOptions,
    ) -> Result<IssuedCert, PkiError> {
        let uri = identity_uri(
            &self.trust_domain,
            spec.role,
            &spec.organisation,
            &spec.division,
            &spec.principal,
        );
        // Explicit SANs are a test knob for malformed certificates; a derived one names an identity.
        if opts.uri_sans.is_none() {
            self.check_principal_unused(&spec.principal, &uri)?;
        }
        let uris = opts.uri_sans.clone().unwrap_or_else(|| vec![uri.clone()]);
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for u in &uris {
            params
                .subject_alt_names
                .push(SanType::URI(u.as_str().try_into()?));
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.display_name.as_str());
        dn.push(DnType::OrganizationalUnitName, spec.organisation.as_str());
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = Vec::new();
        if opts.client_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        if opts.server_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        params.not_before = opts.not_before;
        params.not_after = opts.not_after;
        self.issue(name, "client", params, uris.first().cloned())
    }

    /// A principal id names one identity: refuse `uri` when an issued certificate already uses
    /// `principal` under another URI.
    fn check_principal_unused(&self, principal: &str, uri: &str) -> Result<(), PkiError> {
        let index = self.load_index()?;
        let taken = index.issued.iter().find(|c| {
            c.kind == "client"
                && c.uri.as_deref().is_some_and(|other| {
                    other != uri && other.rsplit('/').next() == Some(principal)
                })
        });
        match taken {
            Some(c) => Err(PkiError::Invalid(format!(
                "主体标识 `{principal}` 已被证书 `{}` ({}) 使用 / principal id `{principal}` is already used by certificate `{}` (serial {}) for {}; choose another principal id",
                c.name,
                c.uri.as_deref().unwrap_or_default(),
                c.name,
                c.serial,
                c.uri.as_deref().unwrap_or_default(),
            ))),
            None => Ok(()),
        }
    }

    /// Mark a certificate revoked (by serial or by name). Takes effect at the next `publish_crl`.
    pub fn revoke(&self, serial_or_name: &str) -> Result<IssuedCert, PkiError> {
        let mut index = self.load_index()?;
        let wanted = serial_or_name.to_ascii_lowercase().replace(':', "");
        let cert = index
            .issued
            .iter_mut()
            .rev()
            .find(|c| c.serial == wanted || c.name == serial_or_name)
            .ok_or_else(|| {
                PkiError::Invalid(format!(
                    "no certificate with serial or name `{serial_or_name}`"
                ))
            })?;
        if cert.revoked_at.is_none() {
            cert.revoked_at = Some(OffsetDateTime::now_utc().unix_timestamp());
        }
        let out = cert.clone();
        self.save_index(&index)?;
        Ok(out)
    }

    /// Publish a CRL valid for `days`, listing every revoked certificate; returns its path.
    pub fn publish_crl(&self, days: i64) -> Result<PathBuf, PkiError> {
        let now = OffsetDateTime::now_utc();
        self.publish_crl_with(
            now - Duration::minutes(1),
            now + Duration::days(days),
            &self.crl_path(),
        )
    }

    /// Publish a CRL with explicit validity to `path` (tests use it for expired CRLs).
    pub fn publish_crl_with(
        &self,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        path: &Path,
    ) -> Result<PathBuf, PkiError> {
        let mut index = self.load_index()?;
        index.crl_number += 1;
        let revoked_certs = index
            .issued
            .iter()
            .filter_map(|c| {
                let at = c.revoked_at?;
                let bytes = hex::decode(&c.serial).ok()?;
                Some(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&bytes),
                    revocation_time: OffsetDateTime::from_unix_timestamp(at).ok()?,
                    reason_code: Some(RevocationReason::Unspecified),
                    invalidity_date: None,
                })
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(index.crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        let tmp = path.with_extension("crl.tmp");
        io(&tmp, std::fs::write(&tmp, crl.pem()?))?;
        io(path, std::fs::rename(&tmp, path))?;
        self.save_index(&index)?;
        Ok(path.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(organisation: &str, division: &str, principal: &str) -> ClientSpec {
        ClientSpec {
            role: Role::Caseworker,
            organisation: organisation.into(),
            division: division.into(),
            principal: principal.into(),
            display_name: "测试经办人".into(),
        }
    }

    #[test]
    fn a_principal_names_one_identity() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(dir.path(), "Test CA", "jishijiu.jining", 30).unwrap();
        pki.issue_client("zhang", &spec("mz-370811002", "370811002", "cw-zhang"), 30)
            .unwrap();
        // The same principal in another organisation is refused, naming the certificate at fault.
        let err = pki
            .issue_client(
                "zhang-liying",
                &spec("mz-370811005", "370811005", "cw-zhang"),
                30,
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("cw-zhang") && err.contains("`zhang`"), "{err}");
        assert!(!pki.cert_path("zhang-liying").exists());
        // Also after the first certificate is revoked: the id stays taken.
        pki.revoke("zhang").unwrap();
        assert!(
            pki.issue_client(
                "zhang-2",
                &spec("mz-370811005", "370811005", "cw-zhang"),
                30
            )
            .is_err()
        );
        // Renewing the same identity is fine, under the same or another file name.
        pki.issue_client("zhang", &spec("mz-370811002", "370811002", "cw-zhang"), 30)
            .unwrap();
        pki.issue_client(
            "zhang-new",
            &spec("mz-370811002", "370811002", "cw-zhang"),
            30,
        )
        .unwrap();
        // Another principal is fine.
        pki.issue_client("li", &spec("mz-370811005", "370811005", "cw-li"), 30)
            .unwrap();
    }

    #[test]
    fn server_certificates_live_a_year_at_most() {
        use rustls_pki_types::pem::PemObject;
        use x509_parser::prelude::{FromDer, X509Certificate};
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::init(dir.path(), "Test CA", "jishijiu.jining", 3650).unwrap();
        let dns = ["localhost".to_owned()];
        let err = pki.issue_server("server", &dns, &[], 825).unwrap_err();
        assert!(err.to_string().contains("365"), "{err}");
        assert!(pki.issue_server("server", &dns, &[], 366).is_err());
        pki.issue_server("server", &dns, &[], MAX_SERVER_CERT_DAYS)
            .unwrap();
        let pem = std::fs::read(pki.cert_path("server")).unwrap();
        let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        let (_, cert) = X509Certificate::from_der(der.as_ref()).unwrap();
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
            / 86_400;
        assert!(days <= 366, "server certificate valid for {days} days");
    }
}
