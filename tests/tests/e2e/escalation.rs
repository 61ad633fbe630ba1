//! 超期督办与通知 (issue 11 item 5): an overdue stage is escalated to the county supervisor's
//! queue by the lease holder's scan, once; meeting the clock resolves it; notifications go
//! through the durable outbox to a real HTTPS webhook receiver (mTLS, the hub's outbound client
//! certificate), signed with the key `/v1/report-key` publishes; a `kill -9` while notifications
//! are pending loses none; two hub processes on one PostgreSQL database take turns on the lease;
//! a normal case handed to the county with two referral slips, one late: the slip is escalated
//! and notified, its late feedback resolves it, and the case closes.
//!
//! Time is not waited for: a clock is made past by back-dating the case's stored times in the real
//! database from the test (`created_ms`, the events, and the stored `next_due_ms` /
//! `next_check_ms`), exactly as the hub would have stored them three hours earlier.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hub_tests::{PgTestDb, TestEnv};
use schemas::Household;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cases::{filing, move_body};
use crate::process::HubProcess;
use crate::verification::{XUZHUANG, households, setup_with};

/// One webhook request as received.
#[derive(Debug, Clone)]
struct Received {
    delivery_id: String,
    kind: String,
    key_id: String,
    signed: bool,
    body: Value,
    raw: String,
}

/// A real HTTPS webhook receiver on 127.0.0.1: the test PKI's server certificate, client
/// certificates required (the hub's outbound one), every request checked against the hub's
/// published key and answered 200.
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(env: &TestEnv, addr: SocketAddr, public_key: Vec<u8>) -> anyhow::Result<Self> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(env.pki.ca_pem_path())? {
            roots.add(c?)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            hub::tls::provider(),
        )
        .build()?;
        let chain = CertificateDer::pem_file_iter(env.pki.cert_path("server"))?
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(env.pki.key_path("server"))?;
        let cfg = rustls::ServerConfig::builder_with_provider(hub::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = got.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let sink = sink.clone();
                let pk = public_key.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await
                        && let Some(r) = read_request(&mut tls, &pk).await
                    {
                        sink.lock().expect("lock").push(r);
                        let _ = tls
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        Ok(Receiver { got, task })
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    fn stop(self) {
        self.task.abort();
    }
}

/// Read one HTTP/1.1 request (head, then `content-length` bytes of body).
async fn read_request(s: &mut (impl AsyncReadExt + Unpin), public_key: &[u8]) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(chunk.get(..n)?);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(buf.get(..head_end)?).to_string();
    let headers: BTreeMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers.get("content-length")?.parse().ok()?;
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(chunk.get(..n)?);
    }
    let body = buf.get(head_end..head_end + len)?.to_vec();
    let h = |k: &str| headers.get(k).cloned().unwrap_or_default();
    let signed = hub::notify::verify_delivery(
        public_key,
        &h("jsj-delivery-id"),
        &h("jsj-kind"),
        h("jsj-timestamp").parse().unwrap_or(-1),
        &body,
        &h("jsj-signature"),
    );
    Some(Received {
        delivery_id: h("jsj-delivery-id"),
        kind: h("jsj-kind"),
        key_id: h("jsj-key-id"),
        signed,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: String::from_utf8_lossy(&body).to_string(),
    })
}

/// A free port on 127.0.0.1 for a receiver that binds it later (some tests start it only after
/// the hub has failed to deliver). Taken below Linux's ephemeral range (32768–60999), so that no
/// process of the parallel suite binding port 0 is handed it in the meantime; checked free here.
fn free_addr() -> anyhow::Result<SocketAddr> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..200u32 {
        let port = 20_000 + (seed.wrapping_add(i.wrapping_mul(7_919)) % 10_000) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if std::net::TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    anyhow::bail!("no free port in 20000-29999")
}

/// The config sections of this module: scan every second, a short lease, fast retries, one
/// webhook at `addr` taking every kind the tests look at.
fn sections(addr: SocketAddr) -> String {
    format!(
        "\n[escalation]\ninterval_secs = 1\nlease_secs = 3\n\n[notifications]\npoll_ms = 100\n\
         retry_base_ms = 100\nretry_cap_ms = 500\n\n[[notifications.webhooks]]\nname = \"province\"\n\
         url = \"https://localhost:{}/jsj/notifications\"\nca = \"pki/ca.pem\"\n\
         kinds = [\"case_accepted\", \"slip_issued\", \"deadline_missed\", \"case_decided\"]\n",
        addr.port()
    )
}

