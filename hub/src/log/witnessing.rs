//! 见证联署: the hub's side of C2SP tlog-witness. After each new head, a background task sends the
//! checkpoint to every `[[log.witness_endpoints]]` witness with a consistency proof from the size
//! that witness last cosigned, collects the cosignatures, and publishes the checkpoint with their
//! lines appended ([`AccessLog::publish_cosigned`]) once `witness_publish_quorum` of them cosigned
//! it; GET /log/checkpoint then serves that note ([`AccessLog::served_checkpoint`]).
//!
//! Invariants:
//! - Appends never wait for witnesses: the task only reads the head and stored hashes; a witness
//!   that is down or slow delays the *published* checkpoint, never an append or its receipt.
//! - What a witness last cosigned is learned, not assumed: the task starts each witness at `old 0`
//!   and adopts the size a 409 answers (`text/x.tlog.size`), so a restarted hub needs no state.
//! - A cosignature is kept only after it verifies with the witness's configured key over exactly
//!   the head's note text; lines by other keys in an answer are ignored.
//! - A failed witness is retried with exponential back-off (1 s doubling, capped at
//!   `witness_retry_cap_ms`), on a timer of its own; other witnesses are not held up.
//! - Rounds are sequential: every witness is asked about the same head in a round, so their
//!   cosignatures combine on one checkpoint. A head that moved on meanwhile is the next round's.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tlog::VerifierKey;
use tlog::checkpoint::{WitnessPolicy, add_cosignatures, open_checkpoint, witness_request_body};
use tokio::time::Instant;

use super::{AccessLog, Served};
use crate::config::Config;

/// One witness the hub submits to, and what the hub knows of it.
struct Endpoint {
    /// The witness's key name (also its name in logs and metrics).
    name: String,
    vkey: VerifierKey,
    /// `<url>/add-checkpoint`.
    url: String,
    http: reqwest::Client,
    /// The size this witness last cosigned, as far as the hub knows (`None`: ask with `old 0`).
    known: Option<u64>,
    /// Its cosignature line(s) on the checkpoint of this size.
    cosigned: Option<(u64, String)>,
    /// Consecutive failures; the next attempt waits `min(cap, 1 s × 2^(failures-1))`.
    failures: u32,
    next_attempt: Instant,
}

/// The witnessing task (see the module documentation).
pub struct Cosigner {
    log: Arc<AccessLog>,
    endpoints: Vec<Endpoint>,
    quorum: usize,
    retry_cap: Duration,
}

/// Why one submission failed (for the log line; never carries entry data).
#[derive(Debug, thiserror::Error)]
enum SubmitError {
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("{0}")]
    Other(String),
}

impl Cosigner {
    /// The task for the configured witnesses, or `None` when there are none. The HTTP clients
    /// present `departments.outbound_cert` and trust each endpoint's `ca`.
    pub fn from_config(config: &Config, log: Arc<AccessLog>) -> anyhow::Result<Option<Cosigner>> {
        let eps = &config.log.witness_endpoints;
        if eps.is_empty() {
            return Ok(None);
        }
        let (cert, key) = config
            .departments
            .outbound_cert
            .as_deref()
            .zip(config.departments.outbound_key.as_deref())
            .context("log.witness_endpoints: needs departments.outbound_cert and outbound_key")?;
        let cert = std::fs::read(cert).with_context(|| cert.display().to_string())?;
        let key = std::fs::read(key).with_context(|| key.display().to_string())?;
        let mut endpoints = Vec::with_capacity(eps.len());
        for (i, ep) in eps.iter().enumerate() {
            let vkey = VerifierKey::parse(&ep.vkey)
                .map_err(|e| anyhow::anyhow!("log.witness_endpoints[{i}].vkey: {e}"))?;
            let ca = std::fs::read(&ep.ca)
                .with_context(|| format!("log.witness_endpoints[{i}].ca: {}", ep.ca.display()))?;
            let tls = connectors::tls::client_config_from_pem(&ca, &cert, &key)
                .with_context(|| format!("log.witness_endpoints[{i}]: TLS"))?;
            let http = reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .https_only(true)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_millis(ep.timeout_ms))
                .build()?;
            endpoints.push(Endpoint {
                name: vkey.name().to_owned(),
                vkey,
                url: format!("{}/add-checkpoint", ep.url.trim_end_matches('/')),
                http,
                known: None,
                cosigned: None,
                failures: 0,
                next_attempt: Instant::now(),
            });
        }
        Ok(Some(Cosigner {
            log,
            quorum: config.log.witness_publish_quorum.unwrap_or(endpoints.len()),
            endpoints,
            retry_cap: Duration::from_millis(config.log.witness_retry_cap_ms.max(1000)),
        }))
    }

    /// Runs until aborted: a round for the current head, then waits for a new head or the next
    /// retry that is due.
    pub async fn run(mut self) {
        let mut heads = self.log.subscribe();
        loop {
            let head = self.log.head();
            self.round(&head).await;
            let due = self
                .endpoints
                .iter()
                .filter(|e| e.cosigned.as_ref().is_none_or(|(s, _)| *s != head.size))
                .map(|e| e.next_attempt)
                .min();
            let wait = async {
                match due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = heads.changed() => if changed.is_err() { return },
                _ = wait => {}
            }
        }
    }

    /// Asks every witness that has not cosigned `head` (and is not backing off) to cosign it,
    /// concurrently; publishes `head` with the cosignatures once enough witnesses cosigned it.
    async fn round(&mut self, head: &Served) {
        let now = Instant::now();
        let log = &self.log;
        let cap = self.retry_cap;
        let asks = self
            .endpoints
            .iter_mut()
            .filter(|e| e.cosigned.as_ref().is_none_or(|(s, _)| *s != head.size))
            .filter(|e| e.next_attempt <= now)
            .map(|e| ask(log, e, head, cap));
        futures::future::join_all(asks).await;
        let lines: Vec<&str> = self
            .endpoints
            .iter()
            .filter_map(|e| match &e.cosigned {
                Some((size, line)) if *size == head.size => Some(line.as_str()),
                _ => None,
            })
            .collect();
        if lines.len() < self.quorum {
            return;
        }
        let note = match add_cosignatures(&head.note, &lines.concat()) {
            Ok(note) => note,
            Err(e) => {
                tracing::error!(error = %e, "access log: cannot append cosignatures");
                return;
            }
        };
        // A newer checkpoint, or the same one with more cosignatures (a late witness).
        if self
            .log
            .cosigned()
            .is_none_or(|c| c.size < head.size || (c.size == head.size && c.note != note))
        {
            tracing::info!(
                size = head.size,
                cosignatures = lines.len(),
                "access log: cosigned checkpoint published"
            );
            self.log.publish_cosigned(Served {
                size: head.size,
                root: head.root,
                note,
            });
        }
    }
}

