//! 预警评估: the warning rules (`policies/warnings.toml`, [`policies::WarningRules`]) run on a
//! department event when it is stored placed, or when an unmatched event is placed later, **in
//! the same transaction** as the event's row, so an event is never stored without its warnings
//! nor a warning without its event.
//!
//! Cost on the ingest path: nothing for an unmatched event or a kind no rule reads; otherwise
//! one look-up of the household's active monitoring categories (primary key prefix), one of its
//! recent signals (`warning_signals_household`, covering both the amount windows and `[repeat]`),
//! and per fired rule one look-up of its open warning (`warnings_open_once`). No scans.
//!
//! Invariants:
//! - One open (open or acknowledged) warning per household and rule: a later signal attaches to
//!   it (`signals` + 1), and a higher tier (a `[repeat]` raise) applies to it, its first-contact
//!   deadline then the earlier of the old one and the new tier's from now. The partial unique
//!   index `warnings_open_once` holds it against concurrent ingests.
//! - A signal is recorded once per (event, rule) (primary key), so a re-placed event is not
//!   counted twice.

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

/// Evaluate the rules on one placed event inside `tx` (a transaction of `$DB`). Expands to the
/// list of [`Raised`].
macro_rules! evaluate_in_tx {
    ($tx:ident, $engine:expr, $f:expr, $now_ms:expr) => {{
        let engine: &policies::PolicyEngine = $engine;
        let f: &EventFacts<'_> = $f;
        let now_ms: i64 = $now_ms;
        let rules = engine.warnings();
        let mut raised: Vec<Raised> = Vec::new();
        let reads = rules.rules.iter().any(|r| r.kinds.iter().any(|k| k == f.kind));
        if let (true, Some(township)) = (reads, f.township) {
            let categories: Vec<(String,)> = sqlx::query_as(
                "SELECT category FROM monitored_households WHERE subject = $1 AND status = 'active'",
            )
            .bind(f.household)
            .fetch_all(&mut *$tx)
            .await?;
            let longest = rules
                .rules
                .iter()
                .filter_map(|r| r.amount.as_ref().map(|a| a.window_days))
                .chain(std::iter::once(rules.repeat.window_days))
                .max()
                .unwrap_or(0);
            let since = f.occurred_ms - i64::from(longest) * DAY_MS;
            let recent: Vec<RecentSignal> = sqlx::query_as(
                "SELECT event_id, rule, occurred_ms, amount_fen, warning_id FROM warning_signals WHERE household = $1 AND occurred_ms >= $2",
            )
            .bind(f.household)
            .bind(since)
            .fetch_all(&mut *$tx)
            .await?;
            let history = history(rules, f, &recent);
            let household = policies::HouseholdFacts {
                township: Some(township.to_owned()),
                categories: categories.into_iter().map(|(c,)| c).collect(),
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
                    let open: Option<(String, String, i64, i64)> = sqlx::query_as(
                        "SELECT id, tier, due_ms, provisional FROM warnings WHERE household = $1 AND rule = $2 AND state IN ('open', 'acknowledged')",
                    )
                    .bind(f.household)
                    .bind(&v.rule)
                    .fetch_optional(&mut *$tx)
                    .await?;
                    let period = rules.first_contact(v.tier.unwrap_or_default());
                    let (due, provisional) =
                        clocks::first_contact_due(period, now_ms, engine.calendar());
                    match open {
                        Some((id, old_tier, old_due, old_prov)) => {
                            let (tier, due, prov) = if rank(tier) > rank(&old_tier) && due < old_due {
                                (tier.clone(), due, i64::from(provisional))
                            } else if rank(tier) > rank(&old_tier) {
                                (tier.clone(), old_due, old_prov)
                            } else {
                                (old_tier.clone(), old_due, old_prov)
                            };
                            sqlx::query("UPDATE warnings SET signals = signals + 1, tier = $1, due_ms = $2, provisional = $3, updated_ms = $4, version = version + 1 WHERE id = $5")
                                .bind(&tier)
                                .bind(due)
                                .bind(prov)
                                .bind(now_ms)
                                .bind(&id)
                                .execute(&mut *$tx)
                                .await?;
                            raised.push(Raised { warning_id: id.clone(), rule: v.rule.clone(), tier, attached: true });
                            warning_id = Some(id);
                        }
                        None => {
                            let id = uuid::Uuid::now_v7().to_string();
                            sqlx::query("INSERT INTO warnings (id, household, rule, state, tier, hardship, township, village, created_ms, updated_ms, due_ms, provisional, signals, first_event, version) VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $8, $9, $10, 1, $11, 1)")
                                .bind(&id)
                                .bind(f.household)
                                .bind(&v.rule)
                                .bind(tier)
                                .bind(rule.hardship.code())
                                .bind(township)
                                .bind(f.village)
                                .bind(now_ms)
                                .bind(due)
                                .bind(i64::from(provisional))
                                .bind(f.event_id)
                                .execute(&mut *$tx)
                                .await?;
                            raised.push(Raised { warning_id: id.clone(), rule: v.rule.clone(), tier: tier.clone(), attached: false });
                            warning_id = Some(id);
                        }
                    }
                }
                sqlx::query("INSERT INTO warning_signals (event_id, rule, household, occurred_ms, amount_fen, warning_id, tier, raised, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id, rule) DO NOTHING")
                    .bind(f.event_id)
                    .bind(&v.rule)
                    .bind(f.household)
                    .bind(f.occurred_ms)
                    .bind(v.amount_fen)
                    .bind(&warning_id)
                    .bind(&tier)
                    .bind(i64::from(v.raised))
                    .bind(now_ms)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
        raised
    }};
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

/// Store a new event and evaluate the rules on it, in one transaction. `None` when its id is
/// taken (nothing is written).
pub async fn insert_event(
    db: &Db,
    engine: &policies::PolicyEngine,
    e: &EventRow,
    details: &Map<String, Value>,
) -> Result<Option<Vec<Raised>>, StoreError> {
    let sql = super::store::insert_event_sql();
    let facts = EventFacts {
        event_id: &e.event_id,
        kind: &e.kind,
        occurred_ms: e.occurred_ms,
        household: &e.subject,
        township: e.township.as_deref(),
        village: e.village.as_deref(),
        details,
    };
    let raised = on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        // The write first: SQLite takes its write lock here, so the reads below see a state no
        // other writer changes before the commit.
        let n = super::store::bind_event_row!(sqlx::query(sqlx::AssertSqlSafe(sql)), e)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let raised = evaluate_in_tx!(tx, engine, &facts, e.received_ms);
        tx.commit().await?;
        raised
    });
    Ok(Some(raised))
}

