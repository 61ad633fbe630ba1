//! The `connector` binary end to end: `keygen` writes a key, `sim-export` writes a SQLite database
//! and mapping, `check` validates them, `serve` answers protocol v1 over mTLS with the key whose
//! public half `pubkey` printed.

mod adapter_support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_support::*;
use connectors::sim::pki::SimPki;
use connectors::sim::{Population, PopulationConfig, PopulationSource};
use schemas::protocol::receive_answer;
use schemas::{Department, DepartmentKey, FactKind};

const BIN: &str = env!("CARGO_BIN_EXE_connector");

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run connector");
    assert!(
        out.status.success(),
        "connector {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_a_sqlite_department() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let (key, db, mapping) = (p("signing.key"), p("labor.db"), p("labor.toml"));

    let printed = run(&["keygen", "--out", &key]);
    assert!(printed.contains("key_id     = ed25519:"), "{printed}");
    // keygen never overwrites a key.
    let again = Command::new(BIN)
        .args(["keygen", "--out", &key])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    let pubkey = run(&["pubkey", "--signing-key", &key]);
    let hex_line = pubkey
        .lines()
        .find(|l| l.starts_with("public_hex"))
        .unwrap();
    let mut pk = [0u8; 32];
    hex::decode_to_slice(hex_line.rsplit(' ').next().unwrap(), &mut pk).unwrap();
    let department_key = DepartmentKey::new(pk);

    run(&[
        "sim-export",
        "--seed",
        "77",
        "--households",
        "150",
        "--department",
        "labor",
        "--sqlite",
        &db,
        "--mapping-out",
        &mapping,
    ]);
    let checked = run(&[
        "check",
        "--mapping",
        &mapping,
        "--database-url",
        &format!("sqlite://{db}"),
    ]);
    assert!(
        checked.contains("mapping OK: labor serves 5 fact kind(s)"),
        "{checked}"
    );

    let pki = SimPki::generate().unwrap();
    let tls = pki.server_tls(Department::Labor).unwrap();
    let leaf_pem = pem_of(&tls.cert_chain[0]);
    std::fs::write(p("server.pem"), leaf_pem).unwrap();
    let rustls_pki_types::PrivateKeyDer::Pkcs8(k) = &tls.key else {
        panic!("pkcs8")
    };
    std::fs::write(
        p("server.key"),
        pem_block("PRIVATE KEY", k.secret_pkcs8_der()),
    )
    .unwrap();
    std::fs::write(p("hub-ca.pem"), pki.hub_ca.cert_pem()).unwrap();

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _child = Child(
        Command::new(BIN)
            .args([
                "serve",
                "--mapping",
                &mapping,
                "--database-url",
                &format!("sqlite://{db}"),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--tls-cert",
                &p("server.pem"),
                "--tls-key",
                &p("server.key"),
                "--client-ca",
                &p("hub-ca.pem"),
                "--signing-key",
                &key,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("https://localhost:{port}");
    let client = hub_client(&pki, Duration::from_secs(10));
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "connector did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let pop = Arc::new(Population::generate(PopulationConfig::new(77, 150)));
    let person = known_person(&pop, Department::Labor);
    let kinds: Vec<FactKind> = FactKind::served_by(Department::Labor).collect();
    let q = query(
        Department::Labor,
        &[("m1", &person.resident_id)],
        &kinds,
        pop.config.as_of,
    );
    let (status, body) = post(&client, &base, &q).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer = receive_answer(&body, &q, &[department_key]).unwrap().answer;
    let expected = PopulationSource::new(pop.clone(), Department::Labor).outcome(
        &person.resident_id,
        &kinds,
        pop.config.as_of,
    );
    assert_eq!(answer.results[0].outcome, expected);
}

fn pem_of(cert: &rustls_pki_types::CertificateDer<'_>) -> String {
    pem_block("CERTIFICATE", cert.as_ref())
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A department added as data (应急管理 `emergency`, with its declared fact kind in the shipped
/// `departments.toml`): with `--policies` the binary exports, checks and lists its kind; without,
/// the mapping is refused naming the field.
#[test]
fn the_binary_reads_departments_toml_for_a_department_added_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    let (db, mapping) = (p("emergency.db"), p("emergency.toml"));
    let policies = policies::PolicyEngine::shipped_dir().display().to_string();
    run(&[
        "sim-export",
        "--seed",
        "77",
        "--households",
        "50",
        "--department",
        "emergency",
        "--policies",
        &policies,
        "--sqlite",
        &db,
        "--mapping-out",
        &mapping,
    ]);
    let checked = run(&[
        "check",
        "--mapping",
        &mapping,
        "--policies",
        &policies,
        "--database-url",
        &format!("sqlite://{db}"),
    ]);
    assert!(
        checked.contains("mapping OK: emergency serves 1 fact kind(s)")
            && checked.contains("emergency.disaster_relief_received_12m"),
        "{checked}"
    );
    let without = Command::new(BIN)
        .args(["check", "--mapping", &mapping])
        .output()
        .unwrap();
    assert!(!without.status.success());
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(
        stderr.contains("department: \"emergency\" is not a department code"),
        "{stderr}"
    );
    // A bad departments.toml stops it, naming the file and key.
    let bad = dir.path().join("departments.toml");
    std::fs::write(
        &bad,
        "[department.emergency]\nname_zh = \"应急管理\"\nname_en = \"emergency management\"\n[department.emergency.fact_kinds.\"emergency.x\"]\nvalue_type = \"money_fen\"\nunit = \"dm2\"\nperiod = \"as_of\"\nvalidity_days = 30\nname_zh = \"x\"\nname_en = \"x\"\n",
    )
    .unwrap();
    let refused = Command::new(BIN)
        .args([
            "check",
            "--mapping",
            &mapping,
            "--policies",
            &p("departments.toml"),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("department.emergency.fact_kinds.\"emergency.x\".unit"),
        "{stderr}"
    );
}
