//! 预警规则: which department events raise a warning (预警) for a household, of which tier, as
//! data (`warnings.toml` beside the Cedar policies), and the pure evaluation the hub runs at
//! ingest and `hub policy check --event` runs on a sample.
//!
//! A rule names the event kinds it reads, for whom (`who = "monitored"`: the household must be on
//! the monitoring list, optionally in one of `categories`; `who = "anyone"`: any household the hub
//! can place), details the event must carry (`require`, e.g. `sole_earner = true`), optionally an
//! amount over a window (`amount`: the sum of `detail` over the household's signals of this rule
//! within `window_days` must be above the county's threshold for the event's year), and the tier
//! it raises. `[repeat]` raises a fired rule's tier one step when the household already had
//! `signals - 1` fired signals within `window_days`. `[first_contact]` gives each tier's time to
//! first contact (emergency 2 h, urgent 24 h, normal 3 working days).
//!
//! Invariants checked at load (errors name the file and key, e.g. `rule.hospital_costs.tier`):
//! every key known, every kind `<department>.<event>`, every tier and hardship a known code, every
//! county a 6-digit code, every number in range, at least one rule. The file is refused whole, so
//! a reload keeps the rules the hub had. Without the file there are no rules (no warnings).
//!
//! [`WarningRules::evaluate`] is pure: the hub gathers the household's facts and history with one
//! indexed look-up per rule family and passes them in. Every rule gets a verdict with its reason,
//! fired or not, so an operator can see why a rule stayed silent.

use std::collections::BTreeMap;
use std::path::Path;

use schemas::Urgency;
use schemas::cases::Hardship;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime, UtcOffset};
use toml::Table;

use crate::error::PolicyError;
use crate::toml_util as t;

/// The file name, at the top of the policy directory.
pub const WARNINGS_FILE: &str = "warnings.toml";

const BEIJING: UtcOffset = time::macros::offset!(+8);

/// For whom a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// 监测对象: households on the monitoring list (active).
    Monitored,
    /// Any household the hub can place (monitoring list or a case).
    Anyone,
}

/// An amount condition: the sum of `detail` over the window must be above the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountCondition {
    /// The event detail holding the amount in fen (`out_of_pocket_fen`).
    pub detail: String,
    pub window_days: u32,
    /// year → county (6 digits) → threshold in fen.
    pub threshold_fen: BTreeMap<i32, BTreeMap<String, i64>>,
}

/// 预警规则: one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct WarningRule {
    /// The rule's id (`[rule.<id>]`), stable: warnings are keyed by household and rule.
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub kinds: Vec<String>,
    pub who: Who,
    /// Monitoring categories, any of which qualifies; empty: any category.
    pub categories: Vec<String>,
    /// Details the event must carry with exactly these values.
    pub require: BTreeMap<String, Value>,
    pub amount: Option<AmountCondition>,
    pub tier: Urgency,
    /// The hardship a case converted from this rule's warning is about.
    pub hardship: Hardship,
}

/// 首次联系时限: time to first contact per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstContact {
    pub emergency_hours: u32,
    pub urgent_hours: u32,
    pub normal_working_days: u32,
}

/// 多次信号升级: `signals` fired signals within `window_days` raise the tier one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeat {
    pub window_days: u32,
    pub signals: u32,
}

/// 预警规则集.
#[derive(Debug, Clone, PartialEq)]
pub struct WarningRules {
    pub rules: Vec<WarningRule>,
    pub first_contact: FirstContact,
    pub repeat: Repeat,
}

/// The event being judged (no resident ID: the hub has replaced the person by the household).
#[derive(Debug, Clone)]
pub struct Signal<'a> {
    pub kind: &'a str,
    pub occurred: OffsetDateTime,
    pub details: &'a Map<String, Value>,
}

/// What the hub knows of the household the event was placed in.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HouseholdFacts {
    /// 户籍所在乡镇 (9 digits); `None` when the event is unmatched (no warning can be placed).
    #[serde(default)]
    pub township: Option<String>,
    /// The active monitoring categories; empty when not on the list.
    #[serde(default)]
    pub categories: Vec<String>,
}

/// What the hub knows of the household's earlier signals.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Per amount rule: the sum of the amounts of the household's earlier signals of that rule
    /// within its window.
    #[serde(default)]
    pub prior_amount_fen: BTreeMap<String, i64>,
    /// Fired signals of the household (any rule) within `[repeat].window_days`, this one excluded.
    #[serde(default)]
    pub recent_signals: u32,
}