/// [`insert_event`] inside a transaction the caller commits (the access log's group commit: the
/// event's row, its warnings and its `event_received` entry in one commit, see
/// [`crate::log::Attached`]). `None` when its id is taken (nothing is written).
pub async fn insert_event_in(
    conn: crate::log::TxConn<'_>,
    engine: &policies::PolicyEngine,
    e: &EventRow,
    details: &Map<String, Value>,
) -> Result<Option<Vec<Raised>>, StoreError> {
    let sql = super::store::insert_event_sql();
    let facts = EventFacts {
        event_id: &e.event_id,
        kind: &e.kind,
        occurred_ms: e.occurred_ms,
        household: &e.subject,
        township: e.township.as_deref(),
        village: e.village.as_deref(),
        details,
    };
    macro_rules! run {
        ($tx:ident) => {{
            let n = super::store::bind_event_row!(sqlx::query(sqlx::AssertSqlSafe(sql)), e)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
            if n != 1 {
                return Ok(None);
            }
            evaluate_in_tx!($tx, engine, &facts, e.received_ms)
        }};
    }
    let raised = match conn {
        crate::log::TxConn::Sqlite(tx) => run!(tx),
        crate::log::TxConn::Postgres(tx) => run!(tx),
    };
    Ok(Some(raised))
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
    let facts = EventFacts {
        event_id: &e.event_id,
        kind: &e.kind,
        occurred_ms: e.occurred_ms,
        household: &e.subject,
        township: e.township.as_deref(),
        village: e.village.as_deref(),
        details,
    };
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
        let raised = evaluate_in_tx!(tx, engine, &facts, e.received_ms);
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
        event_id: &e.event_id,
        kind: &e.kind,
        occurred_ms: e.occurred_ms,
        household: &e.subject,
        township: Some(township),
        village,
        details,
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
        let raised = evaluate_in_tx!(tx, engine, &facts, now_ms);
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
