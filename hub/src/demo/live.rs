//! The demo while it runs: the simulated departments act on the hub like real ones would, each
//! with its own demo client certificate (`pki/dept-<department>.pem`), through the public API
//! only, so Cedar decides and the access log records every step.
//!
//! - **Referral slips (转办单, issue 11 item 9).** Each department that receives slips polls
//!   `GET /v1/slips`, accepts (签收) a slip after half of `--slip-answer-delay` and answers it
//!   (反馈: result, text, an amount where the kind pays one) after the whole delay. A share of
//!   the slips (`--slip-late-share`, drawn from the slip id, so a restart draws the same) is held
//!   until its due date has passed and only then answered: answered late, after the escalation
//!   scan has put it in the county's queue. Slips issued with the `caseworker` certificate (the
//!   identity of the printed next steps) are left to the newcomer, who answers them as
//!   `dept-health` etc. with `hub client slips`.
//! - **Department events (部门事件, issue 12 item 7).** At `--event-rate` events a minute (0: none)
//!   a department pushes a signed event (`POST /v1/events`, signed with the key the demo
//!   published for it in `departments.toml`) about the synthetic population: mostly about heads
//!   of households civil affairs put on the monitoring list at start-up ([`load_monitoring`]),
//!   which the hub places, and about one in seven about people it cannot place (kept as
//!   unmatched, `GET /v1/events/unmatched`). Disaster victims (`emergency.disaster_victim`) come
//!   from emergency management (应急管理, `dept-emergency`), the department the shipped
//!   `policies/departments.toml` adds as data; the rule `disaster_victim` makes them emergency-tier
//!   warnings (急难, 2 hours).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connectors::sim::population::{Person, Population};
use connectors::sim::rng::SimRng;
use schemas::Department;
use schemas::events::{DepartmentEvent, EventSubject, SignedEvent};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::cases::demo_client;

/// How the demo's departments behave while it runs.
#[derive(Debug, Clone, Copy)]
pub struct LiveConfig {
    pub slip_answer_delay: Duration,
    pub slip_late_share: f64,
    pub event_rate_per_minute: f64,
}

/// The principal of the demo identity the printed next steps use (`pki/caseworker.pem`).
pub const NEWCOMER: &str = "cw-xuzhuang-01";

/// `90s`, `3m`, `1h` or plain seconds.
pub fn parse_delay(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = match s
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = n
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("`{s}`: not a delay like 90s, 3m or 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: not a delay like 90s, 3m or 1h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}`: too long"))
}

/// A share between 0 and 1.
pub fn parse_share(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| (0.0..=1.0).contains(v))
        .ok_or_else(|| format!("`{s}`: a share between 0 and 1, like 0.25"))
}

/// Events a minute, 0 to 6000.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| (0.0..=6000.0).contains(v))
        .ok_or_else(|| format!("`{s}`: events a minute between 0 and 6000, like 6"))
}

fn slug(d: Department) -> String {
    d.code().replace('_', "-")
}

/// Start the departments' tasks; they run until the process ends.
pub fn spawn(
    dir: &Path,
    hub: SocketAddr,
    population: Arc<Population>,
    monitored: Vec<usize>,
    cfg: LiveConfig,
) {
    for d in Department::ALL {
        if schemas::cases::SlipKind::ALL
            .iter()
            .any(|k| k.department() == Some(d))
        {
            tokio::spawn(answer_slips(dir.to_owned(), hub, d, cfg));
        }
    }
    if cfg.event_rate_per_minute > 0.0 {
        tokio::spawn(push_events(
            dir.to_owned(),
            hub,
            population,
            monitored,
            cfg.event_rate_per_minute,
        ));
    }
}

// ==== referral slips ====

