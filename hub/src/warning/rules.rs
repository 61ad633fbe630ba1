//! 预警评估: the warning rules (`policies/warnings.toml`, [`policies::WarningRules`]) run on a
//! department event when it is stored placed, or when an unmatched event is placed later, **in
//! the same transaction** as the event's row, so an event is never stored without its warnings
//! nor a warning without its event.
//!
//! Cost: nothing for an unmatched event or a kind no rule reads; otherwise the events of one
//! transaction (one event, or a whole batch push) share one [`Ledger`]: per chunk of their
//! households one look-up of their active monitoring categories (primary key prefix), one of
//! their recent signals (`warning_signals_household`, covering both the amount windows and
//! `[repeat]`) and one of their open warnings (`warnings_open_once`); the events are then
//! evaluated in memory in order, and the new warnings and signals written in multi-row INSERTs
//! (plus one UPDATE per earlier open warning a signal attaches to). No scans.
//!
//! Invariants:
//! - One open (open or acknowledged) warning per household and rule: a later signal attaches to
//!   it (`signals` + 1), and a higher tier (a `[repeat]` raise) applies to it, its first-contact
//!   deadline then the earlier of the old one and the new tier's from now. The partial unique
//!   index `warnings_open_once` holds it against concurrent ingests.
//! - A signal is recorded once per (event, rule) (primary key), so a re-placed event is not
//!   counted twice.

use std::collections::HashMap;

use crate::store::BeginWrite as _;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::store::EventRow;
use crate::cases::clocks;
use crate::store::{Db, StoreError, on_db};

/// What the evaluation did for one rule that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    pub warning_id: String,
    pub rule: String,
    pub tier: String,
    /// True when the signal attached to an open warning.
    pub attached: bool,
}

/// The facts of an event the rules read (its details unsealed by the caller).
pub struct EventFacts<'a> {
    pub event_id: &'a str,
    pub kind: &'a str,
    pub occurred_ms: i64,
    pub household: &'a str,
    pub township: Option<&'a str>,
    pub village: Option<&'a str>,
    pub details: &'a Map<String, Value>,
}

fn instant(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The tier order, for "the higher of two".
pub fn rank(tier: &str) -> u8 {
    match tier {
        "emergency" => 2,
        "urgent" => 1,
        _ => 0,
    }
}

const DAY_MS: i64 = 86_400_000;

/// A recent signal of the household: (event id, rule, occurred ms, amount fen, warning id).
type RecentSignal = (String, String, i64, Option<i64>, Option<String>);

/// A stored signal as the [`Ledger`] reads it: (household, event id, rule, occurred ms, amount
/// fen, warning id).
type HouseholdSignal = (String, String, String, i64, Option<i64>, Option<String>);

/// The longest window any rule looks back over (amount windows and `[repeat]`), in days.
fn longest_window_days(rules: &policies::WarningRules) -> i64 {
    let longest = rules
        .rules
        .iter()
        .filter_map(|r| r.amount.as_ref().map(|a| a.window_days))
        .chain(std::iter::once(rules.repeat.window_days))
        .max()
        .unwrap_or(0);
    i64::from(longest)
}

/// Whether any rule reads events of `kind`.
fn read_by_rules(rules: &policies::WarningRules, kind: &str) -> bool {
    rules
        .rules
        .iter()
        .any(|r| r.kinds.iter().any(|k| k == kind))
}

/// The events the rules will read: placed (a township) and of a kind some rule reads.
fn evaluated(rules: &policies::WarningRules, f: &EventFacts<'_>) -> bool {
    f.township.is_some() && read_by_rules(rules, f.kind)
}

/// An open (or acknowledged) warning of a household and rule, as the evaluation leaves it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenWarning {
    id: String,
    tier: String,
    due_ms: i64,
    provisional: i64,
    /// Signals attached by the events evaluated here (added to `signals` and `version`).
    attached: i64,
    updated_ms: i64,
    /// Raised by an event evaluated here (written by an INSERT, not an UPDATE).
    raised_here: bool,
}

