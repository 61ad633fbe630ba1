//! The hub never signs a checkpoint over a state it has not verified (issue 10, finding 4), on real
//! SQLite files and the real PostgreSQL:
//! - an insider who rewrites an entry AND recomputes every stored hash and the head's root (so the
//!   head/hash consistency check passes) cannot make the hub start, let alone sign; nor can one who
//!   deletes the head row to get a fresh start over existing entries;
//! - entries or stored hashes edited without fixing the rest are refused at start-up by the
//!   `recent`, `sample` and `full` audits, naming the first bad index;
//! - a key and origin change needs `hub log rotate` (a real process), which refuses a wrong old key,
//!   records both notes, and after which the hub starts and signs with the new key;
//! - `hub audit verify --db` opens the database read-only: it runs no migration and a mistyped
//!   path creates no file.

use hub::app::Application;
use hub::audit::{Remote, Verdict};
use hub::log::integrity::RotateArgs;
use hub::log::tlog;
use hub::store::Db;
use hub_tests::{PgTestDb, TestEnv};
use serde_json::{Value, json};

use super::access_log::{
    bytes, entry, exec, generous_auditor_budget, pseudonym_key, remote, residents, verify_args,
};

/// A test deployment whose config file is rewritten from one base text (+ `extra`) per start.
struct Deployment {
    env: TestEnv,
    base: String,
    db_url: String,
}

impl Deployment {
    fn new(pg: Option<&PgTestDb>) -> anyhow::Result<Deployment> {
        let env = TestEnv::new()?;
        let mut base = generous_auditor_budget(std::fs::read_to_string(env.config_path())?);
        let db_url = match pg {
            Some(pg) => {
                base = base.replace(
                    "url = \"sqlite://hub.db\"",
                    &format!("url = \"{}\"", pg.url),
                );
                pg.url.clone()
            }
            None => format!("sqlite://{}", env.path().join("hub.db").display()),
        };
        assert!(base.contains(&db_url) || pg.is_none());
        Ok(Deployment { env, base, db_url })
    }

    /// Writes the config (base + `extra`) and builds the hub from it.
    async fn build(&self, extra: &str) -> anyhow::Result<Application> {
        hub::tls::install_default_provider();
        let config = self.env.config(|_| format!("{}\n{extra}", self.base))?;
        Application::build(config).await
    }

    /// The refusal message of a start-up that must fail.
    async fn refused(&self, extra: &str) -> String {
        match self.build(extra).await {
            Ok(_) => panic!("the hub started over a log it should refuse"),
            Err(e) => format!("{e:#}"),
        }
    }

    /// Starts, appends `n` entries (concurrently: several batches), stops.
    async fn fill(&self, n: usize) -> anyhow::Result<()> {
        let app = self.build("").await?;
        let key = pseudonym_key(&self.env);
        let people = residents(20);
        let mut tasks = Vec::new();
        for i in 0..n {
            let log = app.state().log.clone();
            let e = entry(&key, &people[i % people.len()], "case-1", i as i64);
            tasks.push(tokio::spawn(async move { log.append(e).await }));
        }
        for t in tasks {
            t.await??;
        }
        assert_eq!(app.state().log.head().size, n as u64);
        Ok(())
    }

    /// A read-write pool on the database, as an insider has.
    async fn db(&self) -> anyhow::Result<Db> {
        let store =
            hub::store::connect(&secrecy::SecretString::from(self.db_url.clone()), 2).await?;
        Ok(store.db())
    }
}

async fn count(db: &Db, sql: &str) -> anyhow::Result<i64> {
    use sqlx::Row;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    Ok(match db {
        Db::Sqlite(p) => sqlx::query(sql).fetch_one(p).await?.try_get(0)?,
        Db::Postgres(p) => sqlx::query(sql).fetch_one(p).await?.try_get(0)?,
    })
}