/// Deterministic draw in [0, 1) from a slip id: is it one of the late ones?
fn draw(id: &str) -> f64 {
    let d = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// What a department reports back on a slip of `kind`: result, text, amount (fen).
fn feedback(kind: &str, rng: &mut SimRng) -> Value {
    let (text, amount) = match kind {
        "medical_assistance" => (
            "已按规定纳入医疗救助，住院自付费用经一站式结算予以报销",
            Some(rng.range(80_000, 600_000)),
        ),
        "education_aid" => (
            "已落实学费减免，并发放国家助学金",
            Some(rng.range(100_000, 300_000)),
        ),
        "housing" => (
            "已完成房屋安全鉴定，纳入农村危房改造计划并先行加固",
            Some(rng.range(500_000, 2_000_000)),
        ),
        "employment" => ("已办理失业登记，推荐公益性岗位两个并安排技能培训", None),
        "legal_aid" => ("已指派法律援助律师，代为申请工伤认定和赔偿", None),
        "rehabilitation" => (
            "已完成残疾评定，办理残疾证并纳入康复救助",
            Some(rng.range(50_000, 200_000)),
        ),
        _ => ("已核实并办理", None),
    };
    let partly = rng.chance(0.2);
    let mut body = json!({
        "result": if partly { "partly_done" } else { "done" },
        "text": if partly { format!("{text}；其余事项正在办理") } else { text.to_owned() },
    });
    if let Some(a) = amount {
        body["amount_fen"] = Value::from(a);
    }
    body
}

async fn answer_slips(dir: PathBuf, hub: SocketAddr, d: Department, cfg: LiveConfig) {
    let who = format!("dept-{}", slug(d));
    let (http, base) = match demo_client(&dir, hub, &who) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(department = d.code(), error = %e, "demo department cannot answer slips");
            return;
        }
    };
    let delay = cfg.slip_answer_delay;
    let poll = (delay / 4).clamp(Duration::from_millis(500), Duration::from_secs(15));
    let mut first_seen: HashMap<String, Instant> = HashMap::new();
    // The department's position (its old enum discriminant), so the draws stay as they were.
    let n = Department::ALL
        .iter()
        .position(|x| *x == d)
        .unwrap_or(Department::ALL.len());
    let mut rng = SimRng::new(super::DEMO_SEED ^ n as u64);
    loop {
        tokio::time::sleep(poll).await;
        for state in ["issued", "accepted"] {
            let Ok(r) = http
                .get(format!("{base}/v1/slips?state={state}&limit=200"))
                .send()
                .await
            else {
                continue;
            };
            let list: Value = r.json().await.unwrap_or_default();
            for slip in list["slips"].as_array().into_iter().flatten() {
                let (Some(id), Some(kind)) = (slip["id"].as_str(), slip["kind"].as_str()) else {
                    continue;
                };
                if slip["issued_by"]
                    .as_str()
                    .is_some_and(|b| b.rsplit('/').next() == Some(NEWCOMER))
                {
                    continue;
                }
                let age = first_seen
                    .entry(id.to_owned())
                    .or_insert_with(Instant::now)
                    .elapsed();
                let late = draw(id) < cfg.slip_late_share;
                if late && slip["overdue"] != true {
                    // Held until its due date has passed: answered late.
                    continue;
                }
                if state == "issued" && age >= delay / 2 {
                    let _ = http
                        .post(format!("{base}/v1/slips/{id}/accept"))
                        .json(&json!({}))
                        .send()
                        .await;
                }
                if age >= delay {
                    let r = http
                        .post(format!("{base}/v1/slips/{id}/feedback"))
                        .json(&feedback(kind, &mut rng))
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status() == 200) {
                        let mark = if slip["overdue"] == true {
                            "（超期反馈 / answered late）"
                        } else {
                            ""
                        };
                        println!(
                            "模拟部门 / simulated {}：已反馈转办单 / answered slip {id}{mark}",
                            d.name_zh()
                        );
                        first_seen.remove(id);
                    }
                }
            }
        }
    }
}

// ==== the monitoring list ====

/// Households civil affairs puts on the monitoring list at start-up: the first three of each
/// township (about one household in seven); returns their indexes in `population.households()`.
pub fn monitored_households(population: &Population) -> Vec<usize> {
    let mut per_township: HashMap<usize, usize> = HashMap::new();
    population
        .households()
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            let n = per_township.entry(h.township).or_default();
            *n += 1;
            *n <= 3
        })
        .map(|(i, _)| i)
        .collect()
}

/// Upload [`monitored_households`] as civil affairs (`POST /v1/monitoring/uploads`, JSON lines);
/// idempotent, so a re-run changes nothing. Returns how many households the list holds.
pub async fn load_monitoring(
    dir: &Path,
    hub: SocketAddr,
    population: &Population,
    monitored: &[usize],
) -> anyhow::Result<u64> {
    const CATEGORIES: [(&str, &str); 3] = [
        ("dibao_edge", "家庭人均收入略高于低保标准"),
        ("expenditure_hardship", "医疗、教育等刚性支出过大"),
        ("poverty_risk", "因病因灾存在返贫致贫风险"),
    ];
    let mut lines = String::new();
    for (n, &i) in monitored.iter().enumerate() {
        let h = &population.households()[i];
        let head = population.person(h.applicant());
        let (category, reason) = CATEGORIES[n % CATEGORIES.len()];
        lines.push_str(&serde_json::to_string(&json!({
            "category": category,
            "resident_id": head.resident_id.as_str(),
            "township": h.township_code().as_str(),
            "since": "2026-03-01",
            "reason": reason,
        }))?);
        lines.push('\n');
    }
    let (http, base) = demo_client(dir, hub, "dept-civil-affairs")?;
    let r = http
        .post(format!("{base}{}", crate::warning::monitoring::UPLOAD_PATH))
        .header("content-type", "application/x-ndjson")
        .body(lines)
        .send()
        .await?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or_default();
    anyhow::ensure!(
        status == 200 || status == 201,
        "monitoring upload: HTTP {status} {}",
        v["error"]["code"]
    );
    Ok(monitored.len() as u64)
}

