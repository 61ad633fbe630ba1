//! The demo's cases (救助案件): sample filings to send with `hub client case new`, and a realistic
//! set of cases opened at start-up across several townships of Jining, so a newcomer sees the
//! closed loop and its statutory clocks without typing anything.
//!
//! Every seeded case is filed and moved through the hub's own API over mTLS, by the identity whose
//! job it is (the 12345 platform and the 一码求助 service through their intake certificates, the
//! township caseworkers at the window and for every move), so Cedar decides and the access log
//! records each step. Only then are its times set back (filing, acceptance, help…) by writing the
//! case's rows directly at demo setup — no public API lets a caller back-date — so that some
//! clocks are overdue and some deadlines run across the 2026 Mid-Autumn and National Day holidays
//! (accepted late September 2026). The access-log entries keep the real time of the calls.
//!
//! Re-running the demo on the same directory files nothing twice: each filing carries an
//! `Idempotency-Key` (`demo-case-NN`), and a case the hub already has is left as it is.

use crate::store::BeginWrite as _;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use connectors::sim::population::Population;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::audit::Remote;
use crate::store::{Db, StoreError, on_db};

const BEIJING: UtcOffset = time::macros::offset!(+8);

/// 许庄街道 (任城区), the demo caseworker's township.
pub const XUZHUANG: &str = "370811002";
/// 李营街道 (任城区).
pub const LIYING: &str = "370811005";
/// 鲁城街道 (曲阜市).
pub const LUCHENG: &str = "370881001";
/// 鼓楼街道 (兖州区).
pub const GULOU: &str = "370812001";
/// 夏镇街道 (微山县).
pub const XIAZHEN: &str = "370826001";

/// The demo caseworker (certificate file stem) of each seeded township.
fn caseworker_of(township: &str) -> &'static str {
    match township {
        XUZHUANG => "caseworker-2",
        LIYING => "caseworker-other",
        LUCHENG => "caseworker-qufu",
        GULOU => "caseworker-yanzhou",
        XIAZHEN => "caseworker-weishan",
        _ => "county-officer",
    }
}

/// When something happened: so long before the demo starts, or at a fixed Beijing time.
#[derive(Debug, Clone, Copy)]
enum When {
    MinutesAgo(i64),
    /// `YYYY-MM-DD HH:MM`, Beijing time.
    At(&'static str),
}

impl When {
    fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            When::MinutesAgo(m) => now - Duration::minutes(m),
            When::At(s) => {
                let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
                PrimitiveDateTime::parse(s, &f)
                    .map(|t| t.assume_offset(BEIJING))
                    .unwrap_or(now)
            }
        }
    }
}

const HOUR: i64 = 60;
const DAY: i64 = 24 * HOUR;