/// Edits entry `k`'s bytes (one letter), returning the original bytes.
async fn edit_entry(db: &Db, k: u64) -> anyhow::Result<Vec<u8>> {
    let orig = hub::log::store::read_entries(db, k, k + 1).await?.remove(0);
    let mut edited = orig.clone();
    let pos = edited.iter().position(|b| *b == b'r').expect("an 'r'");
    edited[pos] = b'R';
    exec(
        db,
        "UPDATE log_entries SET data = $1 WHERE idx = $2",
        &[bytes(&edited), json!(k as i64)],
    )
    .await?;
    Ok(orig)
}

/// The insider's forgery: entry `k` rewritten, then every stored hash and the head's root
/// recomputed so that the stored tree is consistent again. Only the signature cannot be forged.
async fn forge_history(db: &Db, k: u64) -> anyhow::Result<tlog::Hash> {
    let head = hub::log::store::read_head(db).await?;
    edit_entry(db, k).await?;
    let entries = hub::log::store::read_entries(db, 0, head.size).await?;
    let mut mem = tlog::MemoryHashStore::new();
    for e in &entries {
        mem.append(e);
    }
    let stored = hub::log::store::read_hash_range(db, 0, mem.hashes().len() as u64).await?;
    for (id, h) in mem.hashes().iter().enumerate() {
        if stored.get(&(id as u64)) != Some(h) {
            exec(
                db,
                "UPDATE log_hashes SET hash = $1 WHERE id = $2",
                &[bytes(&h.0), json!(id as i64)],
            )
            .await?;
        }
    }
    exec(
        db,
        "UPDATE log_head SET root = $1 WHERE id = 1",
        &[bytes(&mem.root().0)],
    )
    .await?;
    assert_ne!(mem.root(), head.root);
    Ok(mem.root())
}

