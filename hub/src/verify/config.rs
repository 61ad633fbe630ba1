//! `[departments]` in the hub's config: where each department's connector is (部门接口), how to trust
//! it, its answer-signing key, and the per-urgency deadlines of a verification.
//!
//! ```toml
//! [departments]
//! outbound_cert = "pki/hub-outbound.pem"   # the hub's client certificate towards departments
//! outbound_key = "pki/hub-outbound.key"
//! deadline_emergency_ms = 10000
//!
//! [departments.labor]
//! url = "https://127.0.0.1:9443"
//! ca = "pki/ca.pem"
//! public_key = "<64 hex digits>"
//! timeout_ms = 10000
//! ```
//!
//! Every key is optional so that configs without departments still load; a hub without departments
//! answers verifications with every department marked `unavailable`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemas::{Department, Urgency};
use serde::Deserialize;

/// One department's connector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentEndpoint {
    /// `https://host:port` of the department's connector.
    pub url: String,
    /// PEM file with the CA that signs the department's server certificate.
    pub ca: PathBuf,
    /// The department's Ed25519 answer-signing public key, 64 hex digits.
    pub public_key: String,
    /// Per-query timeout (all attempts).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_emergency_ms() -> u64 {
    10_000
}
fn default_urgent_ms() -> u64 {
    30_000
}
fn default_normal_ms() -> u64 {
    45_000
}

/// `[departments]`.
#[derive(Debug, Clone, Deserialize)]
pub struct DepartmentsConfig {
    /// The hub's client certificate (PEM chain) presented to departments.
    #[serde(default)]
    pub outbound_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub outbound_key: Option<PathBuf>,
    /// Deadline of a whole verification by urgency (紧急 / 急难 / 常规). Keep them below
    /// `server.request_timeout_ms` (60 s by default).
    #[serde(default = "default_emergency_ms")]
    pub deadline_emergency_ms: u64,
    #[serde(default = "default_urgent_ms")]
    pub deadline_urgent_ms: u64,
    #[serde(default = "default_normal_ms")]
    pub deadline_normal_ms: u64,
    /// Department code → endpoint.
    #[serde(flatten)]
    pub endpoints: BTreeMap<String, DepartmentEndpoint>,
}

impl Default for DepartmentsConfig {
    fn default() -> Self {
        Self {
            outbound_cert: None,
            outbound_key: None,
            deadline_emergency_ms: default_emergency_ms(),
            deadline_urgent_ms: default_urgent_ms(),
            deadline_normal_ms: default_normal_ms(),
            endpoints: BTreeMap::new(),
        }
    }
}

impl DepartmentsConfig {
    /// Resolve relative paths against the config file's directory.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = self.outbound_cert.as_mut() {
            fix(p);
        }
        if let Some(p) = self.outbound_key.as_mut() {
            fix(p);
        }
        for e in self.endpoints.values_mut() {
            fix(&mut e.ca);
        }
    }

    /// Checks every rule; the message names the key (`departments.labor.public_key: …`).
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("deadline_emergency_ms", self.deadline_emergency_ms),
            ("deadline_urgent_ms", self.deadline_urgent_ms),
            ("deadline_normal_ms", self.deadline_normal_ms),
        ] {
            if v == 0 {
                return Err(format!("departments.{key}: must be greater than 0"));
            }
        }
        if !self.endpoints.is_empty() {
            for (key, p) in [
                ("outbound_cert", &self.outbound_cert),
                ("outbound_key", &self.outbound_key),
            ] {
                match p {
                    None => {
                        return Err(format!(
                            "departments.{key}: required when departments are configured"
                        ));
                    }
                    Some(p) if !p.is_file() => {
                        return Err(format!(
                            "departments.{key}: file not found: {}",
                            p.display()
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        for (code, e) in &self.endpoints {
            if Department::from_code(code).is_none() {
                return Err(format!(
                    "departments.{code}: not a department of policies/departments.toml (expected one of {})",
                    Department::registered()
                        .iter()
                        .map(|d| d.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !e.url.starts_with("https://") {
                return Err(format!("departments.{code}.url: must be an https:// URL"));
            }
            if !e.ca.is_file() {
                return Err(format!(
                    "departments.{code}.ca: file not found: {}",
                    e.ca.display()
                ));
            }
            if parse_key(&e.public_key).is_none() {
                return Err(format!(
                    "departments.{code}.public_key: must be 64 hex digits (Ed25519 public key)"
                ));
            }
            if e.timeout_ms == 0 {
                return Err(format!(
                    "departments.{code}.timeout_ms: must be greater than 0"
                ));
            }
        }
        Ok(())
    }

    /// The deadline of a verification of this urgency.
    pub fn deadline(&self, urgency: Urgency) -> Duration {
        Duration::from_millis(match urgency {
            Urgency::Emergency => self.deadline_emergency_ms,
            Urgency::Urgent => self.deadline_urgent_ms,
            Urgency::Normal => self.deadline_normal_ms,
        })
    }
}

/// A 32-byte key from 64 hex digits.
pub fn parse_key(hex_text: &str) -> Option<[u8; 32]> {
    hex::decode(hex_text.trim()).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str, expected: Result<(), &str>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        std::fs::write(dir.path().join("out.pem"), "x").unwrap();
        std::fs::write(dir.path().join("out.key"), "x").unwrap();
        let mut cfg: DepartmentsConfig = toml::from_str(toml_text).unwrap();
        cfg.resolve_paths(dir.path());
        match (cfg.validate(), expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(want)) => assert!(e.contains(want), "{e} should contain {want}"),
            (got, want) => panic!("{toml_text}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn departments_section_rules() {
        let key = "ab".repeat(32);
        let ok = format!(
            "outbound_cert = \"out.pem\"\noutbound_key = \"out.key\"\n[labor]\nurl = \"https://127.0.0.1:1\"\nca = \"ca.pem\"\npublic_key = \"{key}\"\n"
        );
        check("", Ok(()));
        check(&ok, Ok(()));
        check(
            &ok.replace("[labor]", "[lab]"),
            Err("departments.lab: not a department of policies/departments.toml"),
        );
        check(
            &ok.replace("https://", "http://"),
            Err("departments.labor.url"),
        );
        check(
            &ok.replace(&key, "abcd"),
            Err("departments.labor.public_key"),
        );
        check(
            &ok.replace("ca.pem", "missing.pem"),
            Err("departments.labor.ca: file not found"),
        );
        check(
            &ok.replace("outbound_key = \"out.key\"\n", ""),
            Err("departments.outbound_key: required"),
        );
        check(
            "deadline_urgent_ms = 0",
            Err("departments.deadline_urgent_ms"),
        );
    }
}
