//! `hub demo`: a development PKI, the hub on SQLite, and instructions — everything under one directory.
//!
//! Re-running reuses the PKI and the database; the CRL is republished each start so it stays fresh.
//! The seven simulated departments (connector protocol v1 over mTLS, answering from a deterministic
//! synthetic population) run in the same process; `DIR/departments.toml` lists their URLs and
//! answer-signing keys, and `DIR/samples/` holds sample verification requests and one direct
//! protocol-v1 query per department, and `samples/case-*.json` one filing per tier for `hub
//! client case new`. At start-up [`cases`] opens a realistic set of cases across several
//! townships (some overdue, some whose deadlines run across the National Day holiday) and issues
//! referral slips on some of them; [`live`] then lets the simulated departments answer slips and
//! push signed events while the demo runs.

pub mod cases;
pub mod live;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use connectors::adapter::tls::ServerTls;
use connectors::sim::Fault as SimFault;
use connectors::sim::population::{AwkwardCase, Population, PopulationConfig};
use connectors::sim::server::{SimDepartment, SimDepartmentHandle};
use schemas::protocol::{FactQuery, QuerySubject};
use schemas::{Department, FactKind, Purpose, Role};

use crate::app::Application;
use crate::config::{Config, sample_toml};
use crate::keys::HubKeys;
use crate::pki::{ClientSpec, Pki};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the PKI, keys, config and database.
    #[arg(long, default_value = "./var/demo")]
    pub data_dir: PathBuf,
    /// mTLS API address.
    #[arg(long, default_value = "127.0.0.1:8443", value_parser = crate::cli::parse_addr)]
    pub listen: SocketAddr,
    /// Admin (metrics) address.
    #[arg(long, default_value = "127.0.0.1:9464", value_parser = crate::cli::parse_addr)]
    pub admin_listen: SocketAddr,
    /// Set up the directory and print the instructions, but do not start the hub.
    #[arg(long)]
    pub setup_only: bool,
    /// How long a simulated department takes to answer a referral slip (转办单): `90s`, `3m`, `1h`.
    #[arg(long, default_value = "3m", value_parser = live::parse_delay)]
    pub slip_answer_delay: std::time::Duration,
    /// The share of slips the departments hold until they are overdue and answer late (0-1).
    #[arg(long, default_value = "0.25", value_parser = live::parse_share)]
    pub slip_late_share: f64,
    /// Signed department events (部门事件) the simulated departments push a minute; 0: none.
    #[arg(long, default_value = "6", value_parser = live::parse_rate)]
    pub event_rate: f64,
}