/// (a)/(b): a rewritten history with consistent hashes is refused at start-up and nothing is
/// signed; so is a deleted head row over existing entries.
async fn forged_history_is_refused(pg: Option<&PgTestDb>) -> anyhow::Result<()> {
    let d = Deployment::new(pg)?;
    d.fill(300).await?;
    let db = d.db().await?;
    let checkpoints = count(&db, "SELECT COUNT(*) FROM log_checkpoints").await?;
    let forged_root = forge_history(&db, 100).await?;

    // The genuine note (for the old root) stays: it does not verify for the forged root.
    let note = hub::log::store::read_head(&db).await?.note;
    let msg = d.refused("").await;
    assert!(
        msg.contains("stored checkpoint does not verify for size 300")
            && msg.contains("hub log rotate"),
        "{msg}"
    );
    let after = hub::log::store::read_head(&db).await?;
    assert_eq!(after.note, note, "no new signature over the forged state");
    assert_eq!(after.root, forged_root);

    // The forger signs with a key of their own: refused too.
    let vkey = std::fs::read_to_string(d.env.path().join("log.vkey"))?;
    let origin = vkey.split('+').next().unwrap();
    let own = tlog::Signer::from_seed(origin, [42; 32])?;
    let forged_note = tlog::Checkpoint::new(origin, 300, forged_root)?.sign(&own)?;
    exec(
        &db,
        "UPDATE log_head SET note = $1 WHERE id = 1",
        &[json!(forged_note)],
    )
    .await?;
    let msg = d.refused("").await;
    assert!(msg.contains("does not verify for size 300"), "{msg}");
    assert_eq!(hub::log::store::read_head(&db).await?.note, forged_note);

    // Deleting the head row does not earn a fresh (empty) checkpoint over the entries.
    exec(&db, "DELETE FROM log_head", &[]).await?;
    let msg = d.refused("").await;
    assert!(msg.contains("head row is missing"), "{msg}");
    assert!(hub::log::store::read_head_opt(&db).await?.is_none());
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM log_checkpoints").await?,
        checkpoints,
        "no checkpoint was signed"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM log_rotations").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_history_is_refused_at_start_up_on_sqlite() -> anyhow::Result<()> {
    forged_history_is_refused(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_history_is_refused_at_start_up_on_postgres() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let r = forged_history_is_refused(Some(&pg)).await;
    pg.drop_db().await?;
    r
}

/// The stored hashes and the entries of a range as the auditors read them (one aggregated row per
/// group of ids) equal the rows read one by one; a group with a deleted row is read row by row (the missing
/// id is absent, its neighbours are not), and a hash of the wrong length is an error.
async fn ranges_read_whole(pg: Option<&PgTestDb>) -> anyhow::Result<()> {
    use hub::log::store::{read_entries_at, read_entries_indexed, read_hash_range, read_hashes};
    let d = Deployment::new(pg)?;
    // More than one group of 4,096 stored hashes (about two per entry).
    d.fill(2_100).await?;
    let db = d.db().await?;
    let total = tlog::stored::stored_hash_count(2_100);
    assert!(total > 4_096, "{total}");
    let ids: Vec<u64> = (0..total).collect();
    let one_by_one = read_hashes(&db, &ids).await?;
    assert_eq!(one_by_one.len() as u64, total);
    for (from, to) in [(0, total), (1_000, 4_500), (4_095, 4_097), (7, 8)] {
        let range = read_hash_range(&db, from, to).await?;
        for id in from..to {
            assert_eq!(
                range.get(&id),
                one_by_one.get(&id),
                "id {id} of {from}..{to}"
            );
        }
        assert!(range.get(&to).is_none() && (from == 0 || range.get(&(from - 1)).is_none()));
    }
    // A deleted row: absent, and only it.
    exec(&db, "DELETE FROM log_hashes WHERE id = 50", &[]).await?;
    let range = read_hash_range(&db, 0, 4_096).await?;
    assert!(range.get(&50).is_none());
    for id in (0..4_096).filter(|id| *id != 50) {
        assert_eq!(range.get(&id), one_by_one.get(&id), "id {id}");
    }
    // A hash of 31 bytes: an error naming the column, not a shifted read of its neighbours.
    exec(
        &db,
        "UPDATE log_hashes SET hash = $1 WHERE id = 4100",
        &[bytes(&[7u8; 31])],
    )
    .await?;
    let err = read_hash_range(&db, 4_000, total).await.unwrap_err();
    assert!(err.to_string().contains("log_hashes.hash"), "{err}");
    assert!(read_hash_range(&db, 4_101, total).await.is_ok());

    // The entries likewise (groups of 1,024), against the rows one by one.
    let mut one_by_one = read_entries_at(&db, &(0..2_100).collect::<Vec<_>>()).await?;
    one_by_one.sort();
    assert_eq!(one_by_one.len(), 2_100);
    for (from, to) in [(0, 2_100), (1_000, 1_030), (1_023, 1_025), (2_099, 2_100)] {
        let read = read_entries_indexed(&db, from, to).await?;
        assert_eq!(read, one_by_one[from as usize..to as usize], "{from}..{to}");
    }
    // A deleted entry is a gap, its neighbours stay; an entry stored as TEXT is read as before.
    exec(&db, "DELETE FROM log_entries WHERE idx = 1500", &[]).await?;
    exec(
        &db,
        "UPDATE log_entries SET data = $1 WHERE idx = 10",
        &[json!("not a blob")],
    )
    .await
    .ok();
    let read = read_entries_indexed(&db, 0, 2_100).await?;
    assert_eq!(read.len(), 2_099);
    assert!(read.iter().all(|(k, _)| *k != 1500));
    for (k, data) in &read {
        if *k != 10 {
            assert_eq!(*data, one_by_one[*k as usize].1, "entry {k}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_read_whole_on_sqlite() -> anyhow::Result<()> {
    ranges_read_whole(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_read_whole_on_postgres() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let r = ranges_read_whole(Some(&pg)).await;
    pg.drop_db().await?;
    r
}

/// (d): entries or stored hashes edited without fixing the rest are refused at start-up, with the
/// first bad index: the default `recent` audit covers the newest entries and the stored hashes
/// they created; `sample` and `full` reach older ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_audit_names_the_first_bad_index() -> anyhow::Result<()> {
    let d = Deployment::new(None)?;
    d.fill(300).await?;
    let db = d.db().await?;
    let undo_edit = |k: u64, orig: Vec<u8>| {
        let db = db.clone();
        async move {
            exec(
                &db,
                "UPDATE log_entries SET data = $1 WHERE idx = $2",
                &[bytes(&orig), json!(k as i64)],
            )
            .await
        }
    };

    // A recent entry (not the last one, which the head check already covers).
    let orig = edit_entry(&db, 290).await?;
    let msg = d.refused("").await;
    assert!(msg.contains("first bad index 290"), "{msg}");
    undo_edit(290, orig).await?;
    drop(d.build("").await?);

    // A stored interior hash of the newest tile (level 1, entries 280..282).
    let id = tlog::stored::stored_hash_index(1, 140).0;
    let h = hub::log::store::read_hashes(&db, &[id]).await?[&id];
    let set = "UPDATE log_hashes SET hash = $1 WHERE id = $2";
    exec(&db, set, &[bytes(&[7; 32]), json!(id as i64)]).await?;
    let msg = d.refused("").await;
    assert!(msg.contains("first bad index 281"), "{msg}");
    exec(&db, set, &[bytes(&h.0), json!(id as i64)]).await?;

    // An old entry: the full audit and a (here exhaustive) sample find it.
    let orig = edit_entry(&db, 17).await?;
    let msg = d.refused("[log]\nstartup_audit = \"full\"\n").await;
    assert!(msg.contains("first bad index 17"), "{msg}");
    let msg = d
        .refused("[log]\nstartup_audit = \"sample\"\nstartup_audit_samples = 20000\n")
        .await;
    assert!(msg.contains("first bad index 17"), "{msg}");
    undo_edit(17, orig).await?;
    drop(d.build("[log]\nstartup_audit = \"full\"\n").await?);
    Ok(())
}

/// Writes `signer`'s verifier key to `path`.
fn write_vkey(path: &std::path::Path, signer: &tlog::Signer) -> anyhow::Result<()> {
    std::fs::write(path, format!("{}\n", signer.verifier_key()))?;
    Ok(())
}

fn rotate_args(d: &Deployment, old_vkey: std::path::PathBuf) -> RotateArgs {
    RotateArgs {
        config: d.env.config_path(),
        old_vkey,
        old_origin: None,
        operator: "日志管理员 tester".into(),
        reason: Some("key rotation drill".into()),
        audit: hub::log::StartupAudit::Full,
        write_vkey: None,
    }
}

/// (c): a new signing key and origin → start-up refused → `hub log rotate` with a wrong old key
/// refused → with the right one, both notes recorded and served → the hub starts and signs with
/// the new key; auditors verify the log with the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_origin_rotation_is_explicit_verified_and_recorded() -> anyhow::Result<()> {
    rotation(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_origin_rotation_is_explicit_verified_and_recorded_on_postgres()
-> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let r = rotation(Some(&pg)).await;
    pg.drop_db().await?;
    r
}

async fn rotation(pg: Option<&PgTestDb>) -> anyhow::Result<()> {
    let mut d = Deployment::new(pg)?;
    d.fill(40).await?;
    let db = d.db().await?;
    let before = hub::log::store::read_head(&db).await?;
    let old_vkey_path = d.env.path().join("log.vkey");
    let old_vkey = tlog::VerifierKey::parse(std::fs::read_to_string(&old_vkey_path)?.trim())?;

    // The operator installs a new signing key and a new origin.
    hub::keys::HubKeys::generate(&d.env.path().join("keys2"))?;
    d.base = d
        .base
        .replace("keys/hub-signing.pk8", "keys2/hub-signing.pk8");
    let new_origin = "jishijiu.jining/access-log-2026";
    let log_section = format!("[log]\norigin = \"{new_origin}\"\n");
    d.base.push_str(&format!("\n{log_section}"));
    let msg = d.refused("").await;
    assert!(
        msg.contains("stored checkpoint does not verify for size 40") && msg.contains("rotate"),
        "{msg}"
    );
    assert_eq!(hub::log::store::read_head(&db).await?.note, before.note);

    // A wrong old key is refused; nothing changes.
    let wrong = d.env.path().join("wrong.vkey");
    write_vkey(&wrong, &tlog::Signer::from_seed(old_vkey.name(), [42; 32])?)?;
    d.env.config(|_| d.base.clone())?;
    let err = hub::log::integrity::rotate_from_config(&rotate_args(&d, wrong))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("does not verify for size 40 with the old key"),
        "{err:#}"
    );
    assert_eq!(hub::log::store::read_head(&db).await?.note, before.note);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM log_rotations").await?, 0);

    // The real command, as an operator runs it.
    let new_vkey_path = d.env.path().join("log-2026.vkey");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .args(["log", "rotate", "--config"])
        .arg(d.env.config_path())
        .arg("--old-vkey")
        .arg(&old_vkey_path)
        .args([
            "--operator",
            "日志管理员 tester",
            "--reason",
            "key rotation drill",
        ])
        .arg("--write-vkey")
        .arg(&new_vkey_path)
        .env_remove("RUST_LOG")
        .env_remove("HUB_CONFIG")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("rotation #1: size 40"), "{stdout}");
    assert!(
        stderr.contains("re-signed by an explicit key/origin rotation"),
        "the rotation is logged: {stderr}"
    );
    let new_vkey = tlog::VerifierKey::parse(std::fs::read_to_string(&new_vkey_path)?.trim())?;
    assert_eq!(new_vkey.name(), new_origin);
    let policy = tlog::checkpoint::WitnessPolicy::default();

    // The hub starts; its checkpoints verify with the new key (and not with the old one).
    let app = d.build("").await?;
    let log = app.state().log.clone();
    let head = log.head();
    assert_eq!((head.size, head.root), (before.size, before.root));
    tlog::checkpoint::open_checkpoint(head.note.as_bytes(), new_origin, &new_vkey, &policy)?;
    let key = pseudonym_key(&d.env);
    log.append(entry(&key, &residents(1)[0], "case-2", 99))
        .await?;
    let head = log.head();
    assert_eq!(head.size, 41);
    let cp =
        tlog::checkpoint::open_checkpoint(head.note.as_bytes(), new_origin, &new_vkey, &policy)?;
    assert_eq!(cp.checkpoint.size, 41);
    assert!(
        tlog::checkpoint::open_checkpoint(
            head.note.as_bytes(),
            old_vkey.name(),
            &old_vkey,
            &policy
        )
        .is_err()
    );

    // Auditors see the rotation: both notes, same size and root, each verifying with its key.
    let addr = app.local_addr();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let base = format!("https://localhost:{}", addr.port());
    let r = d
        .env
        .http("auditor")?
        .get(format!("{base}/v1/log/rotations"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await?;
    let rotations = v["rotations"].as_array().expect("rotations");
    assert_eq!(rotations.len(), 1, "{v}");
    let rot = &rotations[0];
    assert_eq!(rot["size"], 40);
    assert_eq!(
        rot["old_vkey"].as_str(),
        Some(old_vkey.to_string().as_str())
    );
    assert_eq!(
        rot["new_vkey"].as_str(),
        Some(new_vkey.to_string().as_str())
    );
    assert!(rot["operator"].as_str().unwrap().contains("tester"));
    let old_cp = tlog::checkpoint::open_checkpoint(
        rot["old_note"].as_str().unwrap().as_bytes(),
        old_vkey.name(),
        &old_vkey,
        &policy,
    )?;
    let new_cp = tlog::checkpoint::open_checkpoint(
        rot["new_note"].as_str().unwrap().as_bytes(),
        new_origin,
        &new_vkey,
        &policy,
    )?;
    assert_eq!(
        (old_cp.checkpoint.size, old_cp.checkpoint.root),
        (new_cp.checkpoint.size, new_cp.checkpoint.root)
    );
    assert_eq!(old_cp.checkpoint.root, before.root);
    let r = d
        .env
        .http("caseworker")?
        .get(format!("{base}/v1/log/rotations"))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    // The whole log verifies with the new key.
    let mut args = verify_args(&d.env, remote(&d.env, Some(base), "auditor"), None);
    args.vkey = new_vkey_path;
    assert!(matches!(
        hub::audit::verify(&args, |_, _| {}).await?,
        Verdict::Ok { size: 41, .. }
    ));
    // A checkpoint an auditor saved under the old key still anchors the history.
    let saved = d.env.path().join("saved-before-rotation.checkpoint");
    std::fs::write(&saved, &before.note)?;
    args.trusted_checkpoint = Some(saved);
    args.trusted_vkey = Some(old_vkey_path.clone());
    assert!(matches!(
        hub::audit::verify(&args, |_, _| {}).await?,
        Verdict::Ok { size: 41, .. }
    ));
    let _ = stop.send(());
    let _ = task.await;

    // Nothing left to rotate: a second run is refused.
    let err = hub::log::integrity::rotate_from_config(&rotate_args(&d, old_vkey_path))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("nothing to rotate"), "{err:#}");
    Ok(())
}

/// (e): `hub audit verify --db` never creates a database and never migrates one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_db_is_read_only() -> anyhow::Result<()> {
    let d = Deployment::new(None)?;
    let offline = |db: String| {
        verify_args(
            &d.env,
            Remote {
                url: None,
                cacert: None,
                cert: None,
                key: None,
            },
            Some(db),
        )
    };
    // A mistyped path: an error naming it, and no file.
    let missing = d.env.path().join("hbu.db");
    let err = hub::audit::verify(
        &offline(format!("sqlite://{}", missing.display())),
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("no such database file"),
        "{err:#}"
    );
    assert!(!missing.exists(), "a mistyped --db path created a database");

    // A real database copy whose migration bookkeeping is gone: a read-write open would migrate.
    d.fill(30).await?;
    let db = d.db().await?;
    exec(&db, "DELETE FROM _sqlx_migrations", &[]).await?;
    if let Db::Sqlite(p) = &db {
        p.close().await;
    }
    let file = d.env.path().join("hub.db");
    let before = std::fs::read(&file)?;
    let verdict = hub::audit::verify(&offline(d.db_url.clone()), |_, _| {}).await?;
    assert!(
        matches!(verdict, Verdict::Ok { size: 30, .. }),
        "{verdict:?}"
    );
    let ro = hub::audit::open_read_only(&d.db_url).await?;
    assert_eq!(
        count(&ro, "SELECT COUNT(*) FROM _sqlx_migrations").await?,
        0,
        "audit verify ran migrations"
    );
    assert!(
        exec(&ro, "DELETE FROM log_entries", &[]).await.is_err(),
        "the audit's connection can write"
    );
    drop(ro);
    assert_eq!(std::fs::read(&file)?, before, "the database file changed");
    Ok(())
}

/// On PostgreSQL the auditor's session is read-only too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_db_is_read_only_on_postgres() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let r = async {
        let d = Deployment::new(Some(&pg))?;
        d.fill(10).await?;
        let ro = hub::audit::open_read_only(&pg.url).await?;
        assert!(
            exec(&ro, "DELETE FROM log_entries", &[]).await.is_err(),
            "the audit's connection can write"
        );
        let db = d.db().await?;
        exec(&db, "DELETE FROM _sqlx_migrations", &[]).await?;
        let args = verify_args(
            &d.env,
            Remote {
                url: None,
                cacert: None,
                cert: None,
                key: None,
            },
            Some(pg.url.clone()),
        );
        let verdict = hub::audit::verify(&args, |_, _| {}).await?;
        assert!(
            matches!(verdict, Verdict::Ok { size: 10, .. }),
            "{verdict:?}"
        );
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await?,
            0,
            "audit verify ran migrations"
        );
        anyhow::Ok(())
    }
    .await;
    pg.drop_db().await?;
    r
}