/// Wait (bounded) until `f` gives `Some`.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A raw connection to the hub's database, either backend.
enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl Raw {
    async fn open(url: &str) -> anyhow::Result<Raw> {
        use sqlx::Connection as _;
        Ok(if url.starts_with("sqlite:") {
            Raw::Sqlite(sqlx::SqliteConnection::connect(url).await?)
        } else {
            Raw::Pg(sqlx::PgConnection::connect(url).await?)
        })
    }

    async fn exec(&mut self, sql: &'static str, case: &str, shift: i64) -> anyhow::Result<()> {
        match self {
            Raw::Sqlite(c) => {
                sqlx::query(sql).bind(shift).bind(case).execute(c).await?;
            }
            Raw::Pg(c) => {
                sqlx::query(sql).bind(shift).bind(case).execute(c).await?;
            }
        }
        Ok(())
    }

    async fn count(&mut self, sql: &'static str, case: &str) -> anyhow::Result<i64> {
        Ok(match self {
            Raw::Sqlite(c) => {
                sqlx::query_as::<_, (i64,)>(sql)
                    .bind(case)
                    .fetch_one(c)
                    .await?
                    .0
            }
            Raw::Pg(c) => {
                sqlx::query_as::<_, (i64,)>(sql)
                    .bind(case)
                    .fetch_one(c)
                    .await?
                    .0
            }
        })
    }

    /// Back-date case `case` by three hours, as if filed and moved three hours ago.
    async fn three_hours_ago(&mut self, case: &str) -> anyhow::Result<()> {
        let shift: i64 = 3 * 3600 * 1000;
        // The events first: the scan selects the case only once its stored check time is past.
        self.exec(
            "UPDATE case_events SET at_ms = at_ms - $1 WHERE case_id = $2",
            case,
            shift,
        )
        .await?;
        self.exec(
            "UPDATE cases SET created_ms = created_ms - $1, next_due_ms = next_due_ms - $1, \
             next_check_ms = next_check_ms - $1 WHERE id = $2",
            case,
            shift,
        )
        .await
    }

    /// Move slip `slip` 30 days into the past (issued, due and its stored check time), as if
    /// issued a month ago: its due time has passed and the next scan must notice it.
    async fn slip_past_due(&mut self, slip: &str) -> anyhow::Result<()> {
        self.exec(
            "UPDATE slips SET issued_ms = issued_ms - $1, due_ms = due_ms - $1, \
             next_check_ms = due_ms - $1 + 1 WHERE id = $2",
            slip,
            30 * 86_400 * 1000,
        )
        .await
    }

    /// Ask the next scan to look at `case` again (as a new due check would).
    async fn recheck(&mut self, case: &str) -> anyhow::Result<()> {
        self.exec("UPDATE cases SET next_check_ms = $1 WHERE id = $2", case, 0)
            .await
    }

    async fn close(self) -> anyhow::Result<()> {
        use sqlx::Connection as _;
        match self {
            Raw::Sqlite(c) => c.close().await?,
            Raw::Pg(c) => c.close().await?,
        }
        Ok(())
    }
}

/// An HTTPS client of the hub at `base`.
struct Api<'a> {
    env: &'a TestEnv,
    base: String,
}

