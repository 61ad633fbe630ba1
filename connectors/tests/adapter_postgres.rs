//! The department-side adapter answering from a real PostgreSQL database (127.0.0.1:5432, user
//! postgres, database `test`) through mapping files, for each of the seven departments. Each run
//! writes into its own schema and drops it afterwards. PostgreSQL must be running: this test fails
//! (it does not skip) when the database is unreachable.

mod adapter_support;

use std::sync::Arc;

use adapter_support::*;
use connectors::sim::export::{ExportTarget, export_department};
use connectors::sim::pki::SimPki;
use connectors::sim::{Population, PopulationConfig};
use schemas::Department;

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[tokio::test]
async fn seven_departments_answer_from_postgresql() {
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(PG_URL)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {PG_URL} is required for this test: {e}"));
    let schema = format!("adapter_test_{}", uuid::Uuid::new_v4().simple());
    let pop = Arc::new(Population::generate(PopulationConfig::new(41, 300)));
    let pki = SimPki::generate().unwrap();

    // Run the checks in a task so the schema is dropped even when one of them fails.
    let run = {
        let (pop, schema) = (pop.clone(), schema.clone());
        tokio::spawn(async move {
            for d in Department::ALL {
                let target = ExportTarget::Postgres {
                    url: PG_URL.into(),
                    schema: schema.clone(),
                };
                let exported = export_department(&pop, d, pop.config.as_of, &target)
                    .await
                    .unwrap();
                assert!(
                    exported.mapping_toml.contains(&schema),
                    "queries name the schema"
                );
                check_department_over_sql(
                    &pop,
                    &pki,
                    d,
                    &exported.database_url,
                    &exported.mapping_toml,
                )
                .await;
            }
        })
    };
    let result = run.await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&admin)
    .await
    .unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