// ==== department events ====

/// One event about `person` (of a monitored household or not) that fits them; `None` when the
/// kind drawn does not fit (a child's school, say, for a household without one).
fn event_for<'a>(
    rng: &mut SimRng,
    population: &'a Population,
    household: usize,
    matched: bool,
    now: OffsetDateTime,
) -> Option<Drawn<'a>> {
    let h = &population.households()[household];
    let head = population.person(h.applicant());
    let today = now.to_offset(time::macros::offset!(+8)).date();
    // When it happened (within the last two weeks); the details' date is its day in Beijing.
    let occurred =
        now - time::Duration::days(rng.range(0, 14)) - time::Duration::hours(rng.range(1, 8));
    let on = occurred
        .to_offset(time::macros::offset!(+8))
        .date()
        .to_string();
    let pick = rng.below(if matched { 11 } else { 12 });
    let (d, kind, person, details) = match pick {
        0..=2 => {
            let total = rng.range(1_000_000, 20_000_000);
            let share = rng.range(20, 50);
            (
                Department::Health,
                "health.hospitalisation",
                head,
                json!({
                    "admitted_on": on,
                    "total_fen": total,
                    "out_of_pocket_fen": total * share / 100,
                }),
            )
        }
        3 => (
            Department::Health,
            "health.serious_illness_diagnosed",
            head,
            json!({ "diagnosed_on": on }),
        ),
        4 => (
            Department::Labor,
            "labor.unemployment_registered",
            head,
            json!({ "registered_on": on }),
        ),
        5 => (
            Department::Labor,
            "labor.benefit_ended",
            head,
            json!({ "ended_on": on }),
        ),
        6 => {
            let grades = ["1", "2", "3", "4"];
            let categories = ["physical", "visual", "hearing", "intellectual", "mental"];
            (
                Department::Disability,
                "disability.certificate_issued",
                head,
                json!({
                    "category": categories[rng.below(categories.len() as u64) as usize],
                    "grade": grades[rng.below(grades.len() as u64) as usize],
                }),
            )
        }
        7 => {
            // The oldest member: a death in the household.
            let oldest = population.members(h.id).min_by_key(|p| p.birth)?;
            (
                Department::CivilAffairs,
                "civil_affairs.death_registered",
                oldest,
                json!({ "died_on": on }),
            )
        }
        8 => {
            let grades = ["c", "d"];
            (
                Department::Housing,
                "housing.dangerous_house",
                head,
                json!({
                    "assessed_on": on,
                    "grade": grades[rng.below(2) as usize],
                }),
            )
        }
        9 => (
            Department::Justice,
            "justice.released",
            head,
            json!({ "released_on": on }),
        ),
        10 => {
            // A disaster (flood, storm, …) recorded by emergency management, when the policies
            // have it (departments.toml).
            let disasters = ["flood", "rainstorm", "hail", "fire"];
            (
                Department::from_code("emergency")?,
                "emergency.disaster_victim",
                head,
                json!({
                    "disaster": disasters[rng.below(disasters.len() as u64) as usize],
                    "house_damaged": rng.chance(0.5),
                }),
            )
        }
        _ => {
            // A child of school age who left school (about a household member, not its head).
            let child = population
                .members(h.id)
                .find(|p| (12..=17).contains(&p.age_on(today)))?;
            (
                Department::Education,
                "education.left_school",
                child,
                json!({ "left_on": on, "stage": "junior_secondary" }),
            )
        }
    };
    let details = details.as_object()?.clone();
    Some(Drawn {
        department: d,
        kind,
        person,
        occurred,
        details,
    })
}

/// An event drawn for the population, before it is signed.
struct Drawn<'a> {
    department: Department,
    kind: &'static str,
    person: &'a Person,
    occurred: OffsetDateTime,
    details: serde_json::Map<String, Value>,
}