/// The verdict of one rule on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub rule: String,
    /// The event is one this rule reads, for a household it applies to (its amount, if any, is
    /// recorded towards the window even when the rule does not fire).
    pub candidate: bool,
    pub fired: bool,
    /// The tier raised (after `[repeat]`), when fired.
    pub tier: Option<Urgency>,
    /// True when `[repeat]` raised the tier.
    pub raised: bool,
    /// The amount this event contributes (amount rules).
    pub amount_fen: Option<i64>,
    /// Why, Chinese then English.
    pub reason: String,
}

/// One step up: normal → urgent → emergency (emergency stays).
pub fn raise(tier: Urgency) -> Urgency {
    match tier {
        Urgency::Normal => Urgency::Urgent,
        Urgency::Urgent | Urgency::Emergency => Urgency::Emergency,
    }
}

fn kind_ok(kind: &str) -> bool {
    let code = |s: &str, max: usize| {
        (2..=max).contains(&s.len())
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    };
    kind.split_once('.')
        .is_some_and(|(d, e)| code(d, 32) && code(e, 48))
}

fn code_ok(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl WarningRules {
    /// No rules: nothing raises a warning.
    pub fn none() -> WarningRules {
        WarningRules {
            rules: Vec::new(),
            first_contact: FirstContact {
                emergency_hours: 2,
                urgent_hours: 24,
                normal_working_days: 3,
            },
            repeat: Repeat {
                window_days: 90,
                signals: 2,
            },
        }
    }

    /// Load `warnings.toml` from the policy directory `dir`, or no rules without it.
    pub fn load_dir(dir: &Path) -> Result<WarningRules, PolicyError> {
        let file = dir.join(WARNINGS_FILE);
        if !file.exists() {
            return Ok(WarningRules::none());
        }
        let src = crate::engine::read(&file)?;
        WarningRules::parse(&file, &src)
    }

    pub fn rule(&self, id: &str) -> Option<&WarningRule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Parse and validate; the first bad entry refuses the whole file.
    pub fn parse(file: &Path, src: &str) -> Result<WarningRules, PolicyError> {
        let doc = t::parse(file, src)?;
        t::only_keys(file, "", &doc, &["first_contact", "repeat", "rule"])?;
        let fc = t::table(
            file,
            "first_contact",
            t::required(file, "", &doc, "first_contact")?,
        )?;
        t::only_keys(
            file,
            "first_contact",
            fc,
            &["emergency_hours", "urgent_hours", "normal_working_days"],
        )?;
        let hours = |k: &str| -> Result<u32, PolicyError> {
            let key = format!("first_contact.{k}");
            Ok(t::int(
                file,
                &key,
                t::required(file, "first_contact", fc, k)?,
                1,
                720,
            )? as u32)
        };
        let first_contact = FirstContact {
            emergency_hours: hours("emergency_hours")?,
            urgent_hours: hours("urgent_hours")?,
            normal_working_days: t::int(
                file,
                "first_contact.normal_working_days",
                t::required(file, "first_contact", fc, "normal_working_days")?,
                1,
                60,
            )? as u32,
        };
        let rp = t::table(file, "repeat", t::required(file, "", &doc, "repeat")?)?;
        t::only_keys(file, "repeat", rp, &["window_days", "signals"])?;
        let repeat = Repeat {
            window_days: t::int(
                file,
                "repeat.window_days",
                t::required(file, "repeat", rp, "window_days")?,
                1,
                366,
            )? as u32,
            signals: t::int(
                file,
                "repeat.signals",
                t::required(file, "repeat", rp, "signals")?,
                2,
                10,
            )? as u32,
        };
        let rules_t = t::table(file, "rule", t::required(file, "", &doc, "rule")?)?;
        if rules_t.is_empty() {
            return Err(PolicyError::toml(
                file,
                "rule",
                "at least one rule is required",
            ));
        }
        let mut rules = Vec::new();
        for (id, v) in rules_t {
            let prefix = format!("rule.{id}");
            if !code_ok(id) || id.as_bytes()[0].is_ascii_digit() {
                return Err(PolicyError::toml(
                    file,
                    &prefix,
                    "a rule id must be 1-32 characters of [a-z0-9_], starting with a letter",
                ));
            }
            let r = t::table(file, &prefix, v)?;
            rules.push(parse_rule(file, &prefix, id, r)?);
        }
        Ok(WarningRules {
            rules,
            first_contact,
            repeat,
        })
    }

    /// Judge one event for one household: a verdict per rule, in file order.
    pub fn evaluate(
        &self,
        signal: &Signal<'_>,
        household: &HouseholdFacts,
        history: &History,
    ) -> Vec<Verdict> {
        self.rules
            .iter()
            .map(|r| self.judge(r, signal, household, history))
            .collect()
    }

    fn judge(
        &self,
        r: &WarningRule,
        s: &Signal<'_>,
        h: &HouseholdFacts,
        history: &History,
    ) -> Verdict {
        let no = |candidate: bool, amount_fen: Option<i64>, reason: String| Verdict {
            rule: r.id.clone(),
            candidate,
            fired: false,
            tier: None,
            raised: false,
            amount_fen,
            reason,
        };
        if !r.kinds.iter().any(|k| k == s.kind) {
            return no(
                false,
                None,
                format!(
                    "事件类型 {} 不在本规则范围内 / kind {} is not one this rule reads",
                    s.kind, s.kind
                ),
            );
        }
        let Some(township) = &h.township else {
            return no(
                false,
                None,
                "未能确定户籍所在乡镇（未匹配事件） / the household is not placed (unmatched event)"
                    .into(),
            );
        };
        if r.who == Who::Monitored {
            if h.categories.is_empty() {
                return no(
                    false,
                    None,
                    "该户不在低收入人口监测名单上 / the household is not on the monitoring list"
                        .into(),
                );
            }
            if !r.categories.is_empty() && !h.categories.iter().any(|c| r.categories.contains(c)) {
                return no(
                    false,
                    None,
                    format!(
                        "该户的监测类别不在 {:?} 中 / the household's categories are not among {:?}",
                        r.categories, r.categories
                    ),
                );
            }
        }
        for (k, want) in &r.require {
            if s.details.get(k) != Some(want) {
                return no(
                    false,
                    None,
                    format!("事件未载明 {k} = {want} / the event does not carry {k} = {want}"),
                );
            }
        }
        let mut amount_fen = None;
        if let Some(a) = &r.amount {
            let Some(amount) = s.details.get(&a.detail).and_then(Value::as_i64) else {
                return no(
                    false,
                    None,
                    format!(
                        "事件未载明金额 {} / the event carries no amount {}",
                        a.detail, a.detail
                    ),
                );
            };
            amount_fen = Some(amount);
            let year = s.occurred.to_offset(BEIJING).year();
            let county = township.get(..6).unwrap_or_default();
            let Some(threshold) = a.threshold_fen.get(&year).and_then(|c| c.get(county)) else {
                return no(
                    true,
                    amount_fen,
                    format!(
                        "{year} 年县 {county} 未设定金额阈值 / no threshold for county {county} in {year}"
                    ),
                );
            };
            let prior = history.prior_amount_fen.get(&r.id).copied().unwrap_or(0);
            let total = prior.saturating_add(amount);
            if total <= *threshold {
                return no(
                    true,
                    amount_fen,
                    format!(
                        "{} 天内合计 {total} 分，未超过阈值 {threshold} 分 / {total} fen within {} days is not above the threshold of {threshold} fen",
                        a.window_days, a.window_days
                    ),
                );
            }
        }
        let raised = history.recent_signals + 1 >= self.repeat.signals;
        let tier = if raised { raise(r.tier) } else { r.tier };
        let mut reason = format!(
            "规则「{}」触发，等级 {} / rule {} fired, tier {}",
            r.name_zh,
            tier.code(),
            r.name_en,
            tier.code()
        );
        if raised {
            reason.push_str(&format!(
                "（{} 天内第 {} 次信号，升一级 / signal {} within {} days: raised one tier）",
                self.repeat.window_days,
                history.recent_signals + 1,
                history.recent_signals + 1,
                self.repeat.window_days
            ));
        }
        Verdict {
            rule: r.id.clone(),
            candidate: true,
            fired: true,
            tier: Some(tier),
            raised,
            amount_fen,
            reason,
        }
    }

    /// The time to first contact of a tier: hours, or working days for `normal`.
    pub fn first_contact(&self, tier: Urgency) -> crate::Period {
        match tier {
            Urgency::Emergency => crate::Period::Hours(self.first_contact.emergency_hours),
            Urgency::Urgent => crate::Period::Hours(self.first_contact.urgent_hours),
            Urgency::Normal => crate::Period::WorkingDays(self.first_contact.normal_working_days),
        }
    }

    /// The window before `occurred` an amount rule sums over.
    pub fn amount_window(&self, rule: &WarningRule) -> Option<Duration> {
        rule.amount
            .as_ref()
            .map(|a| Duration::days(i64::from(a.window_days)))
    }
}

/// A sample for `hub policy check --event`: an event (without a resident ID), the household it
/// would be placed in, and the household's history.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub event: SampleEvent,
    #[serde(default)]
    pub household: HouseholdFacts,
    #[serde(default)]
    pub history: History,
}

