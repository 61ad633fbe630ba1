//! Caller identities: from a verified client certificate to a [`schemas::Identity`].
//!
//! The identity is read from the certificate's URI SAN, never from the CN:
//! `spiffe://<trust-domain>/<role>/<organisation>/<division>/<principal>`. The subject CN is kept as
//! the display name only. A certificate with no such SAN, more than one, or a malformed one is
//! refused during the TLS handshake (see [`crate::tls`]) with an [`IdentityError`] whose
//! [`IdentityError::code`] is logged; the log line carries the certificate serial, never personal data.
//!
//! Handlers receive the identity through the [`Caller`] extractor.

use axum::extract::FromRequestParts;
use http::request::Parts;
use schemas::{Department, DivisionCode, Identity, Role};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::api::ApiError;

/// How URI SANs map to identities (from `[identity]` in the config).
#[derive(Debug, Clone)]
pub struct IdentityRules {
    pub trust_domain: String,
    pub division_prefix: String,
}

/// Why a verified certificate does not name a valid identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("certificate cannot be parsed")]
    Unparseable,
    #[error("certificate has no spiffe:// URI SAN")]
    NoUriSan,
    #[error("certificate has more than one spiffe:// URI SAN")]
    MultipleUriSans,
    #[error("URI SAN trust domain `{0}` is not this hub's")]
    WrongTrustDomain(String),
    #[error("URI SAN path must be /<role>/<organisation>/<division>/<principal>")]
    BadPath,
    #[error("URI SAN role `{0}` is unknown")]
    UnknownRole(String),
    #[error("URI SAN organisation `{0}` is malformed")]
    BadOrganisation(String),
    #[error("URI SAN organisation `{0}` is not a known department code")]
    UnknownDepartment(String),
    #[error("URI SAN organisation `{0}` is not an intake channel (hotline_12345, qr_help)")]
    UnknownChannel(String),
    #[error("URI SAN division `{0}` is malformed: {1}")]
    BadDivision(String, String),
    #[error("URI SAN division `{0}` is outside this hub's region {1}")]
    ForeignDivision(String, String),
    #[error("URI SAN principal is malformed")]
    BadPrincipal,
}

impl IdentityError {
    /// A stable machine code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::Unparseable => "identity_unparseable",
            IdentityError::NoUriSan => "identity_no_uri_san",
            IdentityError::MultipleUriSans => "identity_multiple_uri_sans",
            IdentityError::WrongTrustDomain(_) => "identity_wrong_trust_domain",
            IdentityError::BadPath => "identity_bad_path",
            IdentityError::UnknownRole(_) => "identity_unknown_role",
            IdentityError::BadOrganisation(_) => "identity_bad_organisation",
            IdentityError::UnknownDepartment(_) => "identity_unknown_department",
            IdentityError::UnknownChannel(_) => "identity_unknown_channel",
            IdentityError::BadDivision(..) => "identity_bad_division",
            IdentityError::ForeignDivision(..) => "identity_foreign_division",
            IdentityError::BadPrincipal => "identity_bad_principal",
        }
    }
}

fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The URI SAN for an identity (used by `hub pki` when issuing certificates).
pub fn identity_uri(
    trust_domain: &str,
    role: Role,
    organisation: &str,
    division: &str,
    principal: &str,
) -> String {
    format!(
        "spiffe://{trust_domain}/{}/{organisation}/{division}/{principal}",
        role.code()
    )
}

/// Map the DER of a verified end-entity certificate to an identity.
pub fn identity_from_der(der: &[u8], rules: &IdentityRules) -> Result<Identity, IdentityError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Unparseable)?;
    let serial = cert.raw_serial_as_string().replace(':', "");
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && uri.starts_with("spiffe://")
            {
                uris.push(*uri);
            }
        }
    }
    let uri = match uris.as_slice() {
        [] => return Err(IdentityError::NoUriSan),
        [one] => *one,
        _ => return Err(IdentityError::MultipleUriSans),
    };
    let display_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    parse_identity_uri(uri, rules, serial, display_name)
}

