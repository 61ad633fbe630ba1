//! 导出: write one department's view of the simulated population into a real database (a SQLite
//! file or a PostgreSQL schema) together with a matching mapping file, so the `connector` binary
//! — the same adapter a department deploys — can serve simulated data.
//!
//! Layout written for department `d` (e.g. `labor`):
//! - `d_facts`: one row per person the department knows; `resident_id TEXT PRIMARY KEY` and one
//!   column per non-monthly fact kind of the department, named after the fact (the part after the
//!   dot of the wire name): BIGINT for counts, days, fen and dm², BOOLEAN on PostgreSQL and
//!   INTEGER 0/1 on SQLite for booleans, TEXT for codes and dates (`YYYY-MM-DD`, NULL for none).
//! - `d_monthly` (only if the department has monthly facts): `resident_id, kind, month, fen`.
//!
//! People the department does not know have no row, so the mapping's `[subject]` query reports
//! them `unknown` — exactly as the in-process simulated department does.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use schemas::{Department, FactKind, FactValue, ValueType};
use sqlx::any::{AnyArguments, AnyPoolOptions};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, AssertSqlSafe};
use time::Date;

use super::facts;
use super::population::Population;

/// Where to write.
#[derive(Debug, Clone)]
pub enum ExportTarget {
    /// A SQLite file (created or overwritten table by table).
    Sqlite(PathBuf),
    /// A PostgreSQL database URL and the schema to write into (created if missing).
    Postgres { url: String, schema: String },
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The URL the adapter should connect to.
    pub database_url: String,
    /// The mapping file text for the adapter.
    pub mapping_toml: String,
    /// Rows written to `d_facts`.
    pub people: usize,
}