/// The demo's client identities: (file stem, spec).
pub fn demo_clients() -> Vec<(String, ClientSpec)> {
    let mut out = vec![
        (
            "caseworker".to_owned(),
            ClientSpec {
                role: Role::Caseworker,
                organisation: "mz-370811002".into(),
                division: "370811002".into(),
                principal: "cw-xuzhuang-01".into(),
                display_name: "许庄街道经办人 (Xuzhuang caseworker)".into(),
            },
        ),
        (
            "caseworker-other".to_owned(),
            ClientSpec {
                role: Role::Caseworker,
                organisation: "mz-370811005".into(),
                division: "370811005".into(),
                principal: "cw-liying-01".into(),
                display_name: "李营街道经办人 (Liying caseworker)".into(),
            },
        ),
        (
            "county-officer".to_owned(),
            ClientSpec {
                role: Role::Caseworker,
                organisation: "mz-370811".into(),
                division: "370811".into(),
                principal: "officer-rencheng-01".into(),
                display_name: "任城区民政局 (Rencheng county officer)".into(),
            },
        ),
        (
            "auditor".to_owned(),
            ClientSpec {
                role: Role::Auditor,
                organisation: "jw-370800".into(),
                division: "370800".into(),
                principal: "auditor-01".into(),
                display_name: "市纪委监委审计员 (city auditor)".into(),
            },
        ),
        (
            "admin".to_owned(),
            ClientSpec {
                role: Role::Admin,
                organisation: "mz-370800".into(),
                division: "370800".into(),
                principal: "admin-01".into(),
                display_name: "枢纽管理员 (hub operator)".into(),
            },
        ),
        (
            // A second 许庄 caseworker: the demo's seeded cases are filed and moved with it, so
            // they do not spend `caseworker`'s request budget.
            "caseworker-2".to_owned(),
            ClientSpec {
                role: Role::Caseworker,
                organisation: "mz-370811002".into(),
                division: "370811002".into(),
                principal: "cw-xuzhuang-02".into(),
                display_name: "许庄街道经办人二 (second Xuzhuang caseworker)".into(),
            },
        ),
        (
            "caseworker-qufu".to_owned(),
            ClientSpec {
                role: Role::Caseworker,
                organisation: "mz-370881001".into(),
                division: "370881001".into(),
                principal: "cw-lucheng-01".into(),
                display_name: "鲁城街道经办人 (Lucheng, Qufu caseworker)".into(),
            },
        ),
        (
            "caseworker-yanzhou".to_owned(),
            ClientSpec {
                role: Role::Caseworker,
                organisation: "mz-370812001".into(),
                division: "370812001".into(),
                principal: "cw-gulou-01".into(),
                display_name: "鼓楼街道经办人 (Gulou, Yanzhou caseworker)".into(),
            },
        ),
        (
            "caseworker-weishan".to_owned(),
            ClientSpec {
                role: Role::Caseworker,
                organisation: "mz-370826001".into(),
                division: "370826001".into(),
                principal: "cw-xiazhen-01".into(),
                display_name: "夏镇街道经办人 (Xiazhen, Weishan caseworker)".into(),
            },
        ),
        (
            "intake-qr".to_owned(),
            ClientSpec {
                role: Role::Intake,
                organisation: "qr_help".into(),
                division: "370800".into(),
                principal: "qr-help".into(),
                display_name: "济宁市一码求助平台 (QR help service)".into(),
            },
        ),
        (
            "intake".to_owned(),
            ClientSpec {
                role: Role::Intake,
                organisation: "hotline_12345".into(),
                division: "370800".into(),
                principal: "hotline-12345".into(),
                display_name: "济宁市12345热线平台 (12345 hotline platform)".into(),
            },
        ),
        (
            // 村级救助协理员 of 航运新村居委会, a village of 许庄街道: files village reports and sees
            // that village's warnings and reports only.
            "village-assistant".to_owned(),
            ClientSpec {
                role: Role::VillageAssistant,
                organisation: "cw-370811002001".into(),
                division: "370811002001".into(),
                principal: "va-hangyun-01".into(),
                display_name: "航运新村居委会救助协理员 (Hangyun village assistant)".into(),
            },
        ),
    ];
    for d in demo_departments() {
        out.push((
            format!("dept-{}", d.code().replace('_', "-")),
            ClientSpec {
                role: Role::Department,
                organisation: d.code().to_owned(),
                division: "370800".into(),
                principal: format!("{}-connector", d.code().replace('_', "-")),
                display_name: format!("济宁市{} ({})", d.name_zh(), d.code()),
            },
        ));
    }
    out
}

/// The demo's departments: the seven built-ins and those the shipped `policies/departments.toml`
/// adds as data (应急管理 `emergency`), which loading it registers.
pub fn demo_departments() -> Vec<Department> {
    match policies::Departments::load_dir(&policies::PolicyEngine::shipped_dir()) {
        Ok(d) => d.iter().map(|s| s.department).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "policies/departments.toml refused; the demo has the built-in departments only");
            Department::ALL.to_vec()
        }
    }
}