/// A warning raised by an event evaluated here: what its INSERT needs besides [`OpenWarning`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct NewWarning {
    household: String,
    rule: String,
    hardship: &'static str,
    township: String,
    village: Option<String>,
    created_ms: i64,
    first_event: String,
}

/// A `warning_signals` row to write.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SignalWrite {
    event_id: String,
    rule: String,
    household: String,
    occurred_ms: i64,
    amount_fen: Option<i64>,
    warning_id: Option<String>,
    tier: Option<String>,
    raised: i64,
    at_ms: i64,
}

/// 预警台账: what the rules read about a set of households (their active monitoring categories,
/// their signals within the longest window, their open warnings), loaded in a few queries
/// ([`Ledger::load_in`]), then updated in memory event by event ([`Ledger::evaluate`], pure) exactly
/// as the statements of a one-by-one evaluation would have left the database, and written at the
/// end in a few multi-row statements ([`Ledger::write_in`]). So a batch of events costs three reads
/// and three writes (plus one UPDATE per earlier open warning a signal attaches to), and two
/// events of the batch about the same household attach or raise the tier as if pushed one by one.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Per household: its active monitoring categories.
    categories: HashMap<String, Vec<String>>,
    /// Per household: its signals since the earliest window start (stored, then evaluated here).
    signals: HashMap<String, Vec<RecentSignal>>,
    /// Open warnings by (household, rule).
    open: HashMap<(String, String), OpenWarning>,
    /// Warnings raised here, in order, keyed into `open`.
    raised: Vec<NewWarning>,
    /// Signal rows to write, in order.
    writes: Vec<SignalWrite>,
}

/// Rows per multi-row statement of the ledger: at most 18 parameters a row, 9,000 a statement,
/// below SQLite's 32,766 and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 500;

