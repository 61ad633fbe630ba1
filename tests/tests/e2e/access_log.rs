//! The signed access log end to end, on SQLite and on PostgreSQL: durable appends that verify with
//! our verifier over mTLS, no resident ID in any served byte, tampering named at the first bad index
//! by `hub audit verify`, search and subject reports each logged exactly once, denied attempts
//! logged, and a real `hub` process killed with SIGKILL under load.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub::app::Application;
use hub::audit::{Failure, Remote, Verdict, VerifyArgs};
use hub::log::AccessLog;
use hub::log::tlog;
use hub_tests::{PgTestDb, TestEnv};
use schemas::access_log::{
    AccessLogEntry, Action, Actor, Decision, Effect, FORMAT_V1, Outcome, PseudonymKey, pseudonymize,
};
use schemas::{Department, DivisionCode, Purpose, ResidentId, Role};
use serde_json::{Value, json};
use tlog::tile::{tile_at_size, tiles_for_size};
use tokio::sync::oneshot;

/// The test population: valid resident IDs of Jining's Rencheng district.
pub(crate) fn residents(n: u16) -> Vec<String> {
    (0..n)
        .map(|i| {
            let birth = time::Date::from_calendar_date(
                1960 + i32::from(i % 40),
                time::Month::March,
                1 + (i % 28) as u8,
            )
            .expect("valid date");
            ResidentId::from_parts("370811", birth, 100 + i)
                .expect("valid id")
                .as_str()
                .to_owned()
        })
        .collect()
}

pub(crate) fn pseudonym_key(env: &TestEnv) -> PseudonymKey {
    PseudonymKey::new(&std::fs::read(env.path().join("keys/pseudonym.key")).unwrap()).unwrap()
}

/// A caseworker's verification entry about `subject`.
pub(crate) fn entry(key: &PseudonymKey, subject: &str, case: &str, i: i64) -> AccessLogEntry {
    AccessLogEntry {
        format: FORMAT_V1.into(),
        time: time::OffsetDateTime::from_unix_timestamp(1_790_000_000 + i).unwrap(),
        actor: Actor {
            uri: "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-xuzhuang-01".into(),
            principal: "cw-xuzhuang-01".into(),
            role: Role::Caseworker,
            organisation: "mz-370811002".into(),
            division: DivisionCode::parse("370811002").unwrap(),
        },
        action: Action::DepartmentQueried,
        purpose: Some(Purpose::DibaoApplication),
        case_ref: Some(case.into()),
        decision: Decision {
            effect: Effect::Allow,
            policy_ids: vec!["caseworker-own-township".into()],
        },
        departments: vec![Department::CivilAffairs],
        fact_kinds: vec![],
        outcome: Outcome::Succeeded,
        request_id: format!("req-{i}"),
        subjects: vec![pseudonymize(key, subject)],
    }
}

/// The tests read whole logs as the auditor: lift the auditor's request budget.
pub(crate) fn generous_auditor_budget(text: String) -> String {
    if text.contains("[rate_limits]") {
        return text;
    }
    format!("{text}\n[rate_limits]\nauditor = {{ per_second = 100000, burst = 100000 }}\n")
}