async fn push_events(
    dir: PathBuf,
    hub: SocketAddr,
    population: Arc<Population>,
    monitored: Vec<usize>,
    per_minute: f64,
) {
    let mut clients = HashMap::new();
    let mut keys = HashMap::new();
    for d in Department::registered() {
        let path = dir.join("departments").join(format!("{}.pk8", d.code()));
        let key = std::fs::read(&path).ok().and_then(|b| {
            connectors::adapter::signing::key_from_pkcs8(&b, &path.display().to_string()).ok()
        });
        let client = demo_client(&dir, hub, &format!("dept-{}", slug(d))).ok();
        if let (Some(k), Some(c)) = (key, client) {
            keys.insert(d, k);
            clients.insert(d, c);
        }
    }
    // The opening burst: the newcomer's township gets its warnings at once.
    for drawn in opening_events(&population, &monitored, OffsetDateTime::now_utc()) {
        send_event(drawn, &keys, &clients).await;
    }
    let households = population.households().len() as u64;
    let mut rng =
        SimRng::new(OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 ^ super::DEMO_SEED);
    let interval = Duration::from_secs_f64(60.0 / per_minute);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = OffsetDateTime::now_utc();
        // Six in seven about a monitored household's head; the others about anyone, whom the hub
        // cannot place unless they happen to be on the list or have a case.
        let matched = !monitored.is_empty() && !rng.chance(1.0 / 7.0);
        let household = if matched {
            monitored[rng.below(monitored.len() as u64) as usize]
        } else {
            rng.below(households) as usize
        };
        let Some(drawn) = event_for(&mut rng, &population, household, matched, now) else {
            continue;
        };
        send_event(drawn, &keys, &clients).await;
    }
}

/// The township of the identity the printed next steps use (许庄街道).
pub const NEWCOMER_TOWNSHIP: &str = "370811002";

/// Events pushed once at start-up, so that `hub client warnings list` shows warnings in the
/// newcomer's queue (许庄街道) at once: for each of its monitored households a hospital stay with
/// out-of-pocket costs above the county threshold (urgent), and for the first one an unemployment
/// registration as well (a second signal within 90 days: its tier is raised).
fn opening_events<'a>(
    population: &'a Population,
    monitored: &[usize],
    now: OffsetDateTime,
) -> Vec<Drawn<'a>> {
    let mut out = Vec::new();
    let occurred = now - time::Duration::days(2);
    let on = occurred
        .to_offset(time::macros::offset!(+8))
        .date()
        .to_string();
    let mine = monitored
        .iter()
        .map(|&i| &population.households()[i])
        .filter(|h| h.township_code().as_str() == NEWCOMER_TOWNSHIP);
    for (n, h) in mine.enumerate() {
        let head = population.person(h.applicant());
        let total: i64 = 6_000_000 + 1_000_000 * n as i64;
        let details = json!({
            "admitted_on": on,
            "total_fen": total,
            "out_of_pocket_fen": total * 45 / 100,
        });
        out.push(Drawn {
            department: Department::Health,
            kind: "health.hospitalisation",
            person: head,
            occurred,
            details: details.as_object().cloned().unwrap_or_default(),
        });
        if n == 0 {
            out.push(Drawn {
                department: Department::Labor,
                kind: "labor.unemployment_registered",
                person: head,
                occurred,
                details: json!({ "registered_on": on })
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// Sign `drawn` with its department's key and push it with its certificate; a refusal is logged.
async fn send_event(
    drawn: Drawn<'_>,
    keys: &HashMap<Department, ring::signature::Ed25519KeyPair>,
    clients: &HashMap<Department, (reqwest::Client, String)>,
) {
    let Drawn {
        department: d,
        kind,
        person,
        occurred,
        details,
    } = drawn;
    let (Some(key), Some((http, base))) = (keys.get(&d), clients.get(&d)) else {
        return;
    };
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let event = DepartmentEvent {
        protocol: Default::default(),
        event_id: uuid::Uuid::new_v4(),
        department: d.code().to_owned(),
        kind: kind.to_owned(),
        occurred_at: occurred.replace_nanosecond(0).unwrap_or(occurred),
        issued_at: now,
        subject: EventSubject {
            resident_id: person.resident_id.clone(),
        },
        details,
    };
    let Ok(signed) = SignedEvent::sign(event, key) else {
        return;
    };
    match http
        .post(format!("{base}{}", schemas::events::EVENTS_PATH))
        .json(&signed)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => {
            let status = r.status();
            let body: Value = r.json().await.unwrap_or_default();
            tracing::warn!(%status, code = %body["error"]["code"], field = %body["error"]["field"], kind, "demo event refused");
        }
        Err(e) => tracing::warn!(error = %e, "demo event not sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_shares_and_rates_parse() {
        assert_eq!(parse_delay("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_delay("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_delay("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_delay("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_delay("soon").is_err());
        assert!(parse_delay("-1s").is_err());
        assert_eq!(parse_share("0.25"), Ok(0.25));
        assert!(parse_share("1.5").is_err());
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert!(parse_rate("-3").is_err());
    }

    #[test]
    fn the_late_draw_is_a_share() {
        let late = (0..1000)
            .filter(|i| draw(&format!("slip-{i}")) < 0.25)
            .count();
        assert!((150..350).contains(&late), "{late}");
    }
}
