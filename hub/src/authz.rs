//! Authorization in the hub: the live [`PolicyEngine`] (hot-swappable) and the helpers handlers use.
//!
//! Invariants:
//! - The engine is loaded and validated at start-up; the hub refuses to start on an invalid set
//!   (the error names the file and line).
//! - A reload builds a whole new engine and swaps it only on success; a bad set is refused, logged
//!   once per change, and the old one stays in force.
//! - One source of truth: handlers never check a role or compare principal ids; every decision is
//!   [`Authz::decide`] or [`Authz::require`] with the caller's full [`Identity`] (Cedar sees its
//!   URI SAN as the principal's `uri`, and ownership as the household's `requester` URI), and the
//!   policy ids of the decision are the ones the access-log entry records. Held by
//!   `e2e::authz_table`.
//! - [`Authz::verdict`] is the one place a denial becomes HTTP 403 with the stable code `forbidden`
//!   and the policy's caseworker-readable reason; the decision and its policy ids are returned so
//!   the caller can put them into the access-log entry.
//! - [`enforce_logged`] (and [`Authz::require_logged`], which decides first) is the one place a
//!   refusal is written to the access log before the 403 leaves; no route appends its own denied
//!   entry after a Cedar decision.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use policies::{Action, Decision, PolicyEngine, PolicyError, RequestCtx, ResourceCtx};
use schemas::Identity;
use schemas::access_log::AccessLogEntry;

use crate::api::ApiError;

/// The live policy set.
pub struct Authz {
    dir: PathBuf,
    current: ArcSwap<PolicyEngine>,
    fingerprint: Mutex<([u8; 32], Option<[u8; 32]>)>,
    /// When the set in force was loaded.
    loaded_at: Mutex<std::time::SystemTime>,
}

impl Authz {
    /// Load and validate the policy directory.
    pub fn load(dir: &Path) -> Result<Arc<Authz>, PolicyError> {
        let fp = fingerprint(dir);
        let engine = PolicyEngine::load(dir)?;
        Ok(Arc::new(Authz {
            dir: dir.to_owned(),
            current: ArcSwap::from_pointee(engine),
            fingerprint: Mutex::new((fp, None)),
            loaded_at: Mutex::new(std::time::SystemTime::now()),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The version of the set in force: the first 12 hex digits of the SHA-256 fingerprint of
    /// its files (as a reload compares them).
    pub fn version(&self) -> String {
        let fp = self.fingerprint.lock().unwrap_or_else(|e| e.into_inner()).0;
        fp[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// When the set in force was loaded (start or last successful reload).
    pub fn loaded_at(&self) -> std::time::SystemTime {
        *self.loaded_at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine in force (cheap clone).
    pub fn engine(&self) -> Arc<PolicyEngine> {
        self.current.load_full()
    }

    /// Reload if the files changed. `Ok(true)`: a new set is in force. With `force` a set that was
    /// refused before is tried (and reported) again.
    pub fn reload(&self, force: bool) -> Result<bool, PolicyError> {
        let fp = fingerprint(&self.dir);
        let mut state = self.fingerprint.lock().unwrap_or_else(|e| e.into_inner());
        if fp == state.0 || (!force && state.1 == Some(fp)) {
            return Ok(false);
        }
        match PolicyEngine::load(&self.dir) {
            Ok(engine) => {
                self.current.store(Arc::new(engine));
                *state = (fp, None);
                *self.loaded_at.lock().unwrap_or_else(|e| e.into_inner()) =
                    std::time::SystemTime::now();
                Ok(true)
            }
            Err(e) => {
                state.1 = Some(fp);
                Err(e)
            }
        }
    }

    /// Evaluate a request.
    pub fn decide(
        &self,
        who: &Identity,
        action: Action,
        resource: &ResourceCtx,
        ctx: &RequestCtx,
    ) -> Decision {
        let decision = self.current.load().authorize(who, action, resource, ctx);
        let outcome = if decision.allowed { "allow" } else { "deny" };
        metrics::counter!("hub_policy_decisions_total", "action" => action.code(), "decision" => outcome).increment(1);
        if !decision.errors.is_empty() {
            tracing::warn!(action = action.code(), errors = ?decision.errors, "policy evaluation problems");
        }
        decision
    }

    /// Evaluate and turn a denial into 403 ([`Authz::verdict`]). The decision comes back in both
    /// cases so that the caller can log it. (The error is large but short-lived: it is built once
    /// per denial and turned into a response right away, so boxing would only add an allocation.)
    #[allow(clippy::result_large_err)]
    pub fn require(
        &self,
        who: &Identity,
        action: Action,
        resource: &ResourceCtx,
        ctx: &RequestCtx,
    ) -> Result<Decision, (Decision, ApiError)> {
        Self::verdict(self.decide(who, action, resource, ctx))
    }

    /// A decision taken as an answer: allowed, or the 403 with the stable code `forbidden` and the
    /// policy's caseworker-readable reason, next to the decision (for its policy ids).
    #[allow(clippy::result_large_err)]
    pub fn verdict(decision: Decision) -> Result<Decision, (Decision, ApiError)> {
        if decision.allowed {
            return Ok(decision);
        }
        let reason = decision
            .reason
            .clone()
            .unwrap_or_else(|| "无权执行此操作 / not permitted".to_owned());
        Err((decision, ApiError::forbidden(reason)))
    }

    /// Decide before anything is read or touched, and on a refusal make the refusal durable
    /// first ([`enforce_logged`]). The one "decide, log the denial, refuse" of the hub's routes.
    pub async fn require_logged(
        &self,
        log: &crate::log::AccessLog,
        who: &Identity,
        action: Action,
        resource: &ResourceCtx,
        ctx: &RequestCtx,
        deny_entry: impl FnOnce(Vec<String>) -> Result<AccessLogEntry, ApiError>,
    ) -> Result<Decision, ApiError> {
        enforce_logged(log, self.require(who, action, resource, ctx), deny_entry).await
    }
}

/// The one place a refusal is logged and answered: on `Err` the entry `deny_entry` builds from the
/// deciding policy ids is appended to the access log (durable) and then the 403 goes back; on `Ok`
/// the decision is returned so that the caller logs its own entry with its policy ids. Takes a
/// verdict already made ([`Authz::require`], [`Authz::verdict`]) so that a caller may first word
/// the refusal more precisely (the verification gate adds the letter's problem).
pub async fn enforce_logged(
    log: &crate::log::AccessLog,
    verdict: Result<Decision, (Decision, ApiError)>,
    deny_entry: impl FnOnce(Vec<String>) -> Result<AccessLogEntry, ApiError>,
) -> Result<Decision, ApiError> {
    match verdict {
        Ok(d) => Ok(d),
        Err((d, e)) => {
            log.append(deny_entry(d.policy_ids)?).await?;
            Err(e)
        }
    }
}

/// Hash of every file's path and bytes under `dir` (sorted), to detect changes when polling.
fn fingerprint(dir: &Path) -> [u8; 32] {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for f in files {
        ctx.update(f.to_string_lossy().as_bytes());
        ctx.update(&std::fs::read(&f).unwrap_or_default());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