/// Create or reuse everything under `dir`; returns the path of the config file.
pub fn prepare(dir: &Path, listen: SocketAddr, admin: SocketAddr) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pki_dir = dir.join("pki");
    let pki = Pki::open_or_init(&pki_dir, "Jishijiu Hub Demo CA", "jishijiu.jining")?;
    if !pki.cert_path("server").exists() {
        pki.issue_server(
            "server",
            &["localhost".into()],
            &["127.0.0.1".parse()?, "::1".parse()?],
            crate::pki::MAX_SERVER_CERT_DAYS,
        )?;
    }
    for (name, spec) in demo_clients() {
        if !pki.cert_path(&name).exists() {
            pki.issue_client(&name, &spec, 365)?;
        }
    }
    pki.publish_crl(7)?;
    let keys_dir = dir.join("keys");
    if !keys_dir.join("hub-signing.pk8").exists() {
        HubKeys::generate(&keys_dir)?;
    }
    if !keys_dir.join(crate::keys::DATA_KEY_FILE).exists() {
        HubKeys::generate_data_key(&keys_dir)?;
    }
    crate::log::write_vkey_file(
        &keys_dir.join("hub-signing.pk8"),
        &crate::config::LogConfig::default().origin,
        &dir.join("log.vkey"),
    )?;
    let config_path = dir.join("hub.toml");
    std::fs::write(&config_path, sample_toml(listen, admin, "sqlite://hub.db"))?;
    Ok(config_path)
}

/// The path of the running `hub` binary, for the printed commands (they run as printed, whether or
/// not `hub` is on the PATH).
fn hub_binary() -> PathBuf {
    std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .unwrap_or_else(|_| PathBuf::from("hub"))
}