/// The event of a [`Sample`].
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleEvent {
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    #[serde(default)]
    pub details: Map<String, Value>,
}

impl WarningRules {
    /// Which rule fires on a sample and why the others do not, one line per rule.
    pub fn explain(&self, sample: &Sample) -> String {
        let signal = Signal {
            kind: &sample.event.kind,
            occurred: sample.event.occurred_at,
            details: &sample.event.details,
        };
        let verdicts = self.evaluate(&signal, &sample.household, &sample.history);
        let mut out = String::new();
        for v in &verdicts {
            let mark = if v.fired { "FIRES  " } else { "silent " };
            out.push_str(&format!("  {mark} {}: {}\n", v.rule, v.reason));
        }
        let fired = verdicts.iter().filter(|v| v.fired).count();
        out.push_str(&format!("  {fired} rule(s) fire / {fired} 条规则触发\n"));
        out
    }
}

fn parse_rule(file: &Path, prefix: &str, id: &str, r: &Table) -> Result<WarningRule, PolicyError> {
    t::only_keys(
        file,
        prefix,
        r,
        &[
            "name_zh",
            "name_en",
            "kinds",
            "who",
            "categories",
            "require",
            "amount",
            "tier",
            "hardship",
        ],
    )?;
    let key = |k: &str| format!("{prefix}.{k}");
    let name = |k: &str| -> Result<String, PolicyError> {
        let s = t::string(file, &key(k), t::required(file, prefix, r, k)?)?;
        if s.trim().is_empty() {
            return Err(PolicyError::toml(file, key(k), "must not be empty"));
        }
        Ok(s.to_owned())
    };
    let name_zh = name("name_zh")?;
    let name_en = name("name_en")?;
    let kinds_v = t::strings(file, &key("kinds"), t::required(file, prefix, r, "kinds")?)?;
    if kinds_v.is_empty() {
        return Err(PolicyError::toml(file, key("kinds"), "at least one kind"));
    }
    let mut kinds = Vec::new();
    for (k, s) in kinds_v {
        if !kind_ok(s) {
            return Err(PolicyError::toml(
                file,
                k,
                "must be <department>.<event> in lower case and underscores",
            ));
        }
        kinds.push(s.to_owned());
    }
    let who = match t::string(file, &key("who"), t::required(file, prefix, r, "who")?)? {
        "monitored" => Who::Monitored,
        "anyone" => Who::Anyone,
        _ => {
            return Err(PolicyError::toml(
                file,
                key("who"),
                "must be \"monitored\" or \"anyone\"",
            ));
        }
    };
    let mut categories = Vec::new();
    if let Some(v) = r.get("categories") {
        for (k, c) in t::strings(file, &key("categories"), v)? {
            if !code_ok(c) {
                return Err(PolicyError::toml(file, k, "must be a category code"));
            }
            categories.push(c.to_owned());
        }
        if who == Who::Anyone && !categories.is_empty() {
            return Err(PolicyError::toml(
                file,
                key("categories"),
                "only a rule for who = \"monitored\" names categories",
            ));
        }
    }
    let mut require = BTreeMap::new();
    if let Some(v) = r.get("require") {
        for (k, v) in t::table(file, &key("require"), v)? {
            let value = match v {
                toml::Value::Boolean(b) => Value::Bool(*b),
                toml::Value::Integer(n) => Value::from(*n),
                toml::Value::String(s) => Value::String(s.clone()),
                other => {
                    return Err(PolicyError::toml(
                        file,
                        format!("{prefix}.require.{k}"),
                        format!(
                            "must be a boolean, integer or string, got {}",
                            other.type_str()
                        ),
                    ));
                }
            };
            require.insert(k.clone(), value);
        }
    }
    let amount = match r.get("amount") {
        None => None,
        Some(v) => Some(parse_amount(file, &key("amount"), v)?),
    };
    let tier = match t::string(file, &key("tier"), t::required(file, prefix, r, "tier")?)? {
        "emergency" => Urgency::Emergency,
        "urgent" => Urgency::Urgent,
        "normal" => Urgency::Normal,
        _ => {
            return Err(PolicyError::toml(
                file,
                key("tier"),
                "must be \"emergency\", \"urgent\" or \"normal\"",
            ));
        }
    };
    let h = t::string(
        file,
        &key("hardship"),
        t::required(file, prefix, r, "hardship")?,
    )?;
    let hardship = Hardship::from_code(h).ok_or_else(|| {
        PolicyError::toml(
            file,
            key("hardship"),
            format!(
                "must be one of {}",
                Hardship::ALL
                    .iter()
                    .map(|h| h.code())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    Ok(WarningRule {
        id: id.to_owned(),
        name_zh,
        name_en,
        kinds,
        who,
        categories,
        require,
        amount,
        tier,
        hardship,
    })
}

fn parse_amount(
    file: &Path,
    prefix: &str,
    v: &toml::Value,
) -> Result<AmountCondition, PolicyError> {
    let a = t::table(file, prefix, v)?;
    t::only_keys(file, prefix, a, &["detail", "window_days", "threshold_fen"])?;
    let detail = t::string(
        file,
        &format!("{prefix}.detail"),
        t::required(file, prefix, a, "detail")?,
    )?;
    if !code_ok(detail) {
        return Err(PolicyError::toml(
            file,
            format!("{prefix}.detail"),
            "must be a detail name of [a-z0-9_]",
        ));
    }
    let window_days = t::int(
        file,
        &format!("{prefix}.window_days"),
        t::required(file, prefix, a, "window_days")?,
        1,
        366,
    )? as u32;
    let tk = format!("{prefix}.threshold_fen");
    let years = t::table(file, &tk, t::required(file, prefix, a, "threshold_fen")?)?;
    if years.is_empty() {
        return Err(PolicyError::toml(file, &tk, "at least one year"));
    }
    let mut threshold_fen = BTreeMap::new();
    for (y, counties) in years {
        let yk = format!("{tk}.{y}");
        let year: i32 = y
            .parse()
            .ok()
            .filter(|y| (2000..=2100).contains(y))
            .ok_or_else(|| PolicyError::toml(file, &yk, "must be a year, 2000-2100"))?;
        let mut per = BTreeMap::new();
        for (c, n) in t::table(file, &yk, counties)? {
            let ck = format!("{yk}.{c}");
            if c.len() != 6 || !c.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PolicyError::toml(
                    file,
                    ck,
                    "must be a county code (6 digits)",
                ));
            }
            per.insert(c.clone(), t::int(file, &ck, n, 1, 100_000_000)?);
        }
        threshold_fen.insert(year, per);
    }
    Ok(AmountCondition {
        detail: detail.to_owned(),
        window_days,
        threshold_fen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn shipped() -> WarningRules {
        WarningRules::load_dir(&crate::PolicyEngine::shipped_dir()).unwrap()
    }

    fn fired(v: &[Verdict]) -> Vec<(&str, Urgency)> {
        v.iter()
            .filter(|v| v.fired)
            .map(|v| (v.rule.as_str(), v.tier.unwrap()))
            .collect()
    }

    fn details(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_shipped_examples_fire_as_documented() {
        let rules = shipped();
        let monitored = HouseholdFacts {
            township: Some("370811001".into()),
            categories: vec!["dibao_edge".into()],
        };
        let placed = HouseholdFacts {
            township: Some("370811001".into()),
            categories: vec![],
        };
        let at = datetime!(2026-05-10 10:00 +8);
        let none = History::default();
        let hosp = |fen: i64| {
            details(
                serde_json::json!({"admitted_on": "2026-05-10", "total_fen": fen, "out_of_pocket_fen": fen}),
            )
        };
        let big = hosp(5_000_000);
        let s = |kind, d| Signal {
            kind,
            occurred: at,
            details: d,
        };
        // Above the county threshold, monitored → urgent.
        let v = rules.evaluate(&s("health.hospitalisation", &big), &monitored, &none);
        assert_eq!(fired(&v), vec![("hospital_costs", Urgency::Urgent)]);
        // Not monitored → nothing, and the reason says so.
        let v = rules.evaluate(&s("health.hospitalisation", &big), &placed, &none);
        assert!(fired(&v).is_empty());
        let h = v.iter().find(|v| v.rule == "hospital_costs").unwrap();
        assert!(h.reason.contains("monitoring list"), "{}", h.reason);
        // Below the threshold alone, above it with the window's earlier amounts.
        let small = hosp(100_000);
        let v = rules.evaluate(&s("health.hospitalisation", &small), &monitored, &none);
        assert!(fired(&v).is_empty());
        assert!(v.iter().any(|v| v.rule == "hospital_costs" && v.candidate));
        let prior = History {
            prior_amount_fen: [("hospital_costs".to_owned(), 3_000_000)].into(),
            recent_signals: 0,
        };
        let v = rules.evaluate(&s("health.hospitalisation", &small), &monitored, &prior);
        assert_eq!(fired(&v), vec![("hospital_costs", Urgency::Urgent)]);
        // Disaster victim, anyone → emergency.
        let d = details(serde_json::json!({"disaster": "flood", "house_damaged": true}));
        let v = rules.evaluate(&s("emergency.disaster_victim", &d), &placed, &none);
        assert_eq!(fired(&v), vec![("disaster_victim", Urgency::Emergency)]);
        // Death of the only earner → urgent; of another member → nothing.
        let d = details(serde_json::json!({"died_on": "2026-05-09", "sole_earner": true}));
        let v = rules.evaluate(&s("civil_affairs.death_registered", &d), &placed, &none);
        assert_eq!(fired(&v), vec![("sole_earner_death", Urgency::Urgent)]);
        let d = details(serde_json::json!({"died_on": "2026-05-09"}));
        let v = rules.evaluate(&s("civil_affairs.death_registered", &d), &placed, &none);
        assert!(fired(&v).is_empty());
        // Unemployment, monitored → normal; a second signal within 90 days → urgent.
        let d = details(serde_json::json!({"registered_on": "2026-05-09"}));
        let v = rules.evaluate(&s("labor.unemployment_registered", &d), &monitored, &none);
        assert_eq!(fired(&v), vec![("monitored_unemployment", Urgency::Normal)]);
        let again = History {
            recent_signals: 1,
            ..Default::default()
        };
        let v = rules.evaluate(&s("labor.unemployment_registered", &d), &monitored, &again);
        assert_eq!(fired(&v), vec![("monitored_unemployment", Urgency::Urgent)]);
        assert!(v.iter().any(|v| v.raised));
        // Unmatched: nothing can fire.
        let v = rules.evaluate(
            &s("emergency.disaster_victim", &details(serde_json::json!({}))),
            &HouseholdFacts::default(),
            &none,
        );
        assert!(fired(&v).is_empty());
    }

    #[test]
    fn the_shipped_samples_explain_which_rule_fires() {
        let rules = shipped();
        let dir = crate::PolicyEngine::shipped_dir().join("examples");
        for (file, rule) in [
            ("warning-hospital.json", "hospital_costs"),
            ("warning-disaster.json", "disaster_victim"),
            ("warning-death.json", "sole_earner_death"),
            ("warning-unemployment-repeat.json", "monitored_unemployment"),
        ] {
            let src = std::fs::read_to_string(dir.join(file)).unwrap();
            let sample: Sample = serde_json::from_str(&src).unwrap();
            let text = rules.explain(&sample);
            assert!(text.contains(&format!("FIRES   {rule}:")), "{file}: {text}");
            assert!(text.contains("1 rule(s) fire"), "{file}: {text}");
        }
    }

    #[test]
    fn a_bad_rule_is_refused_naming_rule_and_field() {
        let good = std::fs::read_to_string(crate::PolicyEngine::shipped_dir().join(WARNINGS_FILE))
            .unwrap();
        let file = Path::new("warnings.toml");
        for (from, to, key) in [
            (
                "tier = \"emergency\"",
                "tier = \"asap\"",
                "rule.disaster_victim.tier",
            ),
            (
                "window_days = 30",
                "window_days = 0",
                "rule.hospital_costs.amount.window_days",
            ),
            (
                "370811 =",
                "3708 =",
                "rule.hospital_costs.amount.threshold_fen.2026.3708",
            ),
            (
                "who = \"anyone\"",
                "who = \"everyone\"",
                "rule.disaster_victim.who",
            ),
        ] {
            assert!(good.contains(from), "{from}");
            let bad = good.replacen(from, to, 1);
            let e = WarningRules::parse(file, &bad).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
        let e = WarningRules::parse(file, &good.replacen("[repeat]", "[repeat]\nextra = 1", 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("repeat.extra"), "{e}");
    }
}