/// Parse `spiffe://<td>/<role>/<org>/<division>/<principal>`.
pub fn parse_identity_uri(
    uri: &str,
    rules: &IdentityRules,
    serial: String,
    display_name: Option<String>,
) -> Result<Identity, IdentityError> {
    let rest = uri
        .strip_prefix("spiffe://")
        .ok_or(IdentityError::NoUriSan)?;
    let (domain, path) = rest.split_once('/').ok_or(IdentityError::BadPath)?;
    if domain != rules.trust_domain {
        return Err(IdentityError::WrongTrustDomain(
            domain.chars().take(64).collect(),
        ));
    }
    let parts: Vec<&str> = path.split('/').collect();
    let [role, org, division, principal] = parts.as_slice() else {
        return Err(IdentityError::BadPath);
    };
    let role = Role::from_code(role)
        .ok_or_else(|| IdentityError::UnknownRole(role.chars().take(32).collect()))?;
    if !is_slug(org, 64) {
        return Err(IdentityError::BadOrganisation(
            org.chars().take(64).collect(),
        ));
    }
    if role == Role::Department && Department::from_code(org).is_none() {
        return Err(IdentityError::UnknownDepartment((*org).to_owned()));
    }
    if role == Role::Intake
        && !schemas::cases::Channel::from_code(org).is_some_and(|c| c.is_intake_system())
    {
        return Err(IdentityError::UnknownChannel((*org).to_owned()));
    }
    let division_code = DivisionCode::parse(division).map_err(|e| {
        IdentityError::BadDivision(division.chars().take(16).collect(), e.to_string())
    })?;
    // A village division belongs to a village assistant, and a village assistant to a village.
    let village = division_code.level() == schemas::division::DivisionLevel::Village;
    if village != (role == Role::VillageAssistant) {
        return Err(IdentityError::BadDivision(
            (*division).to_owned(),
            "a village assistant has a 12-digit village division; no other role has one".into(),
        ));
    }
    if !division_code.as_str().starts_with(&rules.division_prefix) {
        return Err(IdentityError::ForeignDivision(
            (*division).to_owned(),
            rules.division_prefix.clone(),
        ));
    }
    if !is_slug(principal, 64) {
        return Err(IdentityError::BadPrincipal);
    }
    Ok(Identity {
        uri: uri.to_owned(),
        principal: (*principal).to_owned(),
        role,
        organisation: (*org).to_owned(),
        division: division_code,
        display_name: display_name.unwrap_or_else(|| (*principal).to_owned()),
        serial,
    })
}

/// The authenticated caller of a request. The TLS layer inserts it as a request extension after a
/// successful handshake; a handler that takes `Caller` cannot run without one. Shared (`Arc`):
/// every request of a connection carries it, and a clone must not copy its strings.
#[derive(Debug, Clone)]
pub struct Caller(pub std::sync::Arc<Identity>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::internal("request reached a handler without a verified identity")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> IdentityRules {
        IdentityRules {
            trust_domain: "jishijiu.jining".into(),
            division_prefix: "3708".into(),
        }
    }

    fn check(uri: &str, expected: Result<(Role, &str, &str), &str>) {
        let got = parse_identity_uri(uri, &rules(), "01".into(), None)
            .map(|id| (id.role, id.organisation.clone(), id.division.to_string()))
            .map_err(|e| e.code());
        let expected = expected.map(|(r, o, d)| (r, o.to_owned(), d.to_owned()));
        assert_eq!(got, expected, "{uri}");
    }

    #[test]
    fn uri_sans_map_to_identities() {
        check(
            "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-1",
            Ok((Role::Caseworker, "mz-370811002", "370811002")),
        );
        check(
            "spiffe://jishijiu.jining/caseworker/mz-370811/370811/officer-1",
            Ok((Role::Caseworker, "mz-370811", "370811")),
        );
        check(
            "spiffe://jishijiu.jining/department/labor/370800/rs",
            Ok((Role::Department, "labor", "370800")),
        );
        check(
            "spiffe://jishijiu.jining/department/police/370811/x",
            Err("identity_unknown_department"),
        );
        check(
            "spiffe://other.domain/caseworker/o/370811002/p",
            Err("identity_wrong_trust_domain"),
        );
        check(
            "spiffe://jishijiu.jining/mayor/o/370811002/p",
            Err("identity_unknown_role"),
        );
        check(
            "spiffe://jishijiu.jining/caseworker/o/370811002",
            Err("identity_bad_path"),
        );
        check(
            "spiffe://jishijiu.jining/caseworker/o/370811002/p/extra",
            Err("identity_bad_path"),
        );
        check(
            "spiffe://jishijiu.jining/caseworker/o/3708110/p",
            Err("identity_bad_division"),
        );
        check(
            "spiffe://jishijiu.jining/caseworker/o/110101001/p",
            Err("identity_foreign_division"),
        );
        check(
            "spiffe://jishijiu.jining/caseworker/o w/370811002/p",
            Err("identity_bad_organisation"),
        );
        check(
            "spiffe://jishijiu.jining/caseworker/o/370811002/p%20q",
            Err("identity_bad_principal"),
        );
        check("spiffe://jishijiu.jining", Err("identity_bad_path"));
        check(
            "spiffe://jishijiu.jining/intake/hotline_12345/370800/hotline-1",
            Ok((Role::Intake, "hotline_12345", "370800")),
        );
        check(
            "spiffe://jishijiu.jining/intake/walk_in/370800/x",
            Err("identity_unknown_channel"),
        );
        check(
            "spiffe://jishijiu.jining/village_assistant/cw-370811002001/370811002001/va-1",
            Ok((Role::VillageAssistant, "cw-370811002001", "370811002001")),
        );
        check(
            "spiffe://jishijiu.jining/village_assistant/o/370811002/va-1",
            Err("identity_bad_division"),
        );
        check(
            "spiffe://jishijiu.jining/caseworker/o/370811002001/cw-1",
            Err("identity_bad_division"),
        );
    }
}