/// What to do next: one set of steps, the README's, with this demo's absolute paths and ports.
/// The block from `P=…` on pastes into a shell as it is (except the `<report id>` placeholders).
pub fn instructions(dir: &Path, listen: SocketAddr, admin: SocketAddr, hub: &Path) -> String {
    let d = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let host = if listen.ip().is_loopback() {
        format!("localhost:{}", listen.port())
    } else {
        listen.to_string()
    };
    format!(
        "\n济时救数据共享核对枢纽 demo — Jishijiu Hub demo\n\
         数据目录 / data directory: {d}\n\
         配置 / config:             {cfg}\n\
         程序 / hub binary:         {hub}\n\
         (the commands below call it by this path; `cargo install --path hub --locked` puts `hub` on the PATH)\n\n\
         下一步 / next steps, in a second terminal once \"hub listening\" appears:\n\n  \
         P={p}; S={s}; HUB={hub}\n  \
         ME=\"--url https://{host} --cacert $P/ca.pem --cert $P/caseworker.pem --key $P/caseworker.key\"\n  \
         AU=\"--url https://{host} --cacert $P/ca.pem --cert $P/auditor.pem --key $P/auditor.key\"\n  \
         HE=\"--url https://{host} --cacert $P/ca.pem --cert $P/dept-health.pem --key $P/dept-health.key\"\n\n\
         身份 / who am I (without a client certificate the handshake is refused):\n  \
         curl --cacert $P/ca.pem --cert $P/caseworker.pem --key $P/caseworker.key https://{host}/v1/whoami\n  \
         curl --cacert $P/ca.pem https://{host}/healthz\n\n\
         核对一户 / check a household (records the letter 核对授权书 and cites it), print the report:\n  \
         $HUB client verify $ME $S/xuzhuang-dibao.json --letter $S/xuzhuang-dibao.letter.json --out {d}/report.json\n  \
         $HUB client report $ME <report id> --print {d}/report.html\n\n\
         先核对后补授权书 / emergency check before the letter, open follow-ups, attach the letter:\n  \
         $HUB client verify $ME $S/xuzhuang-emergency.json\n  \
         $HUB client follow-ups $ME\n  \
         $HUB client attach-letter $ME <report id> --letter $S/xuzhuang-emergency.letter.json\n\n\
         救助案件 / cases: open one at the window, list (the demo opened more, some overdue), show, accept, first help:\n  \
         $HUB client case new $ME $S/case-emergency.json\n  \
         $HUB client case list $ME\n  \
         $HUB client case list $ME --overdue\n  \
         $HUB client case show $ME <case id>\n  \
         $HUB client case accept $ME <case id>\n  \
         $HUB client case help $ME <case id> --kind cash --amount 500.00 --by 许庄街道救助站\n\n\
         转办单 / referral slips: refer the case to health, then as the health department ($HE) list, read, accept and answer it\n\
         (the simulated departments answer the demo's own slips by themselves after --slip-answer-delay, some late):\n  \
         $HUB client case refer $ME <case id> --to health --ask 请落实住院费用医疗救助\n  \
         $HUB client slips list $HE\n  \
         $HUB client slips show $HE <slip id>\n  \
         $HUB client slips accept $HE <slip id>\n  \
         $HUB client slips feedback $HE <slip id> --result done --text 已纳入医疗救助并一站式结算\n\n\
         部门事件 / department events: the simulated departments push signed events (--event-rate a minute);\n\
         those the hub could not place, as civil affairs (民政):\n  \
         curl --cacert $P/ca.pem --cert $P/dept-civil-affairs.pem --key $P/dept-civil-affairs.key https://{host}/v1/events/unmatched\n\n\
         预警 / warnings (监测预警): your township's queue, filled from the departments' events about households\n\
         on civil affairs' monitoring list (the demo pushes 许庄's first ones at start); list, show, make first contact:\n  \
         $HUB client warnings list $ME\n  \
         $HUB client warnings show $ME <warning id>\n  \
         $HUB client warnings acknowledge $ME <warning id>\n\n\
         审计 / auditors: verify the access log, search it, who looked at my data:\n  \
         $HUB audit verify $AU --vkey {d}/log.vkey --save-checkpoint {d}/trusted.checkpoint\n  \
         $HUB audit search $AU --actor cw-xuzhuang-01\n  \
         $HUB audit subject-report --help\n\n\
         运维 / operations:\n  \
         curl http://{admin}/metrics\n  \
         $HUB pki revoke --dir $P caseworker-other && $HUB pki crl --dir $P\n\n\
         Other identities in $P: caseworker-other (李营), caseworker-qufu, caseworker-yanzhou, caseworker-weishan, county-officer (任城区), auditor, admin, intake (the 12345 hotline), intake-qr (一码求助), dept-<department>.\n\
         Port taken? `demo --listen 127.0.0.1:PORT --admin-listen 127.0.0.1:PORT --data-dir DIR`.\n",
        d = d.display(),
        cfg = d.join("hub.toml").display(),
        p = d.join("pki").display(),
        s = d.join("samples").display(),
        hub = hub.display(),
    )
}

/// The running simulated departments and the population they answer from.
pub struct DemoDepartments {
    pub population: Arc<Population>,
    pub handles: BTreeMap<Department, SimDepartmentHandle>,
}

/// Seed and size of the demo population (about 3 people per household).
pub const DEMO_SEED: u64 = 2026;
pub const DEMO_HOUSEHOLDS: usize = 3000;

/// The demo population: [`DEMO_SEED`], [`DEMO_HOUSEHOLDS`], and the near-threshold households
/// planted around each county's 低保 line in the shipped local standards for the population's year
/// (so the demo shows households just above and just below the line the hub compares with).
pub fn demo_population_config() -> PopulationConfig {
    let mut config = PopulationConfig::new(DEMO_SEED, DEMO_HOUSEHOLDS);
    let dir = policies::PolicyEngine::shipped_dir().join("standards");
    match policies::Standards::load(&dir) {
        Ok(standards) => {
            for s in standards.iter().filter(|s| s.year == config.as_of.year()) {
                config
                    .county_thresholds_fen
                    .insert(s.county.as_str().to_owned(), s.dibao_line_fen);
            }
        }
        Err(e) => tracing::warn!(error = %e, "shipped standards unreadable; default thresholds"),
    }
    config
}

fn dept_slug(d: Department) -> String {
    d.code().replace('_', "-")
}