/// One move of a seeded case.
#[derive(Debug, Clone, Copy)]
enum Step {
    Accept,
    Transfer(&'static str),
    Help { kind: &'static str, amount_fen: i64 },
    Investigate,
    HandToCounty,
    Approve(&'static str, i64),
    Refuse,
    Close,
}

/// A seeded case: who files it, through which channel, and its moves with their times.
struct Seed {
    filer: &'static str,
    channel: &'static str,
    tier: &'static str,
    township: &'static str,
    hardship: &'static str,
    description: &'static str,
    filed: When,
    steps: &'static [(Step, When)],
}

/// The seeded cases, oldest first (ids are time-ordered, so the list shows the newest first).
fn seeds() -> Vec<Seed> {
    use Step::*;
    use When::*;
    vec![
        // Accepted the Monday before National Day, investigated on the make-up Saturday 10 Oct
        // (the materials' last day), decided 29 Oct: in time on the official
        // calendar (20 working days end 30 Oct: 1-7 Oct off, Saturday 10 Oct worked), though a
        // Monday-Friday count would have said 26 Oct.
        Seed {
            filer: "caseworker-2",
            channel: "walk_in",
            tier: "normal",
            township: XUZHUANG,
            hardship: "illness",
            description: "户主患尿毒症需长期透析，配偶无固定收入，申请最低生活保障",
            filed: At("2026-09-28 09:10"),
            steps: &[
                (Accept, At("2026-09-28 09:40")),
                // On the make-up Saturday, the last day for the materials.
                (Investigate, At("2026-10-10 15:00")),
                (Approve("dibao", 62_000), At("2026-10-29 10:00")),
            ],
        },
        // 12345, urgent, helped before the holiday; the materials and the decision ran across it
        // and are overdue now.
        Seed {
            filer: "intake",
            channel: "hotline_12345",
            tier: "urgent",
            township: XUZHUANG,
            hardship: "housing",
            description: "市民来电：房屋漏雨成危房，一家三口无处居住",
            filed: At("2026-09-29 20:15"),
            steps: &[
                (Accept, At("2026-09-30 08:30")),
                (
                    Help {
                        kind: "in_kind",
                        amount_fen: 120_000,
                    },
                    At("2026-09-30 11:00"),
                ),
            ],
        },
        // A whole loop in 李营: a village report, refused with the reason told to the applicant,
        // closed.
        Seed {
            filer: "caseworker-other",
            channel: "village_report",
            tier: "normal",
            township: LIYING,
            hardship: "unemployment",
            description: "村协理员报告：户主失业半年，子女上学开支大",
            filed: At("2026-10-19 10:00"),
            steps: &[
                (Accept, At("2026-10-19 15:00")),
                (Investigate, At("2026-10-23 10:30")),
                (Refuse, At("2026-11-06 09:00")),
                (Close, At("2026-11-06 09:30")),
            ],
        },
        // Investigated and handed to the county (任城区), whose decision is due.
        Seed {
            filer: "caseworker-2",
            channel: "walk_in",
            tier: "normal",
            township: XUZHUANG,
            hardship: "accident",
            description: "户主车祸致残，医疗费用超出乡镇审批权限",
            filed: At("2026-11-02 09:00"),
            steps: &[
                (Accept, At("2026-11-02 09:20")),
                (Investigate, At("2026-11-10 15:00")),
                (HandToCounty, At("2026-11-11 10:00")),
            ],
        },
        // Accepted twelve days ago, never investigated: the materials are overdue.
        Seed {
            filer: "caseworker-2",
            channel: "walk_in",
            tier: "normal",
            township: XUZHUANG,
            hardship: "education_costs",
            description: "两名子女在读，学费和生活费无力承担",
            filed: MinutesAgo(12 * DAY + 3 * HOUR),
            steps: &[(Accept, MinutesAgo(12 * DAY + 2 * HOUR))],
        },
        // 兖州: emergency, helped an hour late (met late).
        Seed {
            filer: "intake",
            channel: "hotline_12345",
            tier: "emergency",
            township: GULOU,
            hardship: "accident",
            description: "市民来电：家中失火，老人烧伤住院，急需救助",
            filed: MinutesAgo(26 * HOUR),
            steps: &[
                (Accept, MinutesAgo(25 * HOUR + 30)),
                (
                    Help {
                        kind: "cash",
                        amount_fen: 200_000,
                    },
                    MinutesAgo(23 * HOUR),
                ),
            ],
        },
        // 曲阜: urgent through 12345, helped within hours; materials running.
        Seed {
            filer: "intake",
            channel: "hotline_12345",
            tier: "urgent",
            township: LUCHENG,
            hardship: "death_in_household",
            description: "市民来电：家中主要劳动力突然去世，丧葬费用无力承担",
            filed: MinutesAgo(2 * DAY),
            steps: &[
                (Accept, MinutesAgo(2 * DAY - HOUR)),
                (
                    Help {
                        kind: "cash",
                        amount_fen: 100_000,
                    },
                    MinutesAgo(2 * DAY - 3 * HOUR),
                ),
            ],
        },
        // 李营: emergency at the window, helped within the two hours.
        Seed {
            filer: "caseworker-other",
            channel: "walk_in",
            tier: "emergency",
            township: LIYING,
            hardship: "illness",
            description: "老人突发脑梗住院，押金无力缴纳",
            filed: MinutesAgo(DAY + 2 * HOUR),
            steps: &[
                (Accept, MinutesAgo(DAY + 110)),
                (
                    Help {
                        kind: "cash",
                        amount_fen: 80_000,
                    },
                    MinutesAgo(DAY + 60),
                ),
            ],
        },
        // 兖州: normal, accepted four days ago.
        Seed {
            filer: "caseworker-yanzhou",
            channel: "walk_in",
            tier: "normal",
            township: GULOU,
            hardship: "unemployment",
            description: "夫妻双方均失业，家中有重病老人",
            filed: MinutesAgo(4 * DAY + 2 * HOUR),
            steps: &[(Accept, MinutesAgo(4 * DAY))],
        },
        // Filed at 李营 by 12345, transferred to 许庄 (the registered address), waiting there.
        Seed {
            filer: "intake",
            channel: "hotline_12345",
            tier: "urgent",
            township: LIYING,
            hardship: "illness",
            description: "市民来电：孩子白血病化疗，家中积蓄已用尽（户籍在许庄街道）",
            filed: MinutesAgo(22 * HOUR),
            steps: &[(Transfer(XUZHUANG), MinutesAgo(21 * HOUR))],
        },
        // 许庄: urgent at the window, accepted, first help due within hours (即将到期).
        Seed {
            filer: "caseworker-2",
            channel: "walk_in",
            tier: "urgent",
            township: XUZHUANG,
            hardship: "disaster",
            description: "暴雨冲毁院墙和口粮，老两口生活无着",
            filed: MinutesAgo(20 * HOUR),
            steps: &[(Accept, MinutesAgo(19 * HOUR))],
        },
        // 微山: 一码求助, urgent, just in.
        Seed {
            filer: "intake-qr",
            channel: "qr_help",
            tier: "urgent",
            township: XIAZHEN,
            hardship: "disaster",
            description: "一码求助：渔船在湖上损毁，全家失去收入来源",
            filed: MinutesAgo(6 * HOUR),
            steps: &[],
        },
        // 许庄: emergency through 12345, accepted, no first help yet: overdue.
        Seed {
            filer: "intake",
            channel: "hotline_12345",
            tier: "emergency",
            township: XUZHUANG,
            hardship: "accident",
            description: "市民来电：户主工地坠落重伤，家中无人照料两名幼子",
            filed: MinutesAgo(3 * HOUR),
            steps: &[(Accept, MinutesAgo(2 * HOUR + 40))],
        },
        // 曲阜: 一码求助, emergency, just filed, waiting for acceptance (first help running).
        Seed {
            filer: "intake-qr",
            channel: "qr_help",
            tier: "emergency",
            township: LUCHENG,
            hardship: "illness",
            description: "一码求助：独居老人突发疾病，无人陪护就医",
            filed: MinutesAgo(40),
            steps: &[],
        },
    ]
}

/// The body of a move at `at`.
fn move_body(step: Step, at: OffsetDateTime, township: &str) -> (&'static str, Value) {
    let at = at
        .to_offset(BEIJING)
        .replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default();
    match step {
        Step::Accept => ("accept", json!({ "note": "已核实申请人身份，予以受理" })),
        Step::Transfer(to) => (
            "transfer",
            json!({ "to_township": to, "reason": "申请人户籍不在本街道，分办至户籍所在地" }),
        ),
        Step::Help { kind, amount_fen } => (
            "first-help",
            json!({
                "kind": kind,
                "amount_fen": amount_fen,
                "given_at": at,
                "given_by": format!("{}救助站", township_name(township)),
            }),
        ),
        Step::Investigate => (
            "investigation",
            json!({
                "home_visit": {
                    "visited_at": at,
                    "visited_by": ["经办人", "村（社区）协理员"],
                    "findings": "入户核实：家庭收入低，主要劳动力丧失劳动能力，情况属实",
                },
                "initial_opinion": {
                    "recommendation": "approve",
                    "assistance_type": "dibao",
                    "text": "建议纳入最低生活保障",
                },
            }),
        ),
        Step::HandToCounty => (
            "hand-to-county",
            json!({ "reason": "救助金额超出乡镇审批权限，转交区民政局" }),
        ),
        Step::Approve(kind, amount_fen) => (
            "decision",
            json!({ "decision": "approved", "assistance_type": kind, "amount_fen": amount_fen }),
        ),
        Step::Refuse => (
            "decision",
            json!({
                "decision": "refused",
                "reason_for_applicant": "经核对，家庭人均收入高于当地低保标准，不符合条件；如情况变化可重新申请",
            }),
        ),
        Step::Close => ("close", json!({ "note": "已书面告知申请人" })),
    }
}

fn township_name(code: &str) -> String {
    schemas::DivisionCode::parse(code)
        .ok()
        .and_then(|c| {
            connectors::sim::divisions::Divisions::jining()
                .township(&c)
                .map(|t| t.name.clone())
        })
        .unwrap_or_else(|| code.to_owned())
}

/// A filing for the `nth` household of `township` in the demo population (counted round).
fn filing(
    population: &Population,
    township: &str,
    nth: usize,
    channel: &str,
    tier: &str,
    hardship: &str,
    description: &str,
) -> Option<Value> {
    // The nth household, counted round when the township has fewer.
    let ids: Vec<_> = population
        .households()
        .iter()
        .filter(|h| h.township_code().as_str() == township)
        .map(|h| h.id)
        .collect();
    let id = *ids.get(nth % ids.len().max(1))?;
    let household = population.household_declaration(id);
    let applicant = household.applicant()?;
    let digits: u64 = applicant
        .resident_id
        .as_str()
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0, |a, b| (a * 7 + u64::from(b - b'0')) % 100_000_000);
    Some(json!({
        "channel": channel,
        "tier": tier,
        "applicant": {
            "resident_id": applicant.resident_id.as_str(),
            "name": applicant.name,
            "phone": format!("139{digits:08}"),
        },
        "township": township,
        "hardship": hardship,
        "description": description,
    }))
}

/// `DIR/samples/case-{emergency,urgent,normal}.json`: filings at the 许庄 window, one per tier,
/// for `hub client case new` as the demo caseworker.
pub fn write_case_samples(samples: &Path, population: &Population) -> anyhow::Result<()> {
    for (i, (tier, hardship, description)) in [
        (
            "emergency",
            "accident",
            "户主在工地受伤住院，家中两名幼子无人照料，急需救助",
        ),
        (
            "urgent",
            "illness",
            "配偶突发重病住院治疗，家庭无其他收入来源",
        ),
        (
            "normal",
            "unemployment",
            "户主失业一年，家庭人均收入低于当地低保标准，申请最低生活保障",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(body) = filing(
            population,
            XUZHUANG,
            10 + i,
            "walk_in",
            tier,
            hardship,
            description,
        ) else {
            continue;
        };
        let path = samples.join(format!("case-{tier}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(())
}

/// What seeding did.
#[derive(Debug, Default)]
pub struct Seeded {
    pub opened: usize,
    pub already: usize,
    /// Referral slips issued on the cases opened now.
    pub slips: usize,
    pub problems: Vec<String>,
}

/// An HTTPS client of the running demo hub for the certificate `name`.
pub(super) fn demo_client(
    dir: &Path,
    hub: SocketAddr,
    name: &str,
) -> anyhow::Result<(reqwest::Client, String)> {
    let p = dir.join("pki");
    crate::audit::client(&Remote {
        url: Some(format!("https://localhost:{}", hub.port())),
        cacert: Some(p.join("ca.pem")),
        cert: Some(p.join(format!("{name}.pem"))),
        key: Some(p.join(format!("{name}.key"))),
    })
}

async fn post(
    dir: &Path,
    hub: SocketAddr,
    who: &str,
    path: &str,
    body: &Value,
    idempotency_key: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let (http, base) = demo_client(dir, hub, who)?;
    let mut req = http.post(format!("{base}{path}")).json(body);
    if let Some(k) = idempotency_key {
        req = req.header("idempotency-key", k);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    Ok((status, v))
}

/// Open the demo's cases through the running hub at `hub`, then set their times back in `db`.
pub async fn seed(dir: &Path, hub: SocketAddr, db: &Db, population: &Population) -> Seeded {
    let now = OffsetDateTime::now_utc();
    let mut out = Seeded::default();
    let mut per_township = std::collections::HashMap::<&str, usize>::new();
    for (n, s) in seeds().into_iter().enumerate() {
        let nth = per_township.entry(s.township).or_default();
        *nth += 1;
        let Some(body) = filing(
            population,
            s.township,
            *nth,
            s.channel,
            s.tier,
            s.hardship,
            s.description,
        ) else {
            out.problems
                .push(format!("{}: no household in the population", s.township));
            continue;
        };
        let key = format!("demo-case-{:02}", n + 1);
        match seed_one(dir, hub, db, &s, &body, &key, now).await {
            Ok(Some((id, township))) => {
                out.opened += 1;
                for slip in slip_seeds(n) {
                    match seed_slip(dir, hub, db, &id, township, slip, now).await {
                        Ok(()) => out.slips += 1,
                        Err(e) => out.problems.push(format!("{key} slip: {e:#}")),
                    }
                }
            }
            Ok(None) => out.already += 1,
            Err(e) => out.problems.push(format!("{key}: {e:#}")),
        }
    }
    out
}

/// A referral slip (转办单) the demo issues on a seeded case: kind, what is asked, when.
struct SlipSeed {
    kind: &'static str,
    asked: &'static str,
    issued: When,
}

/// The slips of the `n`-th seeded case (index into [`seeds`]): some issued before National Day
/// and long overdue (the escalation scan puts them in the county's queue), some in time. The
/// simulated departments ([`super::live`]) accept and answer them while the demo runs.
fn slip_seeds(n: usize) -> &'static [SlipSeed] {
    use When::*;
    match n {
        1 => &[SlipSeed {
            kind: "housing",
            asked: "房屋漏雨成危房，请住建部门鉴定房屋等级并纳入农村危房改造",
            issued: At("2026-09-30 11:30"),
        }],
        3 => &[
            SlipSeed {
                kind: "medical_assistance",
                asked: "车祸致残，住院自付费用高，请落实医疗救助并一站式结算",
                issued: At("2026-11-03 10:00"),
            },
            SlipSeed {
                kind: "rehabilitation",
                asked: "请残联评定残疾等级，办理残疾证并安排康复救助",
                issued: At("2026-11-11 10:30"),
            },
        ],
        4 => &[SlipSeed {
            kind: "education_aid",
            asked: "两名子女在读，请教育部门落实学费减免和助学金",
            issued: MinutesAgo(11 * DAY),
        }],
        5 => &[SlipSeed {
            kind: "medical_assistance",
            asked: "老人烧伤住院，请落实医疗救助，先诊疗后付费",
            issued: MinutesAgo(22 * HOUR),
        }],
        6 => &[SlipSeed {
            kind: "employment",
            asked: "家中主要劳动力去世，请为配偶办理失业登记并推荐就业岗位",
            issued: MinutesAgo(DAY + 20 * HOUR),
        }],
        8 => &[SlipSeed {
            kind: "employment",
            asked: "夫妻双方失业，请落实就业援助和公益性岗位",
            issued: MinutesAgo(3 * DAY),
        }],
        10 => &[SlipSeed {
            kind: "housing",
            asked: "暴雨冲毁院墙，请住建部门鉴定房屋安全",
            issued: MinutesAgo(18 * HOUR),
        }],
        _ => &[],
    }
}

/// Issue one slip through the hub as the township's caseworker, then set its issue time back
/// and its due date as the kind's period on the official calendar makes it from there.
async fn seed_slip(
    dir: &Path,
    hub: SocketAddr,
    db: &Db,
    case_id: &str,
    township: &str,
    slip: &SlipSeed,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let (status, v) = post(
        dir,
        hub,
        caseworker_of(township),
        &format!("/v1/cases/{case_id}/slips"),
        &json!({ "kind": slip.kind, "asked": slip.asked }),
        None,
    )
    .await?;
    anyhow::ensure!(status == 201, "HTTP {status} {}", v["error"]["code"]);
    let id = v["id"].as_str().context("slip id")?;
    let kind = schemas::cases::SlipKind::from_code(slip.kind).context("slip kind")?;
    let issued = slip.issued.resolve(now);
    let calendar = policies::WorkingCalendar::load_dir(policies::WorkingCalendar::shipped_dir())
        .unwrap_or_default();
    let periods = policies::Deadlines::load_dir(&policies::PolicyEngine::shipped_dir())
        .unwrap_or_else(|_| policies::Deadlines::statutory())
        .slip(kind);
    let due = crate::cases::slips::due(periods, issued, None, &calendar)
        .map_err(|_| anyhow::anyhow!("no due date"))?;
    let ms = |t: OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    on_db!(db, p, _DB => {
        sqlx::query("UPDATE slips SET issued_ms = $1, due_ms = $2, due_provisional = $3 WHERE id = $4")
            .bind(ms(issued))
            .bind(ms(due.at))
            .bind(i64::from(due.provisional))
            .bind(id)
            .execute(p)
            .await?;
    });
    Ok(())
}

/// File and move one case, then back-date it; its id and final township, or `None` when the hub
/// had it already.
async fn seed_one(
    dir: &Path,
    hub: SocketAddr,
    db: &Db,
    s: &Seed,
    body: &Value,
    key: &str,
    now: OffsetDateTime,
) -> anyhow::Result<Option<(String, &'static str)>> {
    let (status, v) = post(dir, hub, s.filer, "/v1/cases", body, Some(key)).await?;
    match status {
        201 => {}
        200 => return Ok(None),
        _ => anyhow::bail!("filing: HTTP {status} {}", v["error"]["code"]),
    }
    let id = v["id"].as_str().context("case id")?.to_owned();
    let mut times = vec![s.filed.resolve(now)];
    let mut township = s.township;
    let mut handed = false;
    for (step, when) in s.steps {
        let at = when.resolve(now);
        // A case handed to the county is the county's to decide.
        let mover = if handed {
            "county-officer"
        } else {
            caseworker_of(township)
        };
        handed |= matches!(step, Step::HandToCounty);
        let (path, body) = move_body(*step, at, township);
        let (status, v) = post(
            dir,
            hub,
            mover,
            &format!("/v1/cases/{id}/{path}"),
            &body,
            None,
        )
        .await?;
        anyhow::ensure!(
            status == 200,
            "{path}: HTTP {status} {}",
            v["error"]["code"]
        );
        if let Step::Transfer(to) = step {
            township = to;
        }
        times.push(at);
    }
    backdate(db, &id, &times).await?;
    Ok(Some((id, township)))
}

/// Set a seeded case's times: `times[0]` is the filing (event 1), `times[k]` the k-th move
/// (event k+1). Demo setup only; the hub's API never lets a caller choose these times.
async fn backdate(db: &Db, case_id: &str, times: &[OffsetDateTime]) -> Result<(), StoreError> {
    let ms = |t: &OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let created = times.first().map(ms).unwrap_or_default();
    let updated = times.last().map(ms).unwrap_or_default();
    on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        sqlx::query("UPDATE cases SET created_ms = $1, updated_ms = $2 WHERE id = $3")
            .bind(created)
            .bind(updated)
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        for (i, t) in times.iter().enumerate() {
            sqlx::query("UPDATE case_events SET at_ms = $1 WHERE case_id = $2 AND seq = $3")
                .bind(ms(t))
                .bind(case_id)
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await?;
        }
        // The stored nearest deadline (`cases::escalation`) as the back-dated timeline makes it,
        // and a check due now, so the hub's first escalation scan puts the overdue ones in the
        // county's queue.
        let (tier,): (String,) = sqlx::query_as("SELECT tier FROM cases WHERE id = $1")
            .bind(case_id)
            .fetch_one(&mut *tx)
            .await?;
        let events: Vec<(String, i64)> =
            sqlx::query_as("SELECT action, at_ms FROM case_events WHERE case_id = $1 ORDER BY seq")
                .bind(case_id)
                .fetch_all(&mut *tx)
                .await?;
        let due = stored_due(&tier, created, &events);
        sqlx::query("UPDATE cases SET next_due_ms = $1, next_due_kind = $2, due_provisional = $3, next_check_ms = $4 WHERE id = $5")
            .bind(due.next_due_ms)
            .bind(&due.next_due_kind)
            .bind(i64::from(due.provisional))
            .bind(ms(&OffsetDateTime::now_utc()))
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    });
    Ok(())
}

/// The nearest open deadline of a back-dated case now, on the shipped calendar and periods.
fn stored_due(
    tier: &str,
    created_ms: i64,
    events: &[(String, i64)],
) -> crate::cases::escalation::Due {
    let tier: schemas::Urgency =
        serde_json::from_value(serde_json::Value::String(tier.to_owned())).unwrap_or_default();
    let timeline = crate::cases::clocks::Timeline::from_events(
        created_ms,
        events.iter().map(|(a, m)| (a.as_str(), *m)),
    );
    let calendar = policies::WorkingCalendar::load_dir(policies::WorkingCalendar::shipped_dir())
        .unwrap_or_default();
    let periods = policies::Deadlines::load_dir(&policies::PolicyEngine::shipped_dir())
        .unwrap_or_else(|_| policies::Deadlines::statutory())
        .case;
    crate::cases::escalation::case_due(
        tier,
        &timeline,
        &calendar,
        &periods,
        OffsetDateTime::now_utc(),
    )
    .1
}