/// Run `$body` with `$c` the connection of a [`crate::log::TxConn`] and `$DB` its database.
macro_rules! on_tx {
    ($conn:expr, $c:ident, $DB:ident => $body:expr) => {
        match $conn {
            crate::log::TxConn::Sqlite($c) => {
                #[allow(dead_code)]
                type $DB = sqlx::Sqlite;
                $body
            }
            crate::log::TxConn::Postgres($c) => {
                #[allow(dead_code)]
                type $DB = sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

impl Ledger {
    /// Read what the rules need about `households` (distinct pseudonyms) inside the transaction:
    /// their active categories, their signals that occurred at or after `since_ms`, their open
    /// warnings; one query each per [`ROWS_PER_STATEMENT`] households.
    pub async fn load_in(
        mut conn: crate::log::TxConn<'_>,
        households: &[&str],
        since_ms: i64,
    ) -> Result<Ledger, StoreError> {
        let mut l = Ledger::default();
        for chunk in households.chunks(ROWS_PER_STATEMENT) {
            let (categories, signals, open) = on_tx!(conn.reborrow(), c, DB => {
                let mut q = sqlx::QueryBuilder::<DB>::new(
                    "SELECT subject, category FROM monitored_households WHERE status = 'active' AND subject IN (",
                );
                let mut sep = q.separated(", ");
                for h in chunk {
                    sep.push_bind(h.to_string());
                }
                q.push(")");
                let categories: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *c).await?;
                let mut q = sqlx::QueryBuilder::<DB>::new(
                    "SELECT household, event_id, rule, occurred_ms, amount_fen, warning_id FROM warning_signals WHERE occurred_ms >= ",
                );
                q.push_bind(since_ms);
                q.push(" AND household IN (");
                let mut sep = q.separated(", ");
                for h in chunk {
                    sep.push_bind(h.to_string());
                }
                q.push(")");
                let signals: Vec<HouseholdSignal> = q.build_query_as().fetch_all(&mut *c).await?;
                let mut q = sqlx::QueryBuilder::<DB>::new(
                    "SELECT household, rule, id, tier, due_ms, provisional FROM warnings WHERE state IN ('open', 'acknowledged') AND household IN (",
                );
                let mut sep = q.separated(", ");
                for h in chunk {
                    sep.push_bind(h.to_string());
                }
                q.push(")");
                let open: Vec<(String, String, String, String, i64, i64)> =
                    q.build_query_as().fetch_all(&mut *c).await?;
                (categories, signals, open)
            });
            for (h, category) in categories {
                l.categories.entry(h).or_default().push(category);
            }
            for (h, event_id, rule, at, amount, warning) in signals {
                l.signals
                    .entry(h)
                    .or_default()
                    .push((event_id, rule, at, amount, warning));
            }
            for (h, rule, id, tier, due_ms, provisional) in open {
                l.open.insert(
                    (h, rule),
                    OpenWarning {
                        id,
                        tier,
                        due_ms,
                        provisional,
                        attached: 0,
                        updated_ms: 0,
                        raised_here: false,
                    },
                );
            }
        }
        Ok(l)
    }

    /// Evaluate the rules on one placed event, as if every event evaluated before it here were
    /// stored: nothing for an unmatched event or a kind no rule reads; else every candidate
    /// (event, rule) becomes a signal, and a fired rule attaches to the household's open warning
    /// of that rule (a higher tier applies, the deadline then the earlier of the old one and the
    /// new tier's from `now_ms`) or raises a new one. Pure: the writes wait for
    /// [`Ledger::write_in`].
    pub fn evaluate(
        &mut self,
        rules: &policies::WarningRules,
        calendar: &policies::WorkingCalendar,
        f: &EventFacts<'_>,
        now_ms: i64,
    ) -> Vec<Raised> {
        let mut raised: Vec<Raised> = Vec::new();
        let Some(township) = f.township.filter(|_| read_by_rules(rules, f.kind)) else {
            return raised;
        };
        let since = f.occurred_ms - longest_window_days(rules) * DAY_MS;
        let recent: Vec<RecentSignal> = self
            .signals
            .get(f.household)
            .map(|all| all.iter().filter(|s| s.2 >= since).cloned().collect())
            .unwrap_or_default();
        let history = history(rules, f, &recent);
        let household = policies::HouseholdFacts {
            township: Some(township.to_owned()),
            categories: self
                .categories
                .get(f.household)
                .cloned()
                .unwrap_or_default(),
        };
        let signal = policies::Signal {
            kind: f.kind,
            occurred: instant(f.occurred_ms),
            details: f.details,
        };
        for v in rules.evaluate(&signal, &household, &history) {
            if !v.candidate {
                continue;
            }
            let mut warning_id: Option<String> = None;
            let tier = v.tier.map(|t| t.code().to_owned());
            if let (true, Some(tier), Some(rule)) = (v.fired, &tier, rules.rule(&v.rule)) {
                let period = rules.first_contact(v.tier.unwrap_or_default());
                let (due, provisional) = clocks::first_contact_due(period, now_ms, calendar);
                let key = (f.household.to_owned(), v.rule.clone());
                match self.open.get_mut(&key) {
                    Some(o) => {
                        if rank(tier) > rank(&o.tier) {
                            if due < o.due_ms {
                                o.due_ms = due;
                                o.provisional = i64::from(provisional);
                            }
                            o.tier = tier.clone();
                        }
                        o.attached += 1;
                        o.updated_ms = now_ms;
                        raised.push(Raised {
                            warning_id: o.id.clone(),
                            rule: v.rule.clone(),
                            tier: o.tier.clone(),
                            attached: true,
                        });
                        warning_id = Some(o.id.clone());
                    }
                    None => {
                        let id = uuid::Uuid::now_v7().to_string();
                        self.open.insert(
                            key,
                            OpenWarning {
                                id: id.clone(),
                                tier: tier.clone(),
                                due_ms: due,
                                provisional: i64::from(provisional),
                                attached: 0,
                                updated_ms: now_ms,
                                raised_here: true,
                            },
                        );
                        self.raised.push(NewWarning {
                            household: f.household.to_owned(),
                            rule: v.rule.clone(),
                            hardship: rule.hardship.code(),
                            township: township.to_owned(),
                            village: f.village.map(str::to_owned),
                            created_ms: now_ms,
                            first_event: f.event_id.to_owned(),
                        });
                        raised.push(Raised {
                            warning_id: id.clone(),
                            rule: v.rule.clone(),
                            tier: tier.clone(),
                            attached: false,
                        });
                        warning_id = Some(id);
                    }
                }
            }
            // Recorded once per (event, rule), as the table's primary key keeps it (a stored one
            // occurred at the event's time, so it is among the signals loaded).
            let signals = self.signals.entry(f.household.to_owned()).or_default();
            if signals
                .iter()
                .any(|(e, rule, ..)| e == f.event_id && *rule == v.rule)
            {
                continue;
            }
            signals.push((
                f.event_id.to_owned(),
                v.rule.clone(),
                f.occurred_ms,
                v.amount_fen,
                warning_id.clone(),
            ));
            self.writes.push(SignalWrite {
                event_id: f.event_id.to_owned(),
                rule: v.rule.clone(),
                household: f.household.to_owned(),
                occurred_ms: f.occurred_ms,
                amount_fen: v.amount_fen,
                warning_id,
                tier,
                raised: i64::from(v.raised),
                at_ms: now_ms,
            });
        }
        raised
    }

    /// Write what the evaluations did, inside the transaction: the new warnings (multi-row
    /// INSERTs, in their state after every attachment here), one UPDATE per earlier open warning
    /// a signal attached to, and the signals (multi-row INSERTs; an (event, rule) already recorded
    /// is left as it is).
    pub async fn write_in(self, mut conn: crate::log::TxConn<'_>) -> Result<(), StoreError> {
        let Ledger {
            open,
            raised,
            writes,
            ..
        } = self;
        // Every raised warning is in `open` (entries are never removed from it).
        let new_rows: Vec<(&NewWarning, &OpenWarning)> = raised
            .iter()
            .filter_map(|n| {
                open.get(&(n.household.clone(), n.rule.clone()))
                    .filter(|o| o.raised_here)
                    .map(|o| (n, o))
            })
            .collect();
        let mut updates: Vec<&OpenWarning> = open
            .values()
            .filter(|o| !o.raised_here && o.attached > 0)
            .collect();
        updates.sort_by(|a, b| a.id.cmp(&b.id));
        on_tx!(conn.reborrow(), c, DB => {
            for chunk in new_rows.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<DB>::new(
                    "INSERT INTO warnings (id, household, rule, state, tier, hardship, township, village, created_ms, updated_ms, due_ms, provisional, signals, first_event, version) ",
                );
                q.push_values(chunk, |mut r, (n, o)| {
                    r.push_bind(o.id.clone())
                        .push_bind(n.household.clone())
                        .push_bind(n.rule.clone())
                        .push_bind("open")
                        .push_bind(o.tier.clone())
                        .push_bind(n.hardship)
                        .push_bind(n.township.clone())
                        .push_bind(n.village.clone())
                        .push_bind(n.created_ms)
                        .push_bind(o.updated_ms)
                        .push_bind(o.due_ms)
                        .push_bind(o.provisional)
                        .push_bind(1 + o.attached)
                        .push_bind(n.first_event.clone())
                        .push_bind(1 + o.attached);
                });
                q.build().execute(&mut *c).await?;
            }
            for o in updates {
                sqlx::query("UPDATE warnings SET signals = signals + $1, tier = $2, due_ms = $3, provisional = $4, updated_ms = $5, version = version + $1 WHERE id = $6")
                    .bind(o.attached)
                    .bind(&o.tier)
                    .bind(o.due_ms)
                    .bind(o.provisional)
                    .bind(o.updated_ms)
                    .bind(&o.id)
                    .execute(&mut *c)
                    .await?;
            }
            for chunk in writes.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<DB>::new(
                    "INSERT INTO warning_signals (event_id, rule, household, occurred_ms, amount_fen, warning_id, tier, raised, at_ms) ",
                );
                q.push_values(chunk, |mut r, w| {
                    r.push_bind(w.event_id.clone())
                        .push_bind(w.rule.clone())
                        .push_bind(w.household.clone())
                        .push_bind(w.occurred_ms)
                        .push_bind(w.amount_fen)
                        .push_bind(w.warning_id.clone())
                        .push_bind(w.tier.clone())
                        .push_bind(w.raised)
                        .push_bind(w.at_ms);
                });
                q.push(" ON CONFLICT (event_id, rule) DO NOTHING");
                q.build().execute(&mut *c).await?;
            }
        });
        Ok(())
    }
}

/// Evaluate the rules on several placed events inside the transaction, in the order given, and
/// write what they did: the state is read once for all their households ([`Ledger`]). Returns
/// per event what it raised.
pub async fn evaluate_in(
    mut conn: crate::log::TxConn<'_>,
    engine: &policies::PolicyEngine,
    events: &[(EventFacts<'_>, i64)],
) -> Result<Vec<Vec<Raised>>, StoreError> {
    let rules = engine.warnings();
    let mut households: Vec<&str> = events
        .iter()
        .filter(|(f, _)| evaluated(rules, f))
        .map(|(f, _)| f.household)
        .collect();
    if households.is_empty() {
        return Ok(vec![Vec::new(); events.len()]);
    }
    households.sort_unstable();
    households.dedup();
    let since = events
        .iter()
        .filter(|(f, _)| evaluated(rules, f))
        .map(|(f, _)| f.occurred_ms)
        .min()
        .unwrap_or(0)
        - longest_window_days(rules) * DAY_MS;
    let mut ledger = Ledger::load_in(conn.reborrow(), &households, since).await?;
    let raised = events
        .iter()
        .map(|(f, now_ms)| ledger.evaluate(rules, engine.calendar(), f, *now_ms))
        .collect();
    ledger.write_in(conn).await?;
    Ok(raised)
}

/// The household's history as the rules read it: per amount rule the sum of earlier amounts
/// within its window, and the fired signals (distinct events) within `[repeat]`'s window.
fn history(
    rules: &policies::WarningRules,
    f: &EventFacts<'_>,
    recent: &[RecentSignal],
) -> policies::History {
    let mut h = policies::History::default();
    for r in &rules.rules {
        let Some(a) = &r.amount else { continue };
        let from = f.occurred_ms - i64::from(a.window_days) * DAY_MS;
        let sum: i64 = recent
            .iter()
            .filter(|(e, rule, at, _, _)| {
                e != f.event_id && *rule == r.id && *at >= from && *at <= f.occurred_ms
            })
            .filter_map(|(_, _, _, amount, _)| *amount)
            .sum();
        h.prior_amount_fen.insert(r.id.clone(), sum);
    }
    let window = i64::from(rules.repeat.window_days) * DAY_MS;
    let mut fired: Vec<&str> = recent
        .iter()
        .filter(|(e, _, at, _, w)| {
            e != f.event_id && w.is_some() && (*at - f.occurred_ms).abs() <= window
        })
        .map(|(e, ..)| e.as_str())
        .collect();
    fired.sort_unstable();
    fired.dedup();
    h.recent_signals = fired.len() as u32;
    h
}

/// The facts of a stored event row the rules read.
fn facts_of<'a>(e: &'a EventRow, details: &'a Map<String, Value>) -> EventFacts<'a> {
    EventFacts {
        event_id: &e.event_id,
        kind: &e.kind,
        occurred_ms: e.occurred_ms,
        household: &e.subject,
        township: e.township.as_deref(),
        village: e.village.as_deref(),
        details,
    }
}

/// Store new events and evaluate the rules on them in the order given, inside a transaction the
/// caller commits (the access log's group commit: the events' rows, their warnings and their
/// `event_received` entries in one commit, see [`crate::log::Attached`]): the rows in multi-row
/// INSERTs, then one [`Ledger`] for all their households. Per event: `None` when its id was
/// taken meanwhile (nothing is written for it), else what it raised. The ids must be distinct.
pub async fn insert_events_in(
    mut conn: crate::log::TxConn<'_>,
    engine: &policies::PolicyEngine,
    rows: &[EventRow],
    details: &[Map<String, Value>],
) -> Result<Vec<Option<Vec<Raised>>>, StoreError> {
    // The writes first: SQLite's write lock is the log batch's already; on PostgreSQL the rows'
    // primary keys are taken before the rules read.
    let mut inserted = super::store::insert_events_in(conn.reborrow(), rows).await?;
    let mut stored = Vec::with_capacity(rows.len());
    let mut events = Vec::with_capacity(rows.len());
    for (e, d) in rows.iter().zip(details) {
        let new = inserted.remove(&e.event_id);
        stored.push(new);
        if new {
            events.push((facts_of(e, d), e.received_ms));
        }
    }
    let mut raised = evaluate_in(conn, engine, &events).await?.into_iter();
    Ok(stored
        .into_iter()
        .map(|new| new.then(|| raised.next().unwrap_or_default()))
        .collect())
}

/// Store a village report: its event row (so the rules read it like a department event), the
/// rule evaluation, and the report row naming the warning it raised or joined, in one
/// transaction. `None` when its id is taken (nothing is written).
pub async fn insert_village_report(
    db: &Db,
    engine: &policies::PolicyEngine,
    e: &EventRow,
    details: &Map<String, Value>,
    report: &super::store::VillageReportRow,
) -> Result<Option<Vec<Raised>>, StoreError> {
    let sql = super::store::insert_event_sql();
    let raised = on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        let n = super::store::bind_event_row!(sqlx::query(sqlx::AssertSqlSafe(sql)), e)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let raised = evaluate_in(
            crate::log::TxConn::from(&mut *tx),
            engine,
            &[(facts_of(e, details), e.received_ms)],
        )
        .await?
        .pop()
        .unwrap_or_default();
        let warning_id = raised.first().map(|r| r.warning_id.clone());
        super::store::bind_village_report!(
            sqlx::query(super::store::INSERT_VILLAGE_REPORT),
            report,
            warning_id
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        raised
    });
    Ok(Some(raised))
}

/// Place one unmatched event in the household's township and village (from the monitoring list)
/// and evaluate the rules on it, in one transaction. `None` when it was placed meanwhile.
pub async fn place_event(
    db: &Db,
    engine: &policies::PolicyEngine,
    e: &EventRow,
    township: &str,
    village: Option<&str>,
    details: &Map<String, Value>,
    now_ms: i64,
) -> Result<Option<Vec<Raised>>, StoreError> {
    let facts = EventFacts {
        township: Some(township),
        village,
        ..facts_of(e, details)
    };
    let raised = on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        let n = sqlx::query("UPDATE dept_events SET placement = 'monitoring', township = $1, village = $2, placed_ms = $3 WHERE event_id = $4 AND placement = 'unmatched'")
            .bind(township)
            .bind(village)
            .bind(now_ms)
            .bind(&e.event_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let raised = evaluate_in(crate::log::TxConn::from(&mut *tx), engine, &[(facts, now_ms)])
            .await?
            .pop()
            .unwrap_or_default();
        tx.commit().await?;
        raised
    });
    Ok(Some(raised))
}

/// Place the unmatched events whose person (`subject`, or anyone) is now on the monitoring list,
/// each in its own transaction with its rule evaluation. Returns how many were placed.
pub async fn place_unmatched(
    s: &crate::api::AppState,
    subject: Option<&str>,
    now_ms: i64,
) -> Result<u64, crate::api::ApiError> {
    let db = s.store.db();
    let engine = s.authz.engine();
    let mut placed = 0;
    for (e, township, village) in super::store::placeable_unmatched(&db, subject).await? {
        let plain = s
            .keys
            .open(&e.key_id, &super::events::event_aad(&e.event_id), &e.sealed)
            .map_err(super::seal_error)?;
        let event: Value =
            serde_json::from_slice(&plain).map_err(crate::api::ApiError::internal)?;
        let details = event
            .get("details")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if place_event(
            &db,
            &engine,
            &e,
            &township,
            village.as_deref(),
            &details,
            now_ms,
        )
        .await?
        .is_some()
        {
            placed += 1;
        }
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped rules: (labor unemployment → `monitored_unemployment`, normal; hospital costs
    /// above the county threshold → `hospital_costs`, urgent; `[repeat]`: a second fired signal
    /// within 90 days raises one tier).
    fn shipped() -> policies::PolicyEngine {
        policies::PolicyEngine::load(policies::PolicyEngine::shipped_dir())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn at(day: i64) -> i64 {
        // 2026-11-01T00:00:00Z, then `day` days on.
        1_793_491_200_000 + day * DAY_MS
    }

    #[test]
    fn a_ledger_evaluates_events_in_order_as_if_stored_one_by_one() {
        let engine = shipped();
        let (rules, calendar) = (engine.warnings(), engine.calendar());
        let mut l = Ledger::default();
        l.categories.insert("h".into(), vec!["dibao_edge".into()]);
        let none = Map::new();
        let hospital: Map<String, Value> = serde_json::json!({"out_of_pocket_fen": 2_100_000})
            .as_object()
            .cloned()
            .unwrap_or_default();
        fn facts<'a>(
            id: &'a str,
            kind: &'a str,
            day: i64,
            details: &'a Map<String, Value>,
        ) -> EventFacts<'a> {
            EventFacts {
                event_id: id,
                kind,
                occurred_ms: at(day),
                household: "h",
                township: Some("370811002"),
                village: Some("370811002001"),
                details,
            }
        }
        // First unemployment: a new normal warning.
        let r1 = l.evaluate(
            rules,
            calendar,
            &facts("e1", "labor.unemployment_registered", 0, &none),
            at(0),
        );
        assert_eq!(r1.len(), 1);
        assert_eq!((r1[0].tier.as_str(), r1[0].attached), ("normal", false));
        // Second within 90 days: attaches to it, raised one tier by [repeat].
        let r2 = l.evaluate(
            rules,
            calendar,
            &facts("e2", "labor.unemployment_registered", 1, &none),
            at(1),
        );
        assert_eq!(r2.len(), 1);
        assert_eq!(
            (
                r2[0].warning_id.as_str(),
                r2[0].tier.as_str(),
                r2[0].attached
            ),
            (r1[0].warning_id.as_str(), "urgent", true)
        );
        // Hospital costs: another rule, a new warning, urgent raised to emergency (two earlier
        // fired signals).
        let r3 = l.evaluate(
            rules,
            calendar,
            &facts("e3", "health.hospitalisation", 2, &hospital),
            at(2),
        );
        assert_eq!(r3.len(), 1);
        assert_eq!((r3[0].tier.as_str(), r3[0].attached), ("emergency", false));
        // An unmatched event and a kind no rule reads: nothing.
        let unplaced = EventFacts {
            township: None,
            ..facts("e4", "labor.unemployment_registered", 3, &none)
        };
        assert!(l.evaluate(rules, calendar, &unplaced, at(3)).is_empty());
        assert!(
            l.evaluate(
                rules,
                calendar,
                &facts("e5", "labor.benefit_ended", 3, &none),
                at(3)
            )
            .is_empty()
        );
        // What will be written: two warnings in their final state, three signals.
        assert_eq!(l.raised.len(), 2);
        let first = &l.open[&("h".to_owned(), "monitored_unemployment".to_owned())];
        assert_eq!(
            (
                first.tier.as_str(),
                first.attached,
                first.updated_ms,
                first.raised_here
            ),
            ("urgent", 1, at(1), true)
        );
        // The urgent deadline (24 h from the attaching signal) is earlier than normal's.
        assert_eq!(first.due_ms, at(1) + DAY_MS);
        let signals: Vec<(&str, &str, Option<&str>)> = l
            .writes
            .iter()
            .map(|w| (w.event_id.as_str(), w.rule.as_str(), w.tier.as_deref()))
            .collect();
        assert_eq!(
            signals,
            [
                ("e1", "monitored_unemployment", Some("normal")),
                ("e2", "monitored_unemployment", Some("urgent")),
                ("e3", "hospital_costs", Some("emergency")),
            ]
        );
        // The same event evaluated again (a re-placement) records no second signal.
        let again = l.evaluate(
            rules,
            calendar,
            &facts("e2", "labor.unemployment_registered", 1, &none),
            at(1),
        );
        assert_eq!(again.len(), 1);
        assert_eq!(l.writes.len(), 3);
    }

    #[test]
    fn a_ledger_attaches_to_a_stored_open_warning() {
        let engine = shipped();
        let mut l = Ledger::default();
        l.categories.insert("h".into(), vec!["dibao_edge".into()]);
        l.open.insert(
            ("h".into(), "monitored_unemployment".into()),
            OpenWarning {
                id: "w0".into(),
                tier: "normal".into(),
                due_ms: at(3),
                provisional: 0,
                attached: 0,
                updated_ms: 0,
                raised_here: false,
            },
        );
        // Its signal was long ago: no [repeat] raise, the tier and deadline stay.
        l.signals.insert(
            "h".into(),
            vec![(
                "e0".into(),
                "monitored_unemployment".into(),
                at(-200),
                None,
                Some("w0".into()),
            )],
        );
        let none = Map::new();
        let f = EventFacts {
            event_id: "e1",
            kind: "labor.unemployment_registered",
            occurred_ms: at(0),
            household: "h",
            township: Some("370811002"),
            village: None,
            details: &none,
        };
        let r = l.evaluate(engine.warnings(), engine.calendar(), &f, at(0));
        assert_eq!(
            r,
            [Raised {
                warning_id: "w0".into(),
                rule: "monitored_unemployment".into(),
                tier: "normal".into(),
                attached: true
            }]
        );
        let o = &l.open[&("h".to_owned(), "monitored_unemployment".to_owned())];
        assert_eq!((o.attached, o.due_ms, o.updated_ms), (1, at(3), at(0)));
        assert!(l.raised.is_empty());
    }

    #[test]
    fn tiers_rank_and_history_counts_distinct_fired_events() {
        assert!(rank("emergency") > rank("urgent") && rank("urgent") > rank("normal"));
        let rules = policies::WarningRules::load_dir(&policies::PolicyEngine::shipped_dir())
            .unwrap_or_else(|e| panic!("{e}"));
        let d = Map::new();
        let f = EventFacts {
            event_id: "e3",
            kind: "health.hospitalisation",
            occurred_ms: 100 * DAY_MS,
            household: "h",
            township: Some("370811001"),
            village: None,
            details: &d,
        };
        let w = Some("w".to_owned());
        let recent = vec![
            (
                "e1".into(),
                "hospital_costs".into(),
                95 * DAY_MS,
                Some(10),
                w.clone(),
            ),
            ("e1".into(), "other".into(), 95 * DAY_MS, None, w.clone()),
            (
                "e2".into(),
                "hospital_costs".into(),
                60 * DAY_MS,
                Some(20),
                None,
            ),
            (
                "e0".into(),
                "hospital_costs".into(),
                5 * DAY_MS,
                Some(40),
                w,
            ),
        ];
        let h = history(&rules, &f, &recent);
        // e1 only: e2 fired nothing, e0 is outside 90 days.
        assert_eq!(h.recent_signals, 1);
        // Within 30 days: e1 only.
        assert_eq!(h.prior_amount_fen["hospital_costs"], 10);
    }
}
