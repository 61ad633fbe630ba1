//! The background task of every replica: every `[notifications] poll_ms` it takes or renews the
//! deployment's escalation lease ([`super::lease`]); the holder alone runs the escalation scan
//! (every `[escalation] interval_secs`, [`crate::cases::escalation::scan_with`], in batches,
//! renewing the lease between them) and the sender
//! ([`super::deliver::Sender::round`]). The others only retry the lease, so a replica that dies
//! is replaced once its lease expires. Nothing here has to survive a restart: the scan recomputes
//! from stored facts and the outbox is in the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::deliver::Sender;
use super::lease::{self, ESCALATION_LEASE};
use crate::authz::Authz;
use crate::cases::escalation;
use crate::store::Db;

/// What the task needs.
pub struct Worker {
    pub db: Db,
    pub authz: Arc<Authz>,
    pub sender: Sender,
    /// This process's holder id (a fresh UUID per process).
    pub holder: String,
    pub scan_interval: Duration,
    pub lease_ttl: Duration,
    pub poll: Duration,
}

impl Worker {
    /// Run until aborted.
    pub async fn run(self) {
        let mut ticker = tokio::time::interval(
            self.poll
                .min(self.scan_interval)
                .max(Duration::from_millis(50)),
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held = false;
        let mut last_scan: Option<Instant> = None;
        let mut years: Option<Vec<i32>> = None;
        loop {
            ticker.tick().await;
            let now = crate::store::now_ms();
            let ttl = self.lease_ttl.as_millis() as i64;
            match lease::acquire(&self.db, ESCALATION_LEASE, &self.holder, now, ttl).await {
                Ok(true) => {
                    if !held {
                        tracing::info!(holder = %self.holder, "escalation lease taken");
                    }
                    held = true;
                }
                Ok(false) => {
                    if held {
                        tracing::warn!(holder = %self.holder, "escalation lease lost");
                    }
                    held = false;
                    last_scan = None;
                    years = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "escalation lease: database error");
                    continue;
                }
            }
            metrics::gauge!("hub_escalation_lease_held").set(if held { 1.0 } else { 0.0 });
            if !held {
                continue;
            }
            if last_scan.is_none_or(|t| t.elapsed() >= self.scan_interval) {
                last_scan = Some(Instant::now());
                self.scan(&mut years).await;
            }
            if let Err(e) = self.sender.round(&self.db).await {
                tracing::warn!(error = %e, "notification delivery round failed");
            }
        }
    }

    async fn scan(&self, years: &mut Option<Vec<i32>>) {
        let engine = self.authz.engine();
        let calendar = engine.calendar();
        let loaded: Vec<i32> = calendar.years().map(|y| y.year).collect();
        if years.as_ref() != Some(&loaded) {
            match escalation::recheck_provisional(&self.db).await {
                Ok(n) => {
                    *years = Some(loaded);
                    if n > 0 {
                        tracing::info!(
                            cases = n,
                            "calendar years changed: provisional deadlines to recompute"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "marking provisional deadlines failed"),
            }
        }
        let started = Instant::now();
        let opts = escalation::ScanOptions {
            lease: Some((self.holder.clone(), self.lease_ttl.as_millis() as i64)),
            ..Default::default()
        };
        match escalation::scan_with(
            &self.db,
            calendar,
            &engine.deadlines().case,
            time::OffsetDateTime::now_utc(),
            &opts,
        )
        .await
        {
            Ok(r) => {
                metrics::histogram!("hub_escalation_scan_seconds")
                    .record(started.elapsed().as_secs_f64());
                tracing::info!(
                    holder = %self.holder,
                    checked = r.checked,
                    slips_checked = r.slips_checked,
                    escalated = r.escalated,
                    slips_escalated = r.slips_escalated,
                    near = r.near,
                    batches = r.batches,
                    lease_lost = r.lease_lost,
                    "escalation scan"
                );
            }
            Err(e) => tracing::warn!(error = %e, "escalation scan failed"),
        }
    }

    /// Give the lease up (clean stop).
    pub async fn release(db: &Db, holder: &str) {
        if let Err(e) = lease::release(db, ESCALATION_LEASE, holder).await {
            tracing::warn!(error = %e, "releasing the escalation lease failed");
        }
    }
}
