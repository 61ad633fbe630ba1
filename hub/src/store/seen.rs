//! 已连接客户端 (clients seen): connections counted in memory and written in one transaction per
//! flush, so that a new mTLS connection costs no database commit of its own.
//!
//! Before this buffer every connection upserted its certificate's row at once: on SQLite with
//! `synchronous=FULL` that was an fsync per handshake, and new connections per second were bounded by
//! the disk (issue 14, P4). The table is an operator's view (`GET /v1/admin/clients`, for rotating
//! certificates), not a record anyone is answered on: a count may reach the database up to
//! [`FLUSH_AFTER`] late, and a crash loses at most the counts of that last moment — never an
//! access-log entry or anything acknowledged.
//!
//! A batch is written when the next connection finds the oldest unwritten count [`FLUSH_AFTER`]
//! old, by the hub's periodic flusher (`app.rs`), at shutdown, and before every read, so a reader
//! in this process always sees its own connections.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use schemas::Identity;

use super::ClientSeen;

/// The longest a counted connection waits in memory while connections keep coming.
pub(crate) const FLUSH_AFTER: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Pending {
    rows: HashMap<String, ClientSeen>,
    /// When the oldest unwritten count was taken.
    since: Option<Instant>,
}

/// Connections not yet written, one row per certificate serial.
#[derive(Default)]
pub(crate) struct SeenBuffer {
    pending: Mutex<Pending>,
}

impl SeenBuffer {
    /// Count one connection of `id` at `now_ms`. Returns the batch to write when the oldest
    /// unwritten count is [`FLUSH_AFTER`] old (the caller writes it; on failure it calls
    /// [`Self::restore`]).
    pub(crate) fn add(&self, id: &Identity, now_ms: i64) -> Option<Vec<ClientSeen>> {
        let row = ClientSeen {
            serial: id.serial.clone(),
            uri: id.uri.clone(),
            role: id.role.code().to_owned(),
            organisation: id.organisation.clone(),
            division: id.division.as_str().to_owned(),
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            connections: 1,
        };
        let mut p = self.lock();
        merge(&mut p.rows, row);
        let since = *p.since.get_or_insert_with(Instant::now);
        (since.elapsed() >= FLUSH_AFTER).then(|| take(&mut p))
    }

    /// Everything not yet written (empty when nothing is pending).
    pub(crate) fn take(&self) -> Vec<ClientSeen> {
        take(&mut self.lock())
    }

    /// Put back a batch whose write failed; it is written with the next one.
    pub(crate) fn restore(&self, batch: Vec<ClientSeen>) {
        let mut p = self.lock();
        for row in batch {
            merge(&mut p.rows, row);
        }
        p.since.get_or_insert_with(Instant::now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves only counts behind; keep counting.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn take(p: &mut Pending) -> Vec<ClientSeen> {
    p.since = None;
    p.rows.drain().map(|(_, row)| row).collect()
}

/// Add `row`'s connections to the pending row of its serial: the earliest first, the latest last.
fn merge(rows: &mut HashMap<String, ClientSeen>, row: ClientSeen) {
    match rows.get_mut(&row.serial) {
        Some(have) => {
            have.first_seen_ms = have.first_seen_ms.min(row.first_seen_ms);
            have.last_seen_ms = have.last_seen_ms.max(row.last_seen_ms);
            have.connections += row.connections;
        }
        None => {
            rows.insert(row.serial.clone(), row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(serial: &str) -> Identity {
        Identity {
            uri: "spiffe://jishijiu.jining/caseworker/mz-370811/370811/cw-1".into(),
            principal: "cw-1".into(),
            role: schemas::Role::Caseworker,
            organisation: "mz-370811".into(),
            division: schemas::DivisionCode::parse("370811").expect("division"),
            display_name: "测试".into(),
            serial: serial.to_owned(),
        }
    }

    #[test]
    fn connections_are_merged_per_serial_until_taken() {
        let b = SeenBuffer::default();
        assert!(b.add(&identity("aa"), 10).is_none());
        assert!(b.add(&identity("aa"), 5).is_none());
        assert!(b.add(&identity("bb"), 7).is_none());
        let mut batch = b.take();
        batch.sort_by(|x, y| x.serial.cmp(&y.serial));
        assert_eq!(batch.len(), 2);
        assert_eq!(
            (
                batch[0].connections,
                batch[0].first_seen_ms,
                batch[0].last_seen_ms
            ),
            (2, 5, 10)
        );
        assert_eq!(batch[1].connections, 1);
        assert!(b.take().is_empty());
        // A failed write comes back and is merged with what came since.
        b.restore(batch);
        assert!(b.add(&identity("aa"), 20).is_none());
        let aa = b.take().into_iter().find(|r| r.serial == "aa").unwrap();
        assert_eq!(
            (aa.connections, aa.first_seen_ms, aa.last_seen_ms),
            (3, 5, 20)
        );
    }

    #[test]
    fn a_connection_after_the_flush_interval_returns_the_batch() {
        let b = SeenBuffer::default();
        assert!(b.add(&identity("aa"), 1).is_none());
        std::thread::sleep(FLUSH_AFTER + Duration::from_millis(20));
        let batch = b.add(&identity("aa"), 2).expect("due");
        assert_eq!(batch[0].connections, 2);
        assert!(
            b.add(&identity("aa"), 3).is_none(),
            "the clock starts again"
        );
    }
}