/// Start the seven simulated departments with certificates from the demo CA, stable signing keys
/// under `DIR/departments/`, and write `DIR/departments.toml` and `DIR/samples/`.
pub async fn start_departments(dir: &Path) -> anyhow::Result<DemoDepartments> {
    let pki = Pki::open(&dir.join("pki"))?;
    if !pki.cert_path("hub-outbound").exists() {
        // The identity the hub presents to departments.
        let spec = ClientSpec {
            role: Role::Admin,
            organisation: "mz-370800".into(),
            division: "370800".into(),
            principal: "hub-outbound".into(),
            display_name: "济时救数据共享核对枢纽 (hub)".into(),
        };
        pki.issue_client("hub-outbound", &spec, 365)?;
    }
    let keys_dir = dir.join("departments");
    std::fs::create_dir_all(&keys_dir)?;
    let population = Arc::new(Population::generate(demo_population_config()));
    let mut handles = BTreeMap::new();
    let mut listing = String::from(
        "# Simulated departments of the demo (connector protocol v1 over mTLS).\n\
         # Client certificate: pki/hub-outbound.pem; server CA: pki/ca.pem.\n",
    );
    for d in demo_departments() {
        let server = format!("dept-{}-server", dept_slug(d));
        if !pki.cert_path(&server).exists() {
            pki.issue_server(
                &server,
                &["localhost".into()],
                &["127.0.0.1".parse()?],
                crate::pki::MAX_SERVER_CERT_DAYS,
            )?;
        }
        let key_path = keys_dir.join(format!("{}.pk8", d.code()));
        if !key_path.exists() {
            std::fs::write(&key_path, connectors::adapter::signing::generate_pkcs8()?)?;
        }
        let key = connectors::adapter::signing::key_from_pkcs8(
            &std::fs::read(&key_path)?,
            &key_path.display().to_string(),
        )?;
        let tls = ServerTls::from_files(
            &pki.cert_path(&server),
            &pki.key_path(&server),
            &pki.ca_pem_path(),
        )?;
        let handle =
            SimDepartment::spawn_with_key(d, population.clone(), tls, SimFault::None, key).await?;
        let pk = handle.public_key();
        listing.push_str(&format!(
            "\n[{code}]\nname = \"{zh}\"\nurl = \"{url}\"\nkey_id = \"{kid}\"\npublic_key = \"{pk}\"\n",
            code = d.code(),
            zh = d.name_zh(),
            url = handle.url(),
            kid = pk.key_id,
            pk = hex::encode(pk.public_key),
        ));
        handles.insert(d, handle);
    }
    std::fs::write(dir.join("departments.toml"), listing)?;
    write_samples(dir, &population)?;
    Ok(DemoDepartments {
        population,
        handles,
    })
}

/// The `[departments]` section of `hub.toml` for the running simulated departments: their URLs,
/// the demo CA (paths relative to the data directory) and their answer-signing keys.
pub fn departments_section(deps: &DemoDepartments) -> String {
    let mut out = String::from(
        "\n[departments]\noutbound_cert = \"pki/hub-outbound.pem\"\noutbound_key = \"pki/hub-outbound.key\"\n",
    );
    for (d, h) in &deps.handles {
        out.push_str(&format!(
            "\n[departments.{code}]\nurl = \"{url}\"\nca = \"pki/ca.pem\"\npublic_key = \"{pk}\"\n",
            code = d.code(),
            url = h.url(),
            pk = hex::encode(h.public_key().public_key),
        ));
    }
    out
}

