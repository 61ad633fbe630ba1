//! The department-side adapter answering from real SQLite files through mapping files, for each
//! of the seven departments; plus the mapping conventions on a hand-written database.

mod adapter_support;

use std::sync::Arc;
use std::time::Duration;

use adapter_support::*;
use connectors::adapter::{Mapping, SqlFactSource};
use connectors::sim::export::{ExportTarget, export_department};
use connectors::sim::pki::SimPki;
use connectors::sim::{Population, PopulationConfig};
use schemas::protocol::receive_answer;
use schemas::{Department, FactKind, FactValue, SubjectOutcome};

#[tokio::test]
async fn seven_departments_answer_from_sqlite_files() {
    let pop = Arc::new(Population::generate(PopulationConfig::new(31, 400)));
    let pki = SimPki::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for d in Department::ALL {
        let path = dir.path().join(format!("{d}.db"));
        let exported = export_department(&pop, d, pop.config.as_of, &ExportTarget::Sqlite(path))
            .await
            .unwrap();
        assert_eq!(
            exported.people,
            pop.persons().iter().filter(|p| p.known_to(d)).count()
        );
        let mapping_path = dir.path().join(format!("{d}.toml"));
        exported.write_mapping(&mapping_path).unwrap();
        let text = std::fs::read_to_string(&mapping_path).unwrap();
        check_department_over_sql(&pop, &pki, d, &exported.database_url, &text).await;
    }
}

const LABOR_DDL: &[&str] = &[
    "CREATE TABLE employment (id TEXT PRIMARY KEY, status TEXT NOT NULL, pension INTEGER)",
    "CREATE TABLE wages (id TEXT NOT NULL, month TEXT NOT NULL, fen INTEGER NOT NULL)",
];

const LABOR_MAPPING: &str = r#"
department = "labor"

[facts."labor.employment_status"]
query = "SELECT status AS value FROM employment WHERE id = $1"

[facts."labor.pension_monthly"]
query = "SELECT pension AS value FROM employment WHERE id = $1 AND pension IS NOT NULL"
default = 0

[facts."labor.monthly_wages"]
query = "SELECT month, fen FROM wages WHERE id = $1 AND month BETWEEN $2 AND $3"
params = ["resident_id", "period_from_month", "period_to_month"]

[facts."labor.unemployment_benefit_monthly"]
query = "SELECT 150000 AS value FROM employment WHERE id = $1 AND status = 'registered_unemployed'"
"#;