impl Api<'_> {
    async fn get(&self, who: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .env
            .http(who)?
            .get(format!("{}{path}", self.base))
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    async fn post(&self, who: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let r = self
            .env
            .http(who)?
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// File an emergency case for `h` through the hotline and make `steps` as the caseworker.
    async fn case(&self, h: &Household, steps: &[&str]) -> anyhow::Result<String> {
        let (status, b) = self
            .post(
                "intake",
                "/v1/cases",
                &filing(h, "hotline_12345", "emergency", XUZHUANG),
            )
            .await?;
        anyhow::ensure!(status == 201, "filing: {b}");
        let id = b["id"].as_str().unwrap_or_default().to_owned();
        for step in steps {
            self.step(&id, step).await?;
        }
        Ok(id)
    }

    async fn step(&self, id: &str, step: &str) -> anyhow::Result<()> {
        let (status, b) = self
            .post(
                "caseworker",
                &format!("/v1/cases/{id}/{step}"),
                &move_body(step),
            )
            .await?;
        anyhow::ensure!(status == 200, "{step}: {b}");
        Ok(())
    }

    /// The hub's signing public key, from `/v1/report-key`.
    async fn report_key(&self) -> anyhow::Result<(Vec<u8>, String)> {
        let (status, k) = self.get("caseworker", "/v1/report-key").await?;
        anyhow::ensure!(status == 200, "{k}");
        Ok((
            hex::decode(k["public_key"].as_str().unwrap_or_default())?,
            k["key_id"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    /// The escalations `who` sees (with `query`), as (case id, clock, state).
    async fn queue(&self, who: &str, query: &str) -> anyhow::Result<Vec<(String, String, String)>> {
        let (status, l) = self.get(who, &format!("/v1/escalations{query}")).await?;
        anyhow::ensure!(status == 200, "{who}: {l}");
        Ok(l["escalations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (s("case_id"), s("clock"), s("state"))
            })
            .collect())
    }
}

/// Deliveries received for `case`, deduplicated by delivery id: kind → count of distinct ids.
fn kinds_for(got: &[Received], case: &str) -> BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    for r in got.iter().filter(|r| r.body["case_id"] == case) {
        if seen.insert(r.delivery_id.clone()) {
            *out.entry(r.kind.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// A caseworker of another county (兖州区), for the refusal.
fn issue_other_county(env: &TestEnv) -> anyhow::Result<()> {
    env.issue(
        "county-yanzhou",
        &hub::pki::ClientSpec {
            role: schemas::Role::Caseworker,
            organisation: "mz-370812".into(),
            division: "370812".into(),
            principal: "officer-yanzhou-01".into(),
            display_name: "兖州区民政局 (Yanzhou county officer)".into(),
        },
    )
}

/// The escalation scenario on the database at `db_url` (the hub runs in-process).
async fn overdue_case_is_escalated_once_and_notified(
    edit_db: impl Fn(String) -> String + Send + Sync + 'static,
    db_url: impl Fn(&Path) -> String,
) -> anyhow::Result<()> {
    let hook = free_addr()?;
    let s = setup_with(move |t| format!("{}{}", edit_db(t), sections(hook))).await?;
    issue_other_county(&s.env)?;
    let api = Api {
        env: &s.env,
        base: s.hub.url(""),
    };
    let (pk, key_id) = api.report_key().await?;
    let receiver = Receiver::start(&s.env, hook, pk).await?;
    let h = households(&s.deps, XUZHUANG)[0].clone();

    // An emergency case accepted, first help never given; three hours pass.
    let late = api.case(&h, &["accept"]).await?;
    let helped = api.case(&h, &["accept", "first-help"]).await?;
    let mut db = Raw::open(&db_url(s.env.path())).await?;
    db.three_hours_ago(&late).await?;
    db.three_hours_ago(&helped).await?;

    // The list's overdue filter is in SQL on the stored deadline: exactly the late case.
    let (status, l) = api.get("caseworker", "/v1/cases?overdue=true").await?;
    assert_eq!(status, 200, "{l}");
    let overdue: Vec<&str> = l["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(overdue, vec![late.as_str()], "{l}");

    // The next scan escalates it to the county's queue.
    let api = &api;
    let queue = eventually("the escalation", || async move {
        let q = api.queue("county-officer", "").await?;
        Ok((!q.is_empty()).then_some(q))
    })
    .await?;
    assert_eq!(
        queue,
        vec![(late.clone(), "first_help".to_owned(), "open".to_owned())],
        "only the unhelped case, first help missed"
    );
    assert_eq!(
        api.queue("caseworker", "").await?.len(),
        1,
        "its township sees it"
    );
    assert!(
        api.queue("caseworker-other", "").await?.is_empty(),
        "another township does not"
    );
    assert!(
        api.queue("county-yanzhou", "").await?.is_empty(),
        "another county does not"
    );
    let (status, b) = api
        .get("caseworker", "/v1/escalations?township=370811")
        .await?;
    assert_eq!(
        status, 403,
        "a township caseworker cannot ask for the county: {b}"
    );
    let (status, b) = api.get("dept-labor", "/v1/escalations").await?;
    assert_eq!(status, 403, "a department sees no queue: {b}");
    let (status, b) = api
        .get("county-officer", "/v1/escalations?state=late")
        .await?;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["error"]["code"], "validation_failed", "{b}");

    // A re-scan of the same case adds nothing.
    db.recheck(&late).await?;
    let start = Instant::now();
    while db
        .count(
            "SELECT COUNT(*) FROM cases WHERE id = $1 AND next_check_ms = 0",
            &late,
        )
        .await?
        > 0
    {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "no re-scan");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        db.count("SELECT COUNT(*) FROM escalations WHERE case_id = $1", &late)
            .await?,
        1
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM outbox WHERE case_id = $1 AND kind = 'deadline_missed'",
            &late
        )
        .await?,
        1
    );

    // First help given late resolves it; the case runs on to its decision.
    api.step(&late, "first-help").await?;
    assert!(api.queue("county-officer", "?state=open").await?.is_empty());
    let resolved = api.queue("county-officer", "?state=resolved").await?;
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    api.step(&late, "investigation").await?;
    api.step(&late, "decision").await?;

    // The receiver gets accepted, missed and decided, signed, each at least once.
    let (receiver_ref, late_ref) = (&receiver, &late);
    let got = eventually("the notifications", || async move {
        let got = receiver_ref.received();
        let k = kinds_for(&got, late_ref);
        Ok((k.len() == 3).then_some(got))
    })
    .await?;
    let k = kinds_for(&got, &late);
    assert_eq!(
        k,
        BTreeMap::from([
            ("case_accepted".to_owned(), 1),
            ("case_decided".to_owned(), 1),
            ("deadline_missed".to_owned(), 1),
        ])
    );
    assert_eq!(kinds_for(&got, &helped).get("case_accepted"), Some(&1));
    assert!(!kinds_for(&got, &helped).contains_key("deadline_missed"));
    for r in &got {
        assert!(
            r.signed,
            "a delivery whose signature does not verify: {}",
            r.raw
        );
        assert_eq!(r.key_id, key_id);
        assert_eq!(r.body["delivery_id"], r.delivery_id.as_str());
        for secret in crate::verification::ids(&h) {
            assert!(!r.raw.contains(&secret), "a resident ID in a webhook body");
        }
        for m in &h.members {
            assert!(!r.raw.contains(&m.name), "a name in a webhook body");
        }
    }
    let decided = got
        .iter()
        .find(|r| r.kind == "case_decided" && r.body["case_id"] == late.as_str())
        .expect("decided");
    assert_eq!(decided.body["outcome"], "approved");
    assert_eq!(decided.body["township"], XUZHUANG);
    db.close().await?;
    receiver.stop();
    s.stop().await;
    Ok(())
}

/// Deliveries of `kind` received for `case` (first of each delivery id).
fn deliveries<'a>(got: &'a [Received], case: &str, kind: &str) -> Vec<&'a Received> {
    let mut seen = std::collections::BTreeSet::new();
    got.iter()
        .filter(|r| r.body["case_id"] == case && r.kind == kind)
        .filter(|r| seen.insert(r.delivery_id.clone()))
        .collect()
}

/// Issue a slip of `kind` from `case` as the township caseworker; its id.
async fn issue_slip(api: &Api<'_>, case: &str, kind: &str, asked: &str) -> anyhow::Result<String> {
    let (status, b) = api
        .post(
            "caseworker",
            &format!("/v1/cases/{case}/slips"),
            &serde_json::json!({ "kind": kind, "asked": asked }),
        )
        .await?;
    anyhow::ensure!(status == 201, "issuing a {kind} slip: {b}");
    Ok(b["id"].as_str().unwrap_or_default().to_owned())
}

/// The ids of the slips `who` lists with `query`.
async fn slips_listed(api: &Api<'_>, who: &str, query: &str) -> anyhow::Result<Vec<String>> {
    let (status, l) = api.get(who, &format!("/v1/slips{query}")).await?;
    anyhow::ensure!(status == 200, "{who}: {l}");
    Ok(l["slips"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect())
}

/// 一件普通案件转交县级，两张转办单，一张超期督办 (issue 11 item 10): a normal case is accepted and
/// investigated; the township issues slips to health and labor; health answers in time; labor's
/// slip passes its due time (moved a month back in the real database), the scan escalates it to
/// the county's queue (with the slip and its department) and notifies `deadline_missed`; labor's
/// late feedback resolves it; the case is handed to the county, which decides; the case closes.
async fn normal_case_with_a_late_slip_to_closure(
    edit_db: impl Fn(String) -> String + Send + Sync + 'static,
    db_url: impl Fn(&Path) -> String,
) -> anyhow::Result<()> {
    let hook = free_addr()?;
    let s = setup_with(move |t| format!("{}{}", edit_db(t), sections(hook))).await?;
    let api = Api {
        env: &s.env,
        base: s.hub.url(""),
    };
    let (pk, _) = api.report_key().await?;
    let receiver = Receiver::start(&s.env, hook, pk).await?;
    let h = households(&s.deps, XUZHUANG)[0].clone();
    let (status, b) = api
        .post(
            "intake",
            "/v1/cases",
            &filing(&h, "hotline_12345", "normal", XUZHUANG),
        )
        .await?;
    assert_eq!(status, 201, "{b}");
    let case = b["id"].as_str().expect("id").to_owned();
    api.step(&case, "accept").await?;
    api.step(&case, "investigation").await?;
    let health = issue_slip(
        &api,
        &case,
        "medical_assistance",
        "户主住院，请落实医疗救助",
    )
    .await?;
    let labor = issue_slip(&api, &case, "employment", "配偶失业，请落实就业援助").await?;

    // Health answers in time; labor's slip passes its due time unanswered.
    let (status, b) = api
        .post(
            "dept-health",
            &format!("/v1/slips/{health}/feedback"),
            &serde_json::json!({ "result": "done", "text": "已纳入医疗救助" }),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    let mut db = Raw::open(&db_url(s.env.path())).await?;
    db.slip_past_due(&labor).await?;
    assert_eq!(
        slips_listed(&api, "dept-labor", "?overdue=true").await?,
        vec![labor.clone()]
    );
    assert!(
        slips_listed(&api, "dept-health", "?overdue=true")
            .await?
            .is_empty()
    );

    // The scan escalates it: the county's queue and the township's show the slip and its
    // department; the in-time slip is not there.
    let api = &api;
    let queue = eventually("the slip's escalation", || async move {
        let (status, l) = api.get("county-officer", "/v1/escalations").await?;
        anyhow::ensure!(status == 200, "{l}");
        let items = l["escalations"].as_array().cloned().unwrap_or_default();
        Ok((!items.is_empty()).then_some(items))
    })
    .await?;
    assert_eq!(queue.len(), 1, "{queue:?}");
    let e = &queue[0];
    assert_eq!(
        (&e["case_id"], &e["clock"], &e["state"], &e["tier"]),
        (
            &Value::from(case.as_str()),
            &Value::from("slip"),
            &Value::from("open"),
            &Value::from("normal")
        ),
        "{e}"
    );
    assert_eq!(e["slip"]["id"], labor.as_str(), "{e}");
    assert_eq!(e["slip"]["kind"], "employment", "{e}");
    assert_eq!(e["slip"]["to_department"], "labor", "{e}");
    assert_eq!(e["township"], XUZHUANG, "{e}");
    assert_eq!(api.queue("caseworker", "?state=open").await?.len(), 1);
    assert!(api.queue("caseworker-other", "").await?.is_empty());
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM slips WHERE id = $1 AND next_check_ms IS NULL",
            &labor
        )
        .await?,
        1,
        "nothing left to notice on the escalated slip"
    );

    // Labor's late feedback resolves the escalation; the slip is no longer overdue.
    let (status, b) = api
        .post(
            "dept-labor",
            &format!("/v1/slips/{labor}/feedback"),
            &serde_json::json!({ "result": "done", "text": "已登记失业并推荐公益性岗位" }),
        )
        .await?;
    assert_eq!(status, 200, "{b}");
    assert!(api.queue("county-officer", "?state=open").await?.is_empty());
    let resolved = api.queue("county-officer", "?state=resolved").await?;
    assert_eq!(
        resolved,
        vec![(case.clone(), "slip".to_owned(), "resolved".to_owned())]
    );
    assert!(
        slips_listed(api, "dept-labor", "?overdue=true")
            .await?
            .is_empty()
    );

    // 转交县级: the county decides; the case closes (every slip has its feedback).
    api.step(&case, "hand-to-county").await?;
    let (status, b) = api
        .post(
            "county-officer",
            &format!("/v1/cases/{case}/decision"),
            &move_body("decision"),
        )
        .await?;
    assert_eq!(
        (status, &b["outcome"]),
        (200, &Value::from("approved")),
        "{b}"
    );
    api.step(&case, "close").await?;
    let (status, b) = api.get("caseworker", &format!("/v1/cases/{case}")).await?;
    assert_eq!((status, &b["state"]), (200, &Value::from("closed")), "{b}");

    // The webhook got both slips issued, the slip's deadline_missed once, and the decision.
    let (receiver_ref, case_ref) = (&receiver, &case);
    let got = eventually("the notifications", || async move {
        let got = receiver_ref.received();
        let k = kinds_for(&got, case_ref);
        let done = k.get("slip_issued") == Some(&2)
            && k.contains_key("deadline_missed")
            && k.contains_key("case_decided");
        Ok(done.then_some(got))
    })
    .await?;
    let issued = deliveries(&got, &case, "slip_issued");
    let mut addressed: Vec<&str> = issued
        .iter()
        .filter_map(|r| r.body["to_department"].as_str())
        .collect();
    addressed.sort_unstable();
    assert_eq!(addressed, ["health", "labor"]);
    for r in &issued {
        assert!(r.body["due_at"].is_string(), "{}", r.raw);
        assert_eq!(r.body["township"], XUZHUANG, "{}", r.raw);
    }
    let missed = deliveries(&got, &case, "deadline_missed");
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0].body["clock"], "slip");
    assert_eq!(missed[0].body["slip_id"], labor.as_str());
    assert_eq!(missed[0].body["to_department"], "labor");
    for r in &got {
        assert!(
            r.signed,
            "a delivery whose signature does not verify: {}",
            r.raw
        );
        for secret in crate::verification::ids(&h) {
            assert!(!r.raw.contains(&secret), "a resident ID in a webhook body");
        }
        for m in &h.members {
            assert!(!r.raw.contains(&m.name), "a name in a webhook body");
        }
        assert!(
            !r.raw.contains("配偶失业"),
            "what is asked in a webhook body"
        );
    }
    db.close().await?;
    receiver.stop();
    s.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_case_handed_to_the_county_with_a_late_escalated_slip_closes_on_sqlite()
-> anyhow::Result<()> {
    normal_case_with_a_late_slip_to_closure(
        |t| t,
        |dir| format!("sqlite://{}", dir.join("hub.db").display()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_case_handed_to_the_county_with_a_late_escalated_slip_closes_on_postgres()
-> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let (url, url2) = (pg.url.clone(), pg.url.clone());
    normal_case_with_a_late_slip_to_closure(
        move |t| t.replace("sqlite://hub.db", &url),
        move |_| url2.clone(),
    )
    .await?;
    pg.drop_db().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_case_is_escalated_once_resolved_and_notified_on_sqlite() -> anyhow::Result<()> {
    overdue_case_is_escalated_once_and_notified(
        |t| t,
        |dir| format!("sqlite://{}", dir.join("hub.db").display()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_case_is_escalated_once_resolved_and_notified_on_postgres() -> anyhow::Result<()>
{
    let pg = PgTestDb::create().await?;
    let url = pg.url.clone();
    let url2 = pg.url.clone();
    overdue_case_is_escalated_once_and_notified(
        move |t| t.replace("sqlite://hub.db", &url),
        move |_| url2.clone(),
    )
    .await?;
    pg.drop_db().await?;
    Ok(())
}

/// kill -9 with notifications pending: the receiver is down, cases move, the hub tries and
/// fails, is killed, restarts, the receiver comes up, and every notification arrives.
async fn kill_nine_loses_no_notification(db_url: Option<String>) -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let deps = env.start_departments().await?;
    let hook = free_addr()?;
    let url = db_url.clone();
    env.config(move |t| {
        let t = match &url {
            Some(u) => t.replace("sqlite://hub.db", u),
            None => t,
        };
        format!("{t}{}", sections(hook))
    })?;
    let raw_url =
        db_url.unwrap_or_else(|| format!("sqlite://{}", env.path().join("hub.db").display()));
    let first = HubProcess::start(&env.config_path(), &env.path().join("hub-1.log"))?;
    let api = Api {
        env: &env,
        base: format!("https://localhost:{}", first.addr()?.port()),
    };
    let (pk, _) = api.report_key().await?;
    let hs = households(&deps, XUZHUANG);
    let a = api.case(&hs[0], &["accept"]).await?;
    let b = api
        .case(
            &hs[1 % hs.len()],
            &["accept", "first-help", "investigation", "decision"],
        )
        .await?;
    // The sender has tried (and failed) at least once: the notifications are pending.
    let mut db = Raw::open(&raw_url).await?;
    let start = Instant::now();
    while db
        .count(
            "SELECT COUNT(*) FROM outbox_deliveries WHERE attempts > 0 AND delivered_ms IS NULL AND webhook = $1",
            "province",
        )
        .await?
        == 0
    {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "no failed attempt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pending = db
        .count("SELECT COUNT(*) FROM outbox WHERE kind <> $1", "none")
        .await?;
    assert_eq!(pending, 3, "two acceptances and one decision enqueued");
    first.signal("-9")?;
    drop(first);

    let second = HubProcess::start(&env.config_path(), &env.path().join("hub-2.log"))?;
    second.addr()?;
    let receiver = Receiver::start(&env, hook, pk).await?;
    let (receiver_ref, a_ref, b_ref) = (&receiver, &a, &b);
    let got = eventually("every notification after the restart", || async move {
        let got = receiver_ref.received();
        let done = kinds_for(&got, a_ref).contains_key("case_accepted")
            && kinds_for(&got, b_ref).contains_key("case_accepted")
            && kinds_for(&got, b_ref).contains_key("case_decided");
        Ok(done.then_some(got))
    })
    .await?;
    assert!(got.iter().all(|r| r.signed), "every delivery is signed");
    // In order per case: b's acceptance before its decision.
    let order: Vec<&str> = got
        .iter()
        .filter(|r| r.body["case_id"] == b.as_str())
        .map(|r| r.kind.as_str())
        .collect();
    let first_decided = order.iter().position(|k| *k == "case_decided");
    let first_accepted = order.iter().position(|k| *k == "case_accepted");
    assert!(first_accepted < first_decided, "{order:?}");
    db.close().await?;
    receiver.stop();
    drop(second);
    for (_, h) in deps.handles {
        h.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_while_notifications_are_pending_loses_none_on_sqlite() -> anyhow::Result<()> {
    kill_nine_loses_no_notification(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_while_notifications_are_pending_loses_none_on_postgres() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    kill_nine_loses_no_notification(Some(pg.url.clone())).await?;
    pg.drop_db().await?;
    Ok(())
}

/// Two hub processes on one PostgreSQL database: one holds the escalation lease and scans; the
/// other does not scan while the holder lives, and takes over once the holder is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_one_postgres_take_turns_on_the_escalation_lease() -> anyhow::Result<()> {
    let pg = PgTestDb::create().await?;
    let env = TestEnv::new()?;
    let deps = env.start_departments().await?;
    let url = pg.url.clone();
    let hook = free_addr()?;
    env.config(move |t| format!("{}{}", t.replace("sqlite://hub.db", &url), sections(hook)))?;
    // Each process gets its own listener ports (the config's are port 0).
    let one = HubProcess::start(&env.config_path(), &env.path().join("one.log"))?;
    let two = HubProcess::start(&env.config_path(), &env.path().join("two.log"))?;
    one.addr()?;
    two.addr()?;
    let scans = |p: &HubProcess| p.messages("escalation scan").len();
    // Wait until one of them has scanned a few times.
    let start = Instant::now();
    while scans(&one) < 3 && scans(&two) < 3 {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "no scans");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (holder, other) = if scans(&one) >= 3 {
        (one, two)
    } else {
        (two, one)
    };
    let before = scans(&holder);
    holder.wait_for("three more scans", |ls| {
        ls.iter()
            .filter(|l| l["fields"]["message"] == "escalation scan")
            .count()
            >= before + 3
    })?;
    assert_eq!(
        scans(&other),
        0,
        "the other replica does not scan while the holder holds the lease"
    );
    assert_eq!(other.messages("escalation lease taken").len(), 0);
    holder.signal("-9")?;
    drop(holder);
    other.wait_for("the take-over", |ls| {
        ls.iter()
            .any(|l| l["fields"]["message"] == "escalation scan")
    })?;
    assert_eq!(other.messages("escalation lease taken").len(), 1);
    drop(other);
    for (_, h) in deps.handles {
        h.shutdown().await;
    }
    pg.drop_db().await?;
    Ok(())
}