/// Append [`departments_section`] to `DIR/hub.toml` (after any earlier one is removed).
pub fn write_departments_section(dir: &Path, deps: &DemoDepartments) -> anyhow::Result<PathBuf> {
    let path = dir.join("hub.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let base = text
        .split_once("\n[departments]\n")
        .map_or(text.as_str(), |(b, _)| b)
        .trim_end()
        .to_owned();
    std::fs::write(&path, format!("{base}\n{}", departments_section(deps)))
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(path)
}

/// Sample verification requests (one per interesting household) and one protocol-v1 query per
/// department, under `DIR/samples/`.
fn write_samples(dir: &Path, population: &Population) -> anyhow::Result<()> {
    let samples = dir.join("samples");
    std::fs::create_dir_all(samples.join("queries"))?;
    let in_township = |code: &'static str| {
        population
            .households()
            .iter()
            .filter(move |h| h.township_code().as_str() == code)
            .map(|h| h.id)
    };
    let near = population
        .households_with(|c| matches!(c, AwkwardCase::IncomeNearThreshold { .. }))
        .find(|h| h.township_code().as_str().starts_with("370811"))
        .or_else(|| {
            population
                .households_with(|c| matches!(c, AwkwardCase::IncomeNearThreshold { .. }))
                .next()
        })
        .map(|h| h.id);
    let death = population
        .households_with(|c| matches!(c, AwkwardCase::RecentDeath { .. }))
        .next()
        .map(|h| h.id);
    let split = population
        .households_with(|c| matches!(c, AwkwardCase::SplitAcrossTownships { .. }))
        .next()
        .map(|h| h.id);
    let mut chosen = vec![
        (
            "xuzhuang-dibao",
            in_township("370811002").next(),
            "dibao_application",
            "normal",
        ),
        (
            "liying-dibao",
            in_township("370811005").next(),
            "dibao_application",
            "normal",
        ),
        ("near-threshold", near, "dibao_application", "normal"),
        ("recent-death", death, "annual_review", "normal"),
        ("split-household", split, "dibao_application", "normal"),
        (
            "xuzhuang-emergency",
            in_township("370811002").nth(1),
            "temporary_assistance",
            "emergency",
        ),
    ];
    chosen.retain(|(_, id, _, _)| id.is_some());
    for (i, (name, id, purpose, urgency)) in chosen.iter().enumerate() {
        let household = population.household_declaration(id.expect("retained"));
        let request = serde_json::json!({
            "case_ref": format!("JN-DEMO-2026-{:04}", i + 1),
            "purpose": purpose,
            "urgency": urgency,
            "household": household,
        });
        std::fs::write(
            samples.join(format!("{name}.json")),
            serde_json::to_vec_pretty(&request)?,
        )?;
        // The household's authorization letter (核对授权书) for `POST /v1/authorizations`; cite the
        // returned id as `authorization_id` in the request above.
        let ids: Vec<&str> = household
            .members
            .iter()
            .map(|m| m.resident_id.as_str())
            .collect();
        let letter = serde_json::json!({
            "registered_division": household.registered_division.as_str(),
            "signed_by": household.applicant().map(|a| vec![a.resident_id.as_str()]).unwrap_or_default(),
            "members": ids,
            "purposes": [purpose],
            "valid_until": (time::OffsetDateTime::now_utc().date() + time::Duration::days(365)).to_string(),
            "letter_sha256": hex::encode(ring::digest::digest(&ring::digest::SHA256, name.as_bytes())),
        });
        std::fs::write(
            samples.join(format!("{name}.letter.json")),
            serde_json::to_vec_pretty(&letter)?,
        )?;
    }
    // One direct protocol-v1 query per department, for the sample household of 许庄街道.
    if let Some(id) = in_township("370811002").next() {
        let household = population.household_declaration(id);
        for d in Department::ALL {
            let query = FactQuery {
                protocol: Default::default(),
                request_id: uuid::Uuid::new_v4(),
                department: d,
                purpose: Purpose::DibaoApplication,
                authorization_ref: "AUTH-DEMO-0001".into(),
                as_of: population.config.as_of,
                issued_at: time::OffsetDateTime::now_utc()
                    .replace_nanosecond(0)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                subjects: household
                    .members
                    .iter()
                    .enumerate()
                    .map(|(i, m)| QuerySubject {
                        subject_ref: format!("m{}", i + 1),
                        resident_id: m.resident_id.clone(),
                    })
                    .collect(),
                fact_kinds: FactKind::served_by(d).collect(),
            };
            std::fs::write(
                samples.join("queries").join(format!("{}.json", d.code())),
                serde_json::to_vec_pretty(&query)?,
            )?;
        }
    }
    cases::write_case_samples(&samples, population)?;
    Ok(())
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config_path = prepare(&args.data_dir, args.listen, args.admin_listen)?;
    // Readable logs in the demo's terminal, written into its hub.toml, which is then read like in
    // production (colour only when stderr is a terminal).
    let toml = std::fs::read_to_string(&config_path)?
        .replace(r#"log_format = "json""#, r#"log_format = "pretty""#);
    std::fs::write(&config_path, toml)?;
    let config = Config::load(&config_path)?;
    println!(
        "{}",
        instructions(
            &args.data_dir,
            args.listen,
            args.admin_listen,
            &hub_binary()
        )
    );
    if args.setup_only {
        return Ok(());
    }
    let _telemetry = crate::telemetry::init(&config.telemetry)?;
    let departments = start_departments(&args.data_dir).await?;
    print_departments(&args.data_dir, &departments);
    // The hub is built after the departments start, with their URLs and keys in its config.
    write_departments_section(&args.data_dir, &departments)?;
    let config = Config::load(&config_path)?;
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    let db = app.state().store.db();
    let server = tokio::spawn(app.run_until_stopped(crate::cli::shutdown_signal()));
    let seeded = cases::seed(&args.data_dir, addr, &db, &departments.population).await;
    println!(
        "演示案件 / demo cases: {} opened, {} already there (许庄、李营、曲阜鲁城、兖州鼓楼、微山夏镇); {} referral slips issued",
        seeded.opened, seeded.already, seeded.slips
    );
    for p in &seeded.problems {
        println!("  未能登记 / not seeded: {p}");
    }
    let monitored = live::monitored_households(&departments.population);
    match live::load_monitoring(&args.data_dir, addr, &departments.population, &monitored).await {
        Ok(n) => println!("监测名单 / monitoring list: {n} households (民政 civil affairs)"),
        Err(e) => println!("  监测名单未能导入 / monitoring list not loaded: {e:#}"),
    }
    live::spawn(
        &args.data_dir,
        addr,
        departments.population.clone(),
        monitored,
        live::LiveConfig {
            slip_answer_delay: args.slip_answer_delay,
            slip_late_share: args.slip_late_share,
            event_rate_per_minute: args.event_rate,
        },
    );
    println!(
        "模拟部门 / simulated departments: answer referral slips after {}s ({}% late); push {} signed events a minute",
        args.slip_answer_delay.as_secs_f64(),
        (args.slip_late_share * 100.0).round(),
        args.event_rate
    );
    println!("hub listening on https://{addr} (Ctrl-C to stop; next steps above)\n");
    server.await?;
    for (_, h) in departments.handles {
        h.shutdown().await;
    }
    Ok(())
}

fn print_departments(dir: &Path, deps: &DemoDepartments) {
    let d = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let p = d.join("pki");
    println!(
        "模拟部门 / simulated departments ({} people in {} households, seed {DEMO_SEED}):",
        deps.population.persons().len(),
        deps.population.households().len()
    );
    for (dept, h) in &deps.handles {
        println!("  {:<14} {:<10} {}", dept.code(), dept.name_zh(), h.url());
    }
    if let Some(labor) = deps.handles.get(&Department::Labor) {
        println!(
            "\nAsk a department directly (protocol v1, signed answer):\n\n  \
             curl --cacert {p}/ca.pem --cert {p}/hub-outbound.pem --key {p}/hub-outbound.key \\\n    \
             -H 'content-type: application/json' --data @{s}/queries/labor.json {url}/jsj-connector/1/query\n\n\
             Sample verification requests: {s}/*.json; department keys: {d}/departments.toml\n",
            p = p.display(),
            s = d.join("samples").display(),
            d = d.display(),
            url = labor.url(),
        );
    }
}