/// Without a `[subject]` query: no row anywhere = unknown; defaults fill missing scalar facts;
/// a missing fact without a default = unknown naming the kind; a bad code = refused; monthly rows
/// outside the reference period are dropped.
#[tokio::test]
async fn mapping_conventions_on_a_hand_written_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("labor.db").display()
    );
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    for ddl in LABOR_DDL {
        sqlx::query(*ddl).execute(&pool).await.unwrap();
    }
    let id = |seq| {
        schemas::ResidentId::from_parts("370811", time::macros::date!(1980 - 01 - 02), seq).unwrap()
    };
    let (retired, worker, unemployed, bad, nobody) = (id(11), id(13), id(15), id(17), id(19));
    let rows: &[(&schemas::ResidentId, &str, Option<i64>)] = &[
        (&retired, "retired", Some(310_000)),
        (&worker, "employed", None),
        (&unemployed, "registered_unemployed", None),
        (&bad, "on_strike", None),
    ];
    for (rid, status, pension) in rows {
        sqlx::query("INSERT INTO employment VALUES ($1, $2, $3)")
            .bind(rid.expose().to_owned())
            .bind(status.to_string())
            .bind(*pension)
            .execute(&pool)
            .await
            .unwrap();
    }
    for (month, fen) in [
        ("2025-10", 1),
        ("2025-11", 500_000),
        ("2026-10", 520_000),
        ("2026-11", 9),
    ] {
        sqlx::query("INSERT INTO wages VALUES ($1, $2, $3)")
            .bind(worker.expose().to_owned())
            .bind(month)
            .bind(fen)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let pki = SimPki::generate().unwrap();
    let source = SqlFactSource::connect(&url, Mapping::from_toml(LABOR_MAPPING).unwrap())
        .await
        .unwrap();
    let server =
        AdapterServer::spawn(Arc::new(source), pki.server_tls(Department::Labor).unwrap()).await;
    let kinds = [
        FactKind::EmploymentStatus,
        FactKind::Pension,
        FactKind::MonthlyWages,
    ];
    let as_of = time::macros::date!(2026 - 11 - 29);
    let q = query(
        Department::Labor,
        &[
            ("r", &retired),
            ("w", &worker),
            ("u", &unemployed),
            ("b", &bad),
            ("n", &nobody),
        ],
        &kinds,
        as_of,
    );
    let (status, body) = post(
        &hub_client(&pki, Duration::from_secs(10)),
        &server.url(),
        &q,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer = receive_answer(&body, &q, std::slice::from_ref(&server.key))
        .unwrap()
        .answer;
    let outcome = |r: &str| {
        answer
            .results
            .iter()
            .find(|x| x.subject_ref == r)
            .unwrap()
            .outcome
            .clone()
    };
    let facts = |r: &str| match outcome(r) {
        SubjectOutcome::Found { facts } => facts.into_iter().map(|f| f.value).collect::<Vec<_>>(),
        other => panic!("{r}: {other:?}"),
    };
    let ym = |s: &str| schemas::YearMonth::parse(s).unwrap();
    assert_eq!(
        facts("r"),
        vec![
            FactValue::Code("retired".into()),
            FactValue::MoneyFen(310_000),
            FactValue::MonthlyFen(vec![])
        ]
    );
    assert_eq!(
        facts("w"),
        vec![
            FactValue::Code("employed".into()),
            FactValue::MoneyFen(0),
            FactValue::MonthlyFen(vec![
                schemas::MonthAmount {
                    month: ym("2025-11"),
                    fen: 500_000
                },
                schemas::MonthAmount {
                    month: ym("2026-10"),
                    fen: 520_000
                },
            ]),
        ]
    );
    assert!(
        matches!(outcome("b"), SubjectOutcome::Refused { reason } if reason.contains("labor.employment_status"))
    );
    assert!(matches!(outcome("n"), SubjectOutcome::Unknown { .. }));

    // A fact with no row and no default makes a known person unknown, naming the kind.
    let q = query(
        Department::Labor,
        &[("w", &worker), ("u", &unemployed)],
        &[FactKind::UnemploymentBenefit],
        as_of,
    );
    let (_, body) = post(
        &hub_client(&pki, Duration::from_secs(10)),
        &server.url(),
        &q,
    )
    .await
    .unwrap();
    let answer = receive_answer(&body, &q, std::slice::from_ref(&server.key))
        .unwrap()
        .answer;
    for r in &answer.results {
        match r.subject_ref.as_str() {
            "w" => assert!(
                matches!(&r.outcome, SubjectOutcome::Unknown { reason } if reason == "labor has no record of this person"),
                "{:?}",
                r.outcome
            ),
            _ => assert!(
                matches!(&r.outcome, SubjectOutcome::Found { facts } if facts[0].value == FactValue::MoneyFen(150_000))
            ),
        }
    }
}

#[tokio::test]
async fn placeholders_are_checked_against_the_database_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    let mysql_style = Mapping::from_toml(
        "department = \"labor\"\n[facts.\"labor.pension_monthly\"]\nquery = \"SELECT 1 AS value WHERE ? = ?\"",
    )
    .unwrap();
    let err = SqlFactSource::connect(&url, mysql_style)
        .await
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        "mapping: facts.\"labor.pension_monthly\".query: uses placeholders [] but params binds 1 value(s); use $1..$1 (PostgreSQL/SQLite syntax)"
    );
    let err = SqlFactSource::connect("oracle://db", Mapping::from_toml(LABOR_MAPPING).unwrap())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("database url: scheme must be"), "{err}");
}
