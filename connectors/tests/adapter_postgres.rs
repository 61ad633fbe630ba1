//! The department-side adapter answering from a real PostgreSQL database through mapping files,
//! for each of the seven departments. The database is `$HUB_TEST_PG_URL` (as in `.ci/run`) or
//! `postgres://postgres@127.0.0.1:5432/test`. Each run writes into its own schema and drops it
//! afterwards. PostgreSQL must be running: this test fails (it does not skip) when the database is
//! unreachable.

mod adapter_support;

use std::sync::Arc;

use adapter_support::*;
use connectors::sim::export::{ExportTarget, export_department};
use connectors::sim::pki::SimPki;
use connectors::sim::{Population, PopulationConfig};
use schemas::Department;

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn pg_url() -> String {
    std::env::var("HUB_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

#[tokio::test]
async fn seven_departments_answer_from_postgresql() {
    sqlx::any::install_default_drivers();
    let url = pg_url();
    let admin = sqlx::AnyPool::connect(&url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL ($HUB_TEST_PG_URL or {DEFAULT_PG_URL}) is required for this test: {e}")
    });
    let schema = format!("adapter_test_{}", uuid::Uuid::new_v4().simple());
    let pop = Arc::new(Population::generate(PopulationConfig::new(41, 300)));
    let pki = SimPki::generate().unwrap();

    // Run the checks in a task so the schema is dropped even when one of them fails.
    let run = {
        let (pop, schema, url) = (pop.clone(), schema.clone(), url.clone());
        tokio::spawn(async move {
            for d in Department::ALL {
                let target = ExportTarget::Postgres {
                    url: url.clone(),
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