/// One witness, one head: submit (following at most two 409s), record the outcome.
async fn ask(log: &AccessLog, e: &mut Endpoint, head: &Served, cap: Duration) {
    match submit(log, e, head).await {
        Ok(line) => {
            e.known = Some(head.size);
            e.cosigned = Some((head.size, line));
            e.failures = 0;
            metrics::counter!("hub_log_witness_cosignatures_total", "witness" => e.name.clone())
                .increment(1);
        }
        Err(err) => {
            e.failures = e.failures.saturating_add(1);
            let backoff = Duration::from_secs(1)
                .saturating_mul(1u32 << e.failures.saturating_sub(1).min(16))
                .min(cap);
            e.next_attempt = Instant::now() + backoff;
            if matches!(err, SubmitError::Status { status: 422, .. }) {
                // The witness holds a tree this log's head is not consistent with: either this
                // log forked, or the witness was fed a fork. Either way a person must look.
                tracing::error!(witness = %e.name, size = head.size, error = %err,
                    "access log: witness refused the checkpoint as INCONSISTENT with what it cosigned before");
                e.known = None;
            } else {
                tracing::warn!(witness = %e.name, size = head.size, error = %err,
                    retry_in_ms = backoff.as_millis() as u64, "access log: witness did not cosign");
            }
            metrics::counter!("hub_log_witness_failures_total", "witness" => e.name.clone())
                .increment(1);
        }
    }
}

/// Sends `head` to the witness with a proof from the size it last cosigned; on 409 adopts the
/// witness's size and tries again. Returns the verified cosignature line(s) of this witness.
async fn submit(log: &AccessLog, e: &mut Endpoint, head: &Served) -> Result<String, SubmitError> {
    for _ in 0..3 {
        let old = e.known.unwrap_or(0);
        if old > head.size {
            // Another replica's newer checkpoint reached the witness first: serve the newer head
            // (which wakes the cosigner for it) and let the next round submit that.
            if let Ok(newer) = log.head_at_least(old).await
                && newer.size >= old
            {
                return Err(SubmitError::Other(format!(
                    "the witness cosigned size {old} (another replica's checkpoint); \
                     resubmitting with the head re-read at size {}",
                    newer.size
                )));
            }
            return Err(SubmitError::Other(format!(
                "the witness cosigned size {old}, above this log's head {}",
                head.size
            )));
        }
        let proof = log.consistency_proof(old, head.size).await.map_err(|err| {
            SubmitError::Other(format!("consistency proof {old}→{}: {err}", head.size))
        })?;
        let body = witness_request_body(old, &proof, &head.note);
        let resp = e
            .http
            .post(&e.url)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|err| SubmitError::Other(err.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|err| SubmitError::Other(format!("reading the answer: {err}")))?;
        match status {
            200 => return verified_lines(log, e, head, &text),
            409 => {
                let size = text.trim_end_matches('\n').parse::<u64>().map_err(|_| {
                    SubmitError::Other("409 without a tree size (text/x.tlog.size)".into())
                })?;
                e.known = Some(size);
            }
            _ => {
                return Err(SubmitError::Status {
                    status,
                    body: text.chars().take(200).collect::<String>().trim().to_owned(),
                });
            }
        }
    }
    Err(SubmitError::Other(
        "the witness's size kept changing (409 three times)".into(),
    ))
}

/// The lines of `answer` by this witness, once its cosignature verifies on `head`.
fn verified_lines(
    log: &AccessLog,
    e: &Endpoint,
    head: &Served,
    answer: &str,
) -> Result<String, SubmitError> {
    let prefix = format!("\u{2014} {} ", e.name);
    let mine: String = answer
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| format!("{l}\n"))
        .collect();
    let policy = WitnessPolicy {
        witnesses: vec![e.vkey.clone()],
        quorum: 1,
    };
    let opened = add_cosignatures(&head.note, &mine)
        .and_then(|note| open_checkpoint(note.as_bytes(), log.origin(), log.vkey(), &policy))
        .map_err(|err| {
            SubmitError::Other(format!("the answer's cosignature does not verify: {err}"))
        })?;
    // Only the verified lines of this key (same name, another key ID would be cruft).
    Ok(opened
        .note
        .verified
        .iter()
        .filter(|s| s.name == e.vkey.name() && s.key_id == e.vkey.key_id())
        .map(tlog::note::Signature::to_line)
        .collect())
}
