//! The store test suite, run unchanged against SQLite (a real file) and PostgreSQL (a fresh database
//! on the local server; the test fails if PostgreSQL is unreachable).

use std::sync::Arc;

use hub::store::{self, Backend, Store};
use hub_tests::PgTestDb;
use schemas::{DivisionCode, Identity, Role};
use secrecy::SecretString;

fn identity(serial: &str) -> Identity {
    Identity {
        uri: format!("spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/{serial}"),
        principal: serial.into(),
        role: Role::Caseworker,
        organisation: "mz-370811002".into(),
        division: DivisionCode::parse("370811002").unwrap(),
        display_name: "经办人".into(),
        serial: serial.into(),
    }
}

async fn suite(url: &str, backend: Backend) -> anyhow::Result<()> {
    let url = SecretString::from(url.to_owned());
    let store: Arc<dyn Store> = store::connect(&url, 4).await?;
    assert_eq!(store.backend(), backend);
    store.ping().await?;

    // Migrations are idempotent: connecting again migrates nothing and keeps data.
    store.meta_put("deployment", "jining-test").await?;
    let again = store::connect(&url, 4).await?;
    assert_eq!(
        again.meta_get("deployment").await?.as_deref(),
        Some("jining-test")
    );

    // Metadata.
    assert_eq!(store.meta_get("absent").await?, None);
    store.meta_put("deployment", "jining-2").await?;
    assert_eq!(
        store.meta_get("deployment").await?.as_deref(),
        Some("jining-2")
    );
    assert_eq!(store.meta_put_if_absent("origin", "first").await?, "first");
    assert_eq!(store.meta_put_if_absent("origin", "second").await?, "first");

    // Clients seen: concurrent upserts count every connection exactly once.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record_client_seen(&identity(if i % 2 == 0 { "aa01" } else { "bb02" }))
                .await
        }));
    }
    for t in tasks {
        t.await??;
    }
    let seen = store.clients_seen().await?;
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|c| c.connections == 20), "{seen:?}");
    assert!(seen.iter().all(|c| c.first_seen_ms <= c.last_seen_ms));
    assert_eq!(
        seen.iter()
            .find(|c| c.serial == "aa01")
            .map(|c| c.role.as_str()),
        Some("caseworker")
    );
    // Counts wait in memory (no commit per handshake) until a flush; then another store on the
    // same database (another replica) reads them added to the stored row.
    for _ in 0..3 {
        store.record_client_seen(&identity("aa01")).await?;
    }
    store.flush_clients_seen().await?;
    let other = store::connect(&url, 4).await?;
    let aa = other.clients_seen().await?;
    let aa = aa.iter().find(|c| c.serial == "aa01").expect("aa01");
    assert_eq!(aa.connections, 23, "{aa:?}");
    Ok(())
}

#[tokio::test]
async fn store_suite_on_sqlite() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    suite(
        &format!("sqlite://{}", dir.path().join("hub.db").display()),
        Backend::Sqlite,
    )
    .await?;
    // WAL mode is on.
    let wal = dir.path().join("hub.db-wal");
    assert!(wal.exists(), "SQLite runs in WAL mode");
    Ok(())
}

#[tokio::test]
async fn store_suite_on_postgres() -> anyhow::Result<()> {
    let db = PgTestDb::create().await?;
    let result = suite(&db.url, Backend::Postgres).await;
    db.drop_db().await?;
    result
}