/// A hub in-process with a handle on its access log.
struct Running {
    log: Arc<AccessLog>,
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(env: &TestEnv, db_url: Option<&str>) -> anyhow::Result<Running> {
    hub::tls::install_default_provider();
    let mut config = env.config(generous_auditor_budget)?;
    if let Some(u) = db_url {
        config.database.url = secrecy::SecretString::from(u.to_owned());
    }
    let app = Application::build(config).await?;
    let log = app.state().log.clone();
    let addr = app.local_addr();
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Ok(Running {
        log,
        addr,
        stop,
        task,
    })
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

pub(crate) fn remote(env: &TestEnv, base: Option<String>, who: &str) -> Remote {
    let p = env.path().join("pki");
    Remote {
        url: base,
        cacert: Some(p.join("ca.pem")),
        cert: Some(p.join(format!("{who}.pem"))),
        key: Some(p.join(format!("{who}.key"))),
    }
}

pub(crate) fn verify_args(env: &TestEnv, remote: Remote, db: Option<String>) -> VerifyArgs {
    VerifyArgs {
        remote,
        db,
        vkey: env.path().join("log.vkey"),
        origin: None,
        trusted_checkpoint: None,
        trusted_vkey: None,
        witnesses: vec![],
        witness_quorum: 0,
        save_checkpoint: None,
        quiet: true,
    }
}

pub(crate) async fn get_bytes(c: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let r = c.get(url).send().await?;
    anyhow::ensure!(r.status().is_success(), "GET {url}: {}", r.status());
    Ok(r.bytes().await?.to_vec())
}

async fn post(c: &reqwest::Client, url: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let r = c.post(url).json(&body).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// Tampering on the raw tables, each with its undo. `k` is the entry to damage.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    Edit,
    Delete,
    Swap,
    Insert,
    LeafHash,
    OtherKey,
}

pub(crate) async fn exec(db: &hub::store::Db, sql: &str, binds: &[Value]) -> anyhow::Result<()> {
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            for b in binds {
                q = match b {
                    Value::Number(n) => q.bind(n.as_i64().unwrap()),
                    Value::String(s) => q.bind(s.clone()),
                    Value::Array(a) => q.bind(
                        a.iter()
                            .map(|v| v.as_u64().unwrap() as u8)
                            .collect::<Vec<u8>>(),
                    ),
                    _ => unreachable!(),
                };
            }
            q.execute($pool).await?;
        }};
    }
    match db {
        hub::store::Db::Sqlite(p) => run!(p),
        hub::store::Db::Postgres(p) => run!(p),
    }
    Ok(())
}

pub(crate) fn bytes(v: &[u8]) -> Value {
    Value::Array(v.iter().map(|b| json!(b)).collect())
}

async fn entry_bytes(db: &hub::store::Db, k: u64) -> Vec<u8> {
    hub::log::store::read_entries(db, k, k + 1)
        .await
        .unwrap()
        .remove(0)
}

/// Applies `t` at `k`; returns the undo statements.
async fn tamper(
    db: &hub::store::Db,
    t: Tamper,
    k: u64,
    env: &TestEnv,
) -> anyhow::Result<Vec<(String, Vec<Value>)>> {
    let ki = k as i64;
    let orig = entry_bytes(db, k).await;
    let next = entry_bytes(db, k + 1).await;
    let mut edited = orig.clone();
    let pos = edited.iter().position(|b| *b == b'r').unwrap();
    edited[pos] = b'R';
    let upd = "UPDATE log_entries SET data = $1 WHERE idx = $2";
    Ok(match t {
        Tamper::Edit => {
            exec(db, upd, &[bytes(&edited), json!(ki)]).await?;
            vec![(upd.into(), vec![bytes(&orig), json!(ki)])]
        }
        Tamper::Delete => {
            let head = hub::log::store::read_head(db).await?;
            // Delete k and close the gap, as a careful forger would.
            exec(db, "DELETE FROM log_entries WHERE idx = $1", &[json!(ki)]).await?;
            exec(
                db,
                "UPDATE log_entries SET idx = -idx WHERE idx > $1",
                &[json!(ki)],
            )
            .await?;
            exec(
                db,
                "UPDATE log_entries SET idx = -idx - 1 WHERE idx < 0",
                &[],
            )
            .await?;
            let last = head.size as i64 - 1;
            vec![
                ("UPDATE log_entries SET idx = -idx WHERE idx >= $1".into(), vec![json!(ki)]),
                ("UPDATE log_entries SET idx = -idx + 1 WHERE idx < 0".into(), vec![]),
                (
                    "INSERT INTO log_entries (idx, data, time_ms, actor, action) VALUES ($1, $2, 0, 'x', 'x')".into(),
                    vec![json!(ki), bytes(&orig)],
                ),
                ("SELECT $1".into(), vec![json!(last)]),
            ]
        }
        Tamper::Swap => {
            exec(db, upd, &[bytes(&next), json!(ki)]).await?;
            exec(db, upd, &[bytes(&orig), json!(ki + 1)]).await?;
            vec![
                (upd.into(), vec![bytes(&orig), json!(ki)]),
                (upd.into(), vec![bytes(&next), json!(ki + 1)]),
            ]
        }
        Tamper::Insert => {
            exec(
                db,
                "UPDATE log_entries SET idx = -idx - 1 WHERE idx >= $1",
                &[json!(ki)],
            )
            .await?;
            exec(db, "UPDATE log_entries SET idx = -idx WHERE idx < 0", &[]).await?;
            exec(
                db,
                "INSERT INTO log_entries (idx, data, time_ms, actor, action) VALUES ($1, $2, 0, 'x', 'x')",
                &[json!(ki), bytes(&edited)],
            )
            .await?;
            vec![
                (
                    "DELETE FROM log_entries WHERE idx = $1".into(),
                    vec![json!(ki)],
                ),
                (
                    "UPDATE log_entries SET idx = -idx + 1 WHERE idx > $1".into(),
                    vec![json!(ki)],
                ),
                (
                    "UPDATE log_entries SET idx = -idx WHERE idx < 0".into(),
                    vec![],
                ),
            ]
        }
        Tamper::LeafHash => {
            let id = tlog::stored::stored_hash_index(0, k).0 as i64;
            let h = hub::log::store::read_hashes(db, &[id as u64]).await?[&(id as u64)];
            let s = "UPDATE log_hashes SET hash = $1 WHERE id = $2";
            exec(db, s, &[bytes(&[7u8; 32]), json!(id)]).await?;
            vec![(s.into(), vec![bytes(&h.0), json!(id)])]
        }
        Tamper::OtherKey => {
            let head = hub::log::store::read_head(db).await?;
            let vkey = std::fs::read_to_string(env.path().join("log.vkey"))?;
            let origin = vkey.split('+').next().unwrap();
            let other = tlog::Signer::from_seed(origin, [42; 32])?;
            let note = tlog::Checkpoint::new(origin, head.size, head.root)?.sign(&other)?;
            let s = "UPDATE log_head SET note = $1 WHERE id = 1";
            exec(db, s, &[json!(note)]).await?;
            vec![(s.into(), vec![json!(head.note)])]
        }
    })
}

