//! A [`FactSource`] over a department's own SQL database (PostgreSQL, MySQL/MariaDB or SQLite),
//! driven by a [`Mapping`].
//!
//! Found / unknown: with a `[subject]` query, a person is known iff it returns a row. Without one,
//! a person is unknown iff none of the requested facts' queries returns a row. A known person
//! whose fact query returns no row gets the fact's `default`; without a default the subject is
//! reported `unknown` with the missing kinds named in the reason. A value that does not fit the
//! catalogue (a code outside the allowed set, a negative amount) makes the subject `refused`
//! ("record failed validation"), and the department's log says which fact and rule.
//! Monthly rows outside the query's reference period are ignored.

use std::str::FromStr as _;

use schemas::{
    Department, Fact, FactKind, FactValue, MonthAmount, ReferencePeriod, ResidentId,
    SubjectOutcome, ValueType, YearMonth,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row as _};
use time::Date;

use super::mapping::{Mapping, MappingError, Param, Placeholders, QuerySpec};
use super::source::{BoxFuture, FactSource, SourceError};

/// Why the SQL source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SqlSetupError {
    #[error("database url: scheme must be postgres://, mysql://, mariadb:// or sqlite://")]
    UnknownScheme,
    #[error(
        "database url: this connector was built without MySQL/MariaDB support (build it with the `mysql` feature, the default)"
    )]
    MysqlNotBuilt,
    #[error("mapping: {0}")]
    Mapping(#[from] MappingError),
    #[error("database: cannot connect: {0}")]
    Connect(sqlx::Error),
}

/// Facts from SQL queries.
pub struct SqlFactSource {
    pool: AnyPool,
    mapping: Mapping,
}

impl SqlFactSource {
    /// Connect to `url` and check the mapping's placeholders for that database.
    pub async fn connect(url: &str, mapping: Mapping) -> Result<Self, SqlSetupError> {
        let style = Placeholders::for_url(url).ok_or(SqlSetupError::UnknownScheme)?;
        if style == Placeholders::Question && !cfg!(feature = "mysql") {
            return Err(SqlSetupError::MysqlNotBuilt);
        }
        mapping.check_placeholders(style)?;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(SqlSetupError::Connect)?;
        Ok(Self { pool, mapping })
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    async fn rows(
        &self,
        q: &QuerySpec,
        subject: &ResidentId,
        as_of: Date,
        period: ReferencePeriod,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut query = sqlx::query(AssertSqlSafe(q.sql.as_str()));
        for p in &q.params {
            let v = match p {
                Param::ResidentId => subject.expose().to_owned(),
                Param::AsOf => iso(as_of),
                Param::PeriodFrom => iso(period.from),
                Param::PeriodTo => iso(period.to),
                Param::PeriodFromMonth => YearMonth::of(period.from).to_string(),
                Param::PeriodToMonth => YearMonth::of(period.to).to_string(),
            };
            query = query.bind(v);
        }
        query.fetch_all(&self.pool).await
    }

    async fn lookup_inner(
        &self,
        subject: &ResidentId,
        kinds: &[FactKind],
        as_of: Date,
    ) -> Result<SubjectOutcome, SourceError> {
        let dept = self.mapping.department;
        if let Some(sq) = &self.mapping.subject {
            let rows = self
                .rows(
                    sq,
                    subject,
                    as_of,
                    ReferencePeriod {
                        from: as_of,
                        to: as_of,
                    },
                )
                .await
                .map_err(|e| SourceError(format!("subject query: {e}")))?;
            if rows.is_empty() {
                return Ok(SubjectOutcome::Unknown {
                    reason: format!("{dept} has no record of this person"),
                });
            }
        }
        let mut facts = Vec::with_capacity(kinds.len());
        let mut missing = Vec::new();
        let mut any_row = false;
        for &kind in kinds {
            let Some(fm) = self.mapping.facts.get(&kind) else {
                return Err(SourceError(format!("{kind} is not mapped")));
            };
            let spec = kind.spec();
            let period = spec.period.period_for(as_of);
            let rows = self
                .rows(&fm.query, subject, as_of, period)
                .await
                .map_err(|e| SourceError(format!("facts.\"{kind}\".query: {e}")))?;
            any_row |= !rows.is_empty();
            let value = match decode(spec.value_type, &rows, period) {
                Ok(Some(v)) => v,
                Ok(None) => match &fm.default {
                    Some(d) => d.clone(),
                    None => {
                        missing.push(kind);
                        continue;
                    }
                },
                Err(rule) => {
                    tracing::warn!(target: "connector::query", "facts.\"{kind}\": bad column data: {rule}");
                    return Ok(SubjectOutcome::Refused {
                        reason: format!("record failed validation for {kind}"),
                    });
                }
            };
            if let Err(e) = spec.check_value(&value, &period) {
                tracing::warn!(target: "connector::query", "facts.\"{kind}\": value does not fit the catalogue: {e}");
                return Ok(SubjectOutcome::Refused {
                    reason: format!("record failed validation for {kind}: {e}"),
                });
            }
            facts.push(Fact {
                kind,
                value,
                period,
            });
        }
        if self.mapping.subject.is_none() && !any_row {
            return Ok(SubjectOutcome::Unknown {
                reason: format!("{dept} has no record of this person"),
            });
        }
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|k| k.code()).collect();
            return Ok(SubjectOutcome::Unknown {
                reason: format!("no record for {}", names.join(", ")),
            });
        }
        Ok(SubjectOutcome::Found { facts })
    }
}

