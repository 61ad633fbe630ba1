//! `[escalation]` and `[notifications]` in the hub's config.
//!
//! ```toml
//! [escalation]
//! interval_secs = 60        # how often the lease holder scans for overdue stages
//! lease_secs = 0            # lease lifetime; 0 = 3 × interval (at least 5 s)
//!
//! [notifications]
//! poll_ms = 1000            # how often the lease holder looks for notifications to send
//! retry_base_ms = 1000      # first retry after about this long, doubling, with jitter
//! retry_cap_ms = 600000     # never wait longer than this between attempts
//! allow_plain_http = false  # only for tests and the demo
//!
//! [[notifications.webhooks]]
//! name = "province"
//! url = "https://platform.example:8443/jsj/notifications"
//! ca = "pki/province-ca.pem"   # the CA of the receiver's server certificate
//! kinds = ["case_accepted", "deadline_missed", "case_decided"]
//! ```
//!
//! Over https the hub presents its outbound client certificate (`departments.outbound_cert` /
//! `outbound_key`, the one it uses towards departments).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::NotificationKind;

fn default_interval_secs() -> u64 {
    60
}

/// `[escalation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationConfig {
    /// Seconds between two escalation scans (on the lease holder).
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Lifetime of the lease; 0 means 3 × `interval_secs`, at least 5 s.
    #[serde(default)]
    pub lease_secs: u64,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_interval_secs(),
            lease_secs: 0,
        }
    }
}

impl EscalationConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    pub fn lease(&self) -> Duration {
        match self.lease_secs {
            0 => Duration::from_secs((self.interval_secs * 3).max(5)),
            n => Duration::from_secs(n),
        }
    }
}

/// One webhook (通知接收方).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// A short name (letters, digits, `-`, `_`): the delivery rows and metrics name it.
    pub name: String,
    /// Where notifications are POSTed.
    pub url: String,
    /// PEM CA bundle the receiver's server certificate must chain to (https).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The kinds this receiver gets.
    pub kinds: Vec<NotificationKind>,
    /// Per-request timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_retry_base_ms() -> u64 {
    1000
}
fn default_retry_cap_ms() -> u64 {
    600_000
}

/// `[notifications]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    #[serde(default = "default_retry_cap_ms")]
    pub retry_cap_ms: u64,
    /// Allow `http://` webhooks (tests and the demo only: no TLS, no client certificate).
    #[serde(default)]
    pub allow_plain_http: bool,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            poll_ms: default_poll_ms(),
            retry_base_ms: default_retry_base_ms(),
            retry_cap_ms: default_retry_cap_ms(),
            allow_plain_http: false,
            webhooks: Vec::new(),
        }
    }
}

impl NotificationsConfig {
    pub fn resolve_paths(&mut self, base: &Path) {
        for w in &mut self.webhooks {
            if let Some(p) = w.ca.as_mut()
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
    }

    /// The key at fault and why.
    pub fn validate(&self, outbound: bool) -> Result<(), (&'static str, String)> {
        if self.poll_ms == 0 {
            return Err(("notifications.poll_ms", "must be greater than 0".into()));
        }
        if self.retry_base_ms == 0 || self.retry_cap_ms < self.retry_base_ms {
            return Err((
                "notifications.retry_cap_ms",
                "retry_base_ms must be > 0 and retry_cap_ms at least retry_base_ms".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for w in &self.webhooks {
            let key = "notifications.webhooks";
            let ok_name = !w.name.is_empty()
                && w.name.len() <= 64
                && w.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok_name {
                return Err((key, "name: 1-64 letters, digits, '-' or '_'".into()));
            }
            if !names.insert(w.name.as_str()) {
                return Err((key, format!("{}: name used twice", w.name)));
            }
            if w.kinds.is_empty() {
                return Err((key, format!("{}: kinds must not be empty", w.name)));
            }
            let url =
                reqwest::Url::parse(&w.url).map_err(|e| (key, format!("{}: url: {e}", w.name)))?;
            match url.scheme() {
                "https" => {
                    let Some(ca) = &w.ca else {
                        return Err((key, format!("{}: ca is required for https", w.name)));
                    };
                    if !ca.is_file() {
                        return Err((
                            key,
                            format!("{}: ca: file not found: {}", w.name, ca.display()),
                        ));
                    }
                    if !outbound {
                        return Err((
                            key,
                            format!(
                                "{}: https webhooks need departments.outbound_cert and outbound_key",
                                w.name
                            ),
                        ));
                    }
                }
                "http" if self.allow_plain_http => {}
                "http" => {
                    return Err((
                        key,
                        format!(
                            "{}: url: plain http needs notifications.allow_plain_http = true (tests and demo only)",
                            w.name
                        ),
                    ));
                }
                _ => return Err((key, format!("{}: url: must be https", w.name))),
            }
        }
        Ok(())
    }
}