async fn undo(db: &hub::store::Db, steps: Vec<(String, Vec<Value>)>) -> anyhow::Result<()> {
    for (sql, binds) in steps {
        if sql.starts_with("SELECT") {
            continue;
        }
        exec(db, &sql, &binds).await?;
    }
    Ok(())
}

async fn expect_bad(args: &VerifyArgs, first_bad: Option<u64>, what: &str) {
    match hub::audit::verify(args, |_, _| {}).await {
        Ok(Verdict::Bad(Failure {
            first_bad_index,
            reason,
        })) => assert_eq!(first_bad_index, first_bad, "{what}: {reason}"),
        other => panic!("{what}: expected tampering to be detected, got {other:?}"),
    }
}

/// Standard padded base64 (RFC 4648 §4), for the Go helper's JSON.
fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Builds the Go reference helper (golang.org/x/mod/sumdb/{note,tlog}, Debian packages
/// golang-go and golang-golang-x-mod-dev); fails, never skips, when Go is missing.
fn go_helper(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub/tlog/interop");
    let bin = dir.join("interop");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg("main.go")
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOFLAGS", "")
        .env("GOCACHE", dir.join("gocache"))
        .status()
        .map_err(|e| anyhow::anyhow!("Go is required (hub/tlog/interop/install-go.sh): {e}"))?;
    anyhow::ensure!(status.success(), "go build of hub/tlog/interop failed");
    Ok(bin)
}

/// The served checkpoint, inclusion proofs and a consistency proof, checked by Go's x/mod.
pub(crate) async fn go_checks(
    env: &TestEnv,
    c: &reqwest::Client,
    url: impl Fn(&str) -> String,
    entries: &[Vec<u8>],
) -> anyhow::Result<()> {
    let bin = go_helper(env.path())?;
    let note = String::from_utf8(get_bytes(c, &url("/log/checkpoint")).await?)?;
    let vkey = String::from_utf8(get_bytes(c, &url("/v1/log/vkey")).await?)?;
    let vkey = vkey.trim();
    let origin = vkey.split('+').next().unwrap_or_default();
    let text = note
        .split_once("\n\n")
        .map(|(t, _)| format!("{t}\n"))
        .unwrap_or_default();
    let cp = tlog::Checkpoint::parse(&text)?;
    let size = cp.size;
    let mut cases = vec![
        json!({"name": "checkpoint", "kind": "note", "vkey": vkey, "note": note,
        "origin": origin, "size": size, "root": cp.root.to_base64()}),
    ];
    let proof_of = |v: &Value| -> Vec<String> {
        v["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect()
    };
    for i in [0u64, 1, 255, 256, size / 2, size - 1] {
        let v: Value = c
            .get(url(&format!(
                "/v1/log/proof/inclusion?index={i}&size={size}"
            )))
            .send()
            .await?
            .json()
            .await?;
        cases.push(json!({"name": format!("inclusion {i}"), "kind": "inclusion", "size": size,
            "root": cp.root.to_base64(), "index": i, "data": b64(&entries[i as usize]), "proof": proof_of(&v)}));
    }
    for old in [1u64, 256, 300, size - 1] {
        let v: Value = c
            .get(url(&format!(
                "/v1/log/proof/consistency?old={old}&new={size}"
            )))
            .send()
            .await?
            .json()
            .await?;
        let old_root = tlog::hash::root_from_leaf_hashes(
            &entries[..old as usize]
                .iter()
                .map(|e| tlog::hash::leaf_hash(e))
                .collect::<Vec<_>>(),
        );
        cases.push(json!({"name": format!("consistency {old}"), "kind": "consistency", "size": size,
            "root": cp.root.to_base64(), "old_size": old, "old_root": old_root.to_base64(), "proof": proof_of(&v)}));
    }
    let file = env.path().join("go-cases.json");
    std::fs::write(&file, serde_json::to_vec(&cases)?)?;
    let out = Command::new(&bin).arg("verify").arg(&file).output()?;
    anyhow::ensure!(
        out.status.success(),
        "Go helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = String::from_utf8(out.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(results.len(), cases.len());
    for r in results {
        assert_eq!(r["ok"], true, "Go rejects what the hub served: {r}");
    }
    Ok(())
}

/// The whole suite on one backend (`db_url` None = the env's SQLite file).
async fn suite(env: &TestEnv, db_url: Option<String>) -> anyhow::Result<()> {
    let hub = start(env, db_url.as_deref()).await?;
    let key = pseudonym_key(env);
    let people = residents(40);
    // 600 appends (several bundles, a partial tile), concurrently: every ack is durable.
    let mut tasks = Vec::new();
    for i in 0..600usize {
        let log = hub.log.clone();
        let e = entry(
            &key,
            &people[i % people.len()],
            &format!("case-{}", i % 9),
            i as i64,
        );
        tasks.push(tokio::spawn(async move { log.append(e).await }));
    }
    // order[index] = which append (i) landed at that index.
    let mut order = vec![usize::MAX; 600];
    for (i, t) in tasks.into_iter().enumerate() {
        let index = t.await??.index as usize;
        assert_eq!(order[index], usize::MAX, "index {index} acknowledged twice");
        order[index] = i;
    }
    assert!(
        order.iter().all(|i| *i < 600),
        "every index 0..600 acknowledged once"
    );
    let indexes_where = |f: &dyn Fn(usize) -> bool| -> Vec<u64> {
        (0..600u64).filter(|x| f(order[*x as usize])).collect()
    };

    let auditor = env.http("auditor")?;
    let caseworker = env.http("caseworker")?;
    let base = Some(format!("https://localhost:{}", hub.addr.port()));

    // The served log verifies with our verifier over mTLS.
    let args = verify_args(env, remote(env, base.clone(), "auditor"), None);
    assert_eq!(
        hub::audit::verify(&args, |_, _| {}).await?,
        Verdict::Ok {
            size: 600,
            root: hub.log.head().root
        }
    );

    // Readers: caseworkers may not read the log.
    let r = caseworker.get(hub.url("/log/checkpoint")).send().await?;
    assert_eq!(r.status().as_u16(), 403);
    let r = auditor.get(hub.url("/log/checkpoint")).send().await?;
    assert_eq!(
        r.headers()["content-type"].to_str()?,
        "text/plain; charset=utf-8"
    );
    let vkey = String::from_utf8(get_bytes(&auditor, &hub.url("/v1/log/vkey")).await?)?;
    assert_eq!(vkey, std::fs::read_to_string(env.path().join("log.vkey"))?);

    // No resident ID in any served byte; the pseudonyms are there (so the grep can fail).
    let size = hub.log.head().size;
    let mut served = get_bytes(&auditor, &hub.url("/log/checkpoint")).await?;
    for t in tiles_for_size(size) {
        let r = auditor
            .get(hub.url(&format!("/log/{}", t.path())))
            .send()
            .await?;
        assert_eq!(
            r.headers()["content-type"].to_str()?,
            "application/octet-stream"
        );
        served.extend(r.bytes().await?);
        if t.level == 0 {
            served.extend(
                get_bytes(&auditor, &hub.url(&format!("/log/{}", t.entries_path()))).await?,
            );
        }
    }
    let text = String::from_utf8_lossy(&served);
    for p in &people {
        assert!(
            !text.contains(p.as_str()),
            "a resident ID appears in the served log"
        );
        assert!(text.contains(pseudonymize(&key, p).as_str()));
    }

    // Inclusion and consistency proofs from the API verify against the checkpoint.
    let head = hub.log.head();
    let entries = hub::log::store::read_entries(hub.log.db(), 0, size).await?;
    for (i, n) in [(0u64, size), (299, size), (5, 300)] {
        let v: Value = auditor
            .get(hub.url(&format!("/v1/log/proof/inclusion?index={i}&size={n}")))
            .send()
            .await?
            .json()
            .await?;
        let proof: Vec<tlog::Hash> = v["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| tlog::Hash::from_base64("proof", h.as_str().unwrap()).unwrap())
            .collect();
        let root = tlog::hash::root_from_leaf_hashes(
            &entries[..n as usize]
                .iter()
                .map(|e| tlog::hash::leaf_hash(e))
                .collect::<Vec<_>>(),
        );
        tlog::proof::check_record(
            &proof,
            n,
            root,
            i,
            tlog::hash::leaf_hash(&entries[i as usize]),
        )?;
    }
    let v: Value = auditor
        .get(hub.url("/v1/log/proof/consistency?old=300"))
        .send()
        .await?
        .json()
        .await?;
    let proof: Vec<tlog::Hash> = v["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| tlog::Hash::from_base64("proof", h.as_str().unwrap()).unwrap())
        .collect();
    let old_root = tlog::hash::root_from_leaf_hashes(
        &entries[..300]
            .iter()
            .map(|e| tlog::hash::leaf_hash(e))
            .collect::<Vec<_>>(),
    );
    tlog::proof::check_tree(&proof, head.size, head.root, 300, old_root)?;
    // The same checkpoint and proofs verify with Go's golang.org/x/mod/sumdb/{note,tlog}.
    go_checks(env, &auditor, |p| hub.url(p), &entries).await?;

    // Search by subject: the right entries, and exactly one log_searched entry for the search.
    let who = &people[3];
    let before = hub.log.head().size;
    let (st, v) = post(
        &auditor,
        &hub.url("/v1/log/search"),
        json!({"resident_id": who}),
    )
    .await?;
    assert_eq!(st, 200, "{v}");
    let got: Vec<u64> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    let want = indexes_where(&|i| i % people.len() == 3);
    assert_eq!(got, want);
    assert_eq!(hub.log.head().size, before + 1);
    assert_eq!(v["logged_as"].as_u64(), Some(before));
    let logged = schemas::access_log::decode(&entry_bytes(hub.log.db(), before).await)?;
    assert_eq!(logged.action, Action::LogSearched);
    assert_eq!(logged.subjects, vec![pseudonymize(&key, who)]);
    assert!(!serde_json::to_string(&v)?.contains(who.as_str()));
    // By case and by time range and by actor.
    let (_, v) = post(
        &auditor,
        &hub.url("/v1/log/search"),
        json!({"case_ref": "case-4"}),
    )
    .await?;
    let got: Vec<u64> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(got, indexes_where(&|i| i % 9 == 4));
    let rfc = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(1_790_000_000 + t)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let (_, v) = post(
        &auditor,
        &hub.url("/v1/log/search"),
        json!({"from": rfc(100), "to": rfc(110)}),
    )
    .await?;
    let got: Vec<u64> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(got, indexes_where(&|i| (100..110).contains(&i)));
    let (_, v) = post(
        &auditor,
        &hub.url("/v1/log/search"),
        json!({"actor": "cw-xuzhuang-01", "limit": 5}),
    )
    .await?;
    assert_eq!(v["entries"].as_array().unwrap().len(), 5);
    // A bad resident ID is refused with the field named, and nothing is logged.
    let before = hub.log.head().size;
    let (st, v) = post(
        &auditor,
        &hub.url("/v1/log/search"),
        json!({"resident_id": "37081119600301123"}),
    )
    .await?;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (400, Some("resident_id"))
    );
    assert_eq!(hub.log.head().size, before);
    // A caseworker's attempt is denied, and logged once as denied.
    let (st, _) = post(
        &caseworker,
        &hub.url("/v1/log/search"),
        json!({"resident_id": who}),
    )
    .await?;
    assert_eq!(st, 403);
    assert_eq!(hub.log.head().size, before + 1);
    let denied = schemas::access_log::decode(&entry_bytes(hub.log.db(), before).await)?;
    assert_eq!(
        (denied.action, denied.outcome),
        (Action::LogSearched, Outcome::Denied)
    );

    // Subject access report: every access to that person, and one subject_access_report entry.
    let before = hub.log.head().size;
    let (st, v) = post(
        &auditor,
        &hub.url("/v1/log/subject-report"),
        json!({"resident_id": who}),
    )
    .await?;
    assert_eq!(st, 200, "{v}");
    let got: Vec<(u64, String)> = v["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["entry"]["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut want: Vec<(u64, String)> = indexes_where(&|i| i % people.len() == 3)
        .into_iter()
        .map(|i| (i, "department_queried".to_owned()))
        .collect();
    want.push((600, "log_searched".into()));
    want.push((before - 1, "log_searched".into()));
    want.sort();
    assert_eq!(got, want);
    assert_eq!(hub.log.head().size, before + 1);
    let rep = schemas::access_log::decode(&entry_bytes(hub.log.db(), before).await)?;
    assert_eq!(rep.action, Action::SubjectAccessReport);
    let r = auditor
        .post(hub.url("/v1/log/subject-report"))
        .json(&json!({"resident_id": who, "format": "html"}))
        .send()
        .await?;
    assert!(
        r.headers()["content-type"]
            .to_str()?
            .starts_with("text/html")
    );
    let html = r.text().await?;
    assert!(
        html.contains("谁查看了我的数据") && html.contains("低保申请") && html.contains("民政")
    );
    assert!(!html.contains(who.as_str()));

    // Tampering, through the running hub (served log) and offline from the database.
    let db = hub.log.db().clone();
    let size = hub.log.head().size;
    let steps = tamper(&db, Tamper::Edit, 300, env).await?;
    expect_bad(&args, Some(300), "edit, served over mTLS").await;
    undo(&db, steps).await?;
    assert!(matches!(
        hub::audit::verify(&args, |_, _| {}).await?,
        Verdict::Ok { .. }
    ));
    hub.stop().await;
    let db_arg = db_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", env.path().join("hub.db").display()));
    let offline = verify_args(
        env,
        Remote {
            url: None,
            cacert: None,
            cert: None,
            key: None,
        },
        Some(db_arg),
    );
    assert_eq!(
        hub::audit::verify(&offline, |_, _| {}).await?,
        Verdict::Ok {
            size,
            root: hub::log::store::read_head(&db).await?.root
        }
    );
    for (t, k, first_bad) in [
        (Tamper::Edit, 17u64, Some(17u64)),
        (Tamper::Delete, 260, Some(260)),
        (Tamper::Swap, 511, Some(511)),
        (Tamper::Insert, 42, Some(42)),
        (Tamper::LeafHash, 77, Some(77)),
        (Tamper::OtherKey, 0, None),
    ] {
        let steps = tamper(&db, t, k, env).await?;
        expect_bad(&offline, first_bad, &format!("{t:?} at {k}")).await;
        undo(&db, steps).await?;
        assert!(
            matches!(
                hub::audit::verify(&offline, |_, _| {}).await?,
                Verdict::Ok { .. }
            ),
            "undo of {t:?}"
        );
    }
    // Consistency with a checkpoint the auditor trusted before: a real earlier checkpoint passes,
    // one (validly signed) for a different history at size 300 is refused.
    let der = std::fs::read(env.path().join("keys/hub-signing.pk8"))?;
    let vkey = std::fs::read_to_string(env.path().join("log.vkey"))?;
    let signer = hub::log::signer_from_pkcs8(vkey.split('+').next().unwrap(), &der)?;
    let trusted = env.path().join("trusted.checkpoint");
    let check_trusted = |root: tlog::Hash| {
        let note = tlog::Checkpoint::new(signer.name(), 300, root)
            .unwrap()
            .sign(&signer)
            .unwrap();
        std::fs::write(&trusted, note).unwrap();
        let mut a = offline.clone();
        a.trusted_checkpoint = Some(trusted.clone());
        a
    };
    let good = check_trusted(old_root);
    assert!(matches!(
        hub::audit::verify(&good, |_, _| {}).await?,
        Verdict::Ok { .. }
    ));
    let forked = check_trusted(tlog::Hash([5; 32]));
    expect_bad(&forked, None, "inconsistent with the trusted checkpoint").await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_suite_on_sqlite() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    suite(&env, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_suite_on_postgres() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let env = TestEnv::new()?;
    let r = suite(&env, Some(pg.url.clone())).await;
    pg.drop_db().await?;
    r
}

/// A real `hub` process whose stderr goes to `log`.
fn spawn_hub(config: &Path, log: &Path) -> anyhow::Result<Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()?)
}

fn wait_addr(log: &Path) -> anyhow::Result<std::net::SocketAddr> {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(log) {
            for l in text.lines() {
                if let Ok(v) = serde_json::from_str::<Value>(l)
                    && v["fields"]["message"] == "hub listening (mTLS)"
                {
                    return Ok(v["fields"]["addr"].as_str().unwrap_or_default().parse()?);
                }
            }
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "hub did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn crash_test(db_url: Option<String>) -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let config = env.config(|t| {
        generous_auditor_budget(t.replace("reload_poll_ms = 2000", "reload_poll_ms = 0"))
    })?;
    drop(config);
    if let Some(u) = &db_url {
        let text = std::fs::read_to_string(env.config_path())?;
        let start = text
            .find("url = \"sqlite://")
            .expect("sqlite url in the demo config");
        let end = start + text[start..].find('\n').unwrap();
        std::fs::write(
            env.config_path(),
            format!("{}url = \"{u}\"{}", &text[..start], &text[end..]),
        )?;
    }
    let people = residents(8);
    // (request id, index) of every acknowledged search.
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let log_path = env.path().join("hub.log");
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for round in 0..21 {
        let mut child = spawn_hub(&env.config_path(), &log_path)?;
        let addr = wait_addr(&log_path)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut load = Vec::new();
        for w in 0..8 {
            let client = env.http("auditor")?;
            let acked = acked.clone();
            let stop = stop.clone();
            let who = people[w % people.len()].clone();
            let url = format!("https://localhost:{}/v1/log/search", addr.port());
            load.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(r) = client
                        .post(&url)
                        .json(&json!({"resident_id": who, "limit": 1}))
                        .send()
                        .await
                    else {
                        break;
                    };
                    let rid = r
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    if r.status().is_success()
                        && let (Some(rid), Ok(v)) = (rid, r.json::<Value>().await)
                        && let Some(i) = v["logged_as"].as_u64()
                    {
                        acked.lock().unwrap().push((rid, i));
                    }
                }
            }));
        }
        if round == 20 {
            // Last round: stop the load, then check against the live hub.
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for l in load {
                let _ = l.await;
            }
            let acked = acked.lock().unwrap().clone();
            assert!(acked.len() > 100, "too little load: {}", acked.len());
            let base = format!("https://localhost:{}", addr.port());
            let args = verify_args(&env, remote(&env, Some(base.clone()), "auditor"), None);
            let verdict = hub::audit::verify(&args, |_, _| {}).await?;
            let Verdict::Ok { size, .. } = verdict else {
                panic!("log does not verify after crashes: {verdict:?}");
            };
            let c = env.http("auditor")?;
            let mut entries = Vec::new();
            for n in 0..size.div_ceil(256) {
                let t = tile_at_size(0, n, size).unwrap();
                let b = get_bytes(&c, &format!("{base}/log/{}", t.entries_path())).await?;
                entries.extend(
                    tlog::tile::parse_bundle(&b)?
                        .into_iter()
                        .map(<[u8]>::to_vec),
                );
            }
            for (rid, i) in &acked {
                let e = schemas::access_log::decode(&entries[*i as usize])?;
                assert_eq!(&e.request_id, rid, "acknowledged entry {i} lost or changed");
            }
            child.kill()?;
            child.wait()?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(150 + next() % 500)).await;
        child.kill()?; // SIGKILL
        child.wait()?;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for l in load {
            let _ = l.await;
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_entry_on_sqlite() -> anyhow::Result<()> {
    crash_test(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_entry_on_postgres() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let r = crash_test(Some(pg.url.clone())).await;
    pg.drop_db().await?;
    r
}