impl FactSource for SqlFactSource {
    fn department(&self) -> Department {
        self.mapping.department
    }

    fn serves(&self, kind: FactKind) -> bool {
        self.mapping.facts.contains_key(&kind)
    }

    fn lookup<'a>(
        &'a self,
        subject: &'a ResidentId,
        kinds: &'a [FactKind],
        as_of: Date,
    ) -> BoxFuture<'a, Result<SubjectOutcome, SourceError>> {
        Box::pin(self.lookup_inner(subject, kinds, as_of))
    }
}

fn iso(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Turn the rows of a fact query into a value; `Ok(None)` when there is no row.
fn decode(
    vt: ValueType,
    rows: &[AnyRow],
    period: ReferencePeriod,
) -> Result<Option<FactValue>, String> {
    if vt == ValueType::MonthlyFen {
        let mut months = Vec::with_capacity(rows.len());
        for row in rows {
            let m: String = row
                .try_get("month")
                .map_err(|e| format!("column month: {e}"))?;
            let month = YearMonth::parse(m.trim())
                .ok_or_else(|| "column month: must be text YYYY-MM".to_owned())?;
            let fen = int(row, "fen")?;
            if month.last_day() < period.from || month.first_day() > period.to {
                continue;
            }
            months.push(MonthAmount { month, fen });
        }
        months.sort_by_key(|m| m.month);
        // No row is an empty series (no amounts recorded in the period).
        return Ok(Some(FactValue::MonthlyFen(months)));
    }
    let Some(row) = rows.first() else {
        return Ok(if vt == ValueType::OptionalDate {
            Some(FactValue::OptionalDate(None))
        } else {
            None
        });
    };
    let count = |v: i64| {
        u32::try_from(v).map_err(|_| "column value: must be a non-negative integer".to_owned())
    };
    Ok(Some(match vt {
        ValueType::Bool => FactValue::Bool(boolean(row, "value")?),
        ValueType::Count => FactValue::Count(count(int(row, "value")?)?),
        ValueType::Days => FactValue::Days(count(int(row, "value")?)?),
        ValueType::MoneyFen => FactValue::MoneyFen(int(row, "value")?),
        ValueType::AreaDm2 => FactValue::AreaDm2(int(row, "value")?),
        ValueType::Code => {
            let s: String = row
                .try_get("value")
                .map_err(|e| format!("column value: {e}"))?;
            FactValue::Code(s.trim().to_owned())
        }
        ValueType::Division => {
            let s: String = row
                .try_get("value")
                .map_err(|e| format!("column value: {e}"))?;
            FactValue::Division(
                schemas::DivisionCode::parse(s.trim())
                    .map_err(|e| format!("column value: division code: {e}"))?,
            )
        }
        ValueType::OptionalDate => {
            let s: Option<String> = row
                .try_get("value")
                .map_err(|e| format!("column value: {e}"))?;
            match s {
                None => FactValue::OptionalDate(None),
                Some(s) => {
                    let fmt = time::macros::format_description!("[year]-[month]-[day]");
                    let d = Date::parse(s.trim(), &fmt)
                        .map_err(|_| "column value: must be text YYYY-MM-DD or NULL".to_owned())?;
                    FactValue::OptionalDate(Some(d))
                }
            }
        }
        ValueType::MonthlyFen => return Err("monthly_fen is decoded from month/fen rows".into()),
    }))
}

fn int(row: &AnyRow, col: &str) -> Result<i64, String> {
    if let Ok(v) = row.try_get::<i64, _>(col) {
        return Ok(v);
    }
    if let Ok(b) = row.try_get::<bool, _>(col) {
        return Ok(i64::from(b));
    }
    // Some drivers hand integers over as text (e.g. MySQL DECIMAL cast to CHAR).
    match row.try_get::<String, _>(col) {
        Ok(s) => i64::from_str(s.trim()).map_err(|_| format!("column {col}: must be an integer")),
        Err(e) => Err(format!("column {col}: must be an integer ({e})")),
    }
}

fn boolean(row: &AnyRow, col: &str) -> Result<bool, String> {
    if let Ok(b) = row.try_get::<bool, _>(col) {
        return Ok(b);
    }
    match row.try_get::<i64, _>(col) {
        Ok(0) => Ok(false),
        Ok(1) => Ok(true),
        Ok(_) => Err(format!("column {col}: integer booleans must be 0 or 1")),
        Err(e) => Err(format!("column {col}: must be a boolean or 0/1 ({e})")),
    }
}