impl Exported {
    /// Write the mapping file.
    pub fn write_mapping(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, &self.mapping_toml)
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("schema name {0:?}: must be 1-63 characters of a-z, 0-9 and _ starting with a letter")]
    SchemaName(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Rows per multi-row INSERT.
const BATCH: usize = 200;

/// Write `department`'s data for a query as of `as_of` into `target`.
pub async fn export_department(
    population: &Population,
    department: Department,
    as_of: Date,
    target: &ExportTarget,
) -> Result<Exported, ExportError> {
    sqlx::any::install_default_drivers();
    let (url, prefix) = match target {
        ExportTarget::Sqlite(path) => (
            format!("sqlite://{}?mode=rwc", path.display()),
            String::new(),
        ),
        ExportTarget::Postgres { url, schema } => {
            let ok = !schema.is_empty()
                && schema.len() <= 63
                && schema.starts_with(|c: char| c.is_ascii_lowercase())
                && schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(ExportError::SchemaName(schema.clone()));
            }
            (url.clone(), format!("\"{schema}\"."))
        }
    };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    if let ExportTarget::Postgres { schema, .. } = target {
        exec(&pool, &format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).await?;
    }

    // sqlx's Any driver cannot read SQLite columns declared BOOLEAN, so SQLite gets 0/1 integers.
    let sqlite = matches!(target, ExportTarget::Sqlite(_));
    let d = department.code();
    let kinds: Vec<FactKind> = FactKind::served_by(department).collect();
    let scalar: Vec<FactKind> = kinds
        .iter()
        .copied()
        .filter(|k| k.spec().value_type != ValueType::MonthlyFen)
        .collect();
    let monthly: Vec<FactKind> = kinds
        .iter()
        .copied()
        .filter(|k| k.spec().value_type == ValueType::MonthlyFen)
        .collect();
    let facts_table = format!("{prefix}\"{d}_facts\"");
    let monthly_table = format!("{prefix}\"{d}_monthly\"");

    exec(&pool, &format!("DROP TABLE IF EXISTS {facts_table}")).await?;
    let mut ddl = format!("CREATE TABLE {facts_table} (resident_id TEXT PRIMARY KEY");
    for k in &scalar {
        let ty = match k.spec().value_type {
            ValueType::Bool if sqlite => "INTEGER NOT NULL",
            ValueType::Bool => "BOOLEAN NOT NULL",
            ValueType::Code | ValueType::Division => "TEXT NOT NULL",
            ValueType::OptionalDate => "TEXT",
            _ => "BIGINT NOT NULL",
        };
        let _ = write!(ddl, ", \"{}\" {ty}", column(*k));
    }
    ddl.push(')');
    exec(&pool, &ddl).await?;
    if !monthly.is_empty() {
        exec(&pool, &format!("DROP TABLE IF EXISTS {monthly_table}")).await?;
        exec(
            &pool,
            &format!(
                "CREATE TABLE {monthly_table} (resident_id TEXT NOT NULL, kind TEXT NOT NULL, month TEXT NOT NULL, fen BIGINT NOT NULL, PRIMARY KEY (resident_id, kind, month))"
            ),
        )
        .await?;
    }

    let known: Vec<_> = population
        .persons()
        .iter()
        .filter(|p| p.known_to(department))
        .collect();
    let mut tx = pool.begin().await?;
    for chunk in known.chunks(BATCH) {
        let cols = 1 + scalar.len();
        let mut sql = format!("INSERT INTO {facts_table} VALUES ");
        for (r, _) in chunk.iter().enumerate() {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..cols {
                let _ = write!(
                    sql,
                    "{}${}",
                    if c == 0 { "" } else { ", " },
                    r * cols + c + 1
                );
            }
            sql.push(')');
        }
        let mut q: Query<'_, Any, AnyArguments> = sqlx::query(AssertSqlSafe(sql));
        for p in chunk {
            q = q.bind(p.resident_id.expose().to_owned());
            for &k in &scalar {
                q = match facts::value(p, k, as_of) {
                    FactValue::Bool(b) if sqlite => q.bind(i64::from(b)),
                    FactValue::Bool(b) => q.bind(b),
                    FactValue::Count(n) | FactValue::Days(n) => q.bind(i64::from(n)),
                    FactValue::MoneyFen(v) | FactValue::AreaDm2(v) => q.bind(v),
                    FactValue::Code(c) => q.bind(c),
                    FactValue::Division(d) => q.bind(d.as_str().to_owned()),
                    FactValue::OptionalDate(d) => q.bind(d.map(|d| {
                        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
                    })),
                    FactValue::MonthlyFen(_) => q,
                };
            }
        }
        q.execute(&mut *tx).await?;
        if !monthly.is_empty() {
            let mut rows: Vec<(String, &'static str, String, i64)> = Vec::new();
            for p in chunk {
                for &k in &monthly {
                    if let FactValue::MonthlyFen(months) = facts::value(p, k, as_of) {
                        for m in months {
                            rows.push((
                                p.resident_id.expose().to_owned(),
                                k.code(),
                                m.month.to_string(),
                                m.fen,
                            ));
                        }
                    }
                }
            }
            for part in rows.chunks(BATCH) {
                let mut sql = format!("INSERT INTO {monthly_table} VALUES ");
                for r in 0..part.len() {
                    let b = r * 4;
                    let _ = write!(
                        sql,
                        "{}(${}, ${}, ${}, ${})",
                        if r == 0 { "" } else { ", " },
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4
                    );
                }
                let mut q: Query<'_, Any, AnyArguments> = sqlx::query(AssertSqlSafe(sql));
                for (id, kind, month, fen) in part {
                    q = q
                        .bind(id.clone())
                        .bind(*kind)
                        .bind(month.clone())
                        .bind(*fen);
                }
                q.execute(&mut *tx).await?;
            }
        }
    }
    tx.commit().await?;
    pool.close().await;

    Ok(Exported {
        database_url: url,
        mapping_toml: mapping_toml(department, &facts_table, &monthly_table, &scalar, &monthly),
        people: known.len(),
    })
}

/// The column name of a fact kind: its wire name after the dot.
pub fn column(kind: FactKind) -> &'static str {
    kind.code().split_once('.').map_or(kind.code(), |(_, f)| f)
}

fn mapping_toml(
    department: Department,
    facts_table: &str,
    monthly_table: &str,
    scalar: &[FactKind],
    monthly: &[FactKind],
) -> String {
    let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = format!(
        "# Mapping for {} ({}), written by connectors::sim::export.\ndepartment = \"{}\"\n\n[subject]\nquery = \"{}\"\n",
        department.code(),
        department.name_zh(),
        department.code(),
        q(&format!(
            "SELECT 1 FROM {facts_table} WHERE resident_id = $1"
        )),
    );
    for k in scalar {
        let _ = write!(
            out,
            "\n[facts.\"{}\"]\nquery = \"{}\"\n",
            k.code(),
            q(&format!(
                "SELECT \"{}\" AS value FROM {facts_table} WHERE resident_id = $1",
                column(*k)
            ))
        );
    }
    for k in monthly {
        let _ = write!(
            out,
            "\n[facts.\"{}\"]\nquery = \"{}\"\nparams = [\"resident_id\", \"period_from_month\", \"period_to_month\"]\n",
            k.code(),
            q(&format!(
                "SELECT month, fen FROM {monthly_table} WHERE resident_id = $1 AND kind = '{}' AND month BETWEEN $2 AND $3 ORDER BY month",
                k.code()
            ))
        );
    }
    out
}

async fn exec(pool: &AnyPool, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .map(|_| ())
}
