//! 公民身份号码: the resident identity number, parsed per GB 11643-1999.
//!
//! An 18-character number: a 6-digit region code (地址码, GB/T 2260), an 8-digit birth date
//! (出生日期码, `YYYYMMDD`), a 3-digit sequence (顺序码; odd for men, even for women) and one
//! ISO 7064 MOD 11-2 check character (校验码, `0`-`9` or `X`).
//!
//! Invariants:
//! - A [`ResidentId`] always holds a number that passed every rule; the check character is stored
//!   upper case (`x` is accepted on input and normalised to `X`).
//! - `Debug` and `Display` **mask** the number (`370811********123X`) so it cannot reach a log by
//!   accident. The full number is only available through [`ResidentId::expose`], for the wire.
//! - Error messages never repeat the number or its birth date; they say which rule failed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Date, Month};

/// The earliest birth date accepted. Older records exist only in archives.
pub const MIN_BIRTH_DATE: Date = time::macros::date!(1880 - 01 - 01);

/// GB/T 2260 province-level codes (the first two digits of the region code).
const PROVINCE_CODES: [&str; 34] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82",
];

/// ISO 7064 MOD 11-2 weights for the first 17 digits: `2^(17-i) mod 11`.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check character for a weighted sum modulo 11.
const CHECK_CHARS: [u8; 11] = *b"10X98765432";

/// 公民身份号码: a resident identity number that passed every GB 11643-1999 rule.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResidentId(String);

/// 性别: sex, from the parity of the sequence code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// 男: odd sequence code
    Male,
    /// 女: even sequence code
    Female,
}

/// Which GB 11643-1999 rule a string breaks. Messages never contain the number itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    #[error("must be 18 characters, got {0}")]
    Length(usize),
    /// `position` is 1-based.
    #[error("character {position} must be a digit")]
    NotDigit { position: usize },
    #[error("character 18 (check digit) must be a digit or X")]
    CheckCharacter,
    #[error("region code (characters 1-6) has unknown province code {0}")]
    UnknownProvince(String),
    #[error("region code must be 6 digits")]
    RegionShape,
    #[error("birth date (characters 7-14) is not a calendar date")]
    BirthDateInvalid,
    #[error("birth date (characters 7-14) is before 1880-01-01")]
    BirthDateTooEarly,
    #[error("birth date (characters 7-14) is in the future")]
    BirthDateInFuture,
    #[error("sequence code must be 0..=999, got {0}")]
    Sequence(u16),
    #[error("check digit is {found}, expected {expected}")]
    CheckDigit { found: char, expected: char },
}

impl ResidentId {
    /// Parse and validate a number, with "today" taken from the clock in China Standard Time
    /// (UTC+8), so that a baby born today in Jining is not "in the future".
    pub fn parse(s: &str) -> Result<Self, ResidentIdError> {
        Self::parse_on(s, today_in_china())
    }

    /// Parse and validate a number against an explicit "today" (deterministic; for tests and for
    /// re-checking historical records).
    pub fn parse_on(s: &str, today: Date) -> Result<Self, ResidentIdError> {
        let n = s.chars().count();
        if n != 18 {
            return Err(ResidentIdError::Length(n));
        }
        let bytes = s.as_bytes(); // 18 chars and (checked below) all ASCII
        for (i, &b) in bytes.iter().take(17).enumerate() {
            if !b.is_ascii_digit() {
                return Err(ResidentIdError::NotDigit { position: i + 1 });
            }
        }
        // 18 chars with 17 ASCII digits: the 18th char is the remainder of the string.
        let last = &s[17..];
        let found = match last {
            "x" | "X" => 'X',
            d if d.len() == 1 && d.as_bytes()[0].is_ascii_digit() => d.as_bytes()[0] as char,
            _ => return Err(ResidentIdError::CheckCharacter),
        };
        check_region(&s[0..6])?;
        let birth = parse_birth(&s[6..14])?;
        check_birth_range(birth, today)?;
        let expected = check_char(&bytes[..17]);
        if found != expected {
            return Err(ResidentIdError::CheckDigit { found, expected });
        }
        let mut normalised = String::with_capacity(18);
        normalised.push_str(&s[..17]);
        normalised.push(found);
        Ok(Self(normalised))
    }

    /// Build a number from its parts and compute the check digit (the simulator uses this).
    ///
    /// `region` must be a 6-digit code with a known province, `birth` must lie between
    /// [`MIN_BIRTH_DATE`] and 9999-12-31 (it is not compared with today, so the simulator may
    /// build numbers for any date it likes; [`ResidentId::parse`] will reject future ones), and
    /// `seq` must be at most 999.
    pub fn from_parts(region: &str, birth: Date, seq: u16) -> Result<Self, ResidentIdError> {
        if region.len() != 6 || !region.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ResidentIdError::RegionShape);
        }
        check_region(region)?;
        if birth < MIN_BIRTH_DATE {
            return Err(ResidentIdError::BirthDateTooEarly);
        }
        if birth.year() > 9999 {
            return Err(ResidentIdError::BirthDateInvalid);
        }
        if seq > 999 {
            return Err(ResidentIdError::Sequence(seq));
        }
        let mut s = format!(
            "{region}{:04}{:02}{:02}{seq:03}",
            birth.year(),
            u8::from(birth.month()),
            birth.day()
        );
        let c = check_char(s.as_bytes());
        s.push(c);
        Ok(Self(s))
    }

    /// The full 18-character number, for the wire and for storage that needs it. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Same as [`ResidentId::expose`]; named for symmetry with other newtypes.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// 地址码: the 6-digit region code where the number was issued (characters 1-6).
    pub fn region(&self) -> &str {
        &self.0[0..6]
    }

    /// 出生日期: the birth date (characters 7-14).
    pub fn birth_date(&self) -> Date {
        // Invariant: validated at construction.
        parse_birth(&self.0[6..14]).unwrap_or(MIN_BIRTH_DATE)
    }

    /// 顺序码: the 3-digit sequence code (characters 15-17).
    pub fn sequence(&self) -> u16 {
        self.0[14..17].parse().unwrap_or(0)
    }

    /// 性别: odd sequence = male, even = female.
    pub fn sex(&self) -> Sex {
        if self.sequence() % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// Age in whole years on `on` (0 before the first birthday; 0 if `on` precedes the birth).
    pub fn age_on(&self, on: Date) -> u32 {
        let b = self.birth_date();
        if on < b {
            return 0;
        }
        let mut age = on.year() - b.year();
        if (u8::from(on.month()), on.day()) < (u8::from(b.month()), b.day()) {
            age -= 1;
        }
        u32::try_from(age).unwrap_or(0)
    }

    /// The masked form used by `Debug` and `Display`: region code, 8 stars, last 4 characters.
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[0..6], &self.0[14..18])
    }

    /// 假名: a keyed pseudonym (HMAC-SHA-256, lowercase hex) for logs, metrics and the access
    /// log. The same key always gives the same pseudonym for the same person.
    pub fn pseudonym(&self, key: &ring::hmac::Key) -> String {
        hex::encode(ring::hmac::sign(key, self.0.as_bytes()).as_ref())
    }
}

fn today_in_china() -> Date {
    (time::OffsetDateTime::now_utc() + time::Duration::hours(8)).date()
}

fn check_region(region: &str) -> Result<(), ResidentIdError> {
    let province = &region[0..2];
    if PROVINCE_CODES.contains(&province) {
        Ok(())
    } else {
        Err(ResidentIdError::UnknownProvince(province.to_owned()))
    }
}

/// `digits` is exactly 8 ASCII digits.
fn parse_birth(digits: &str) -> Result<Date, ResidentIdError> {
    let year: i32 = digits[0..4]
        .parse()
        .map_err(|_| ResidentIdError::BirthDateInvalid)?;
    let month: u8 = digits[4..6]
        .parse()
        .map_err(|_| ResidentIdError::BirthDateInvalid)?;
    let day: u8 = digits[6..8]
        .parse()
        .map_err(|_| ResidentIdError::BirthDateInvalid)?;
    let month = Month::try_from(month).map_err(|_| ResidentIdError::BirthDateInvalid)?;
    Date::from_calendar_date(year, month, day).map_err(|_| ResidentIdError::BirthDateInvalid)
}

fn check_birth_range(birth: Date, today: Date) -> Result<(), ResidentIdError> {
    if birth < MIN_BIRTH_DATE {
        Err(ResidentIdError::BirthDateTooEarly)
    } else if birth > today {
        Err(ResidentIdError::BirthDateInFuture)
    } else {
        Ok(())
    }
}

/// ISO 7064 MOD 11-2 check character over 17 ASCII digits.
fn check_char(first17: &[u8]) -> char {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(&d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize] as char
}

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({})", self.masked())
    }
}

impl std::str::FromStr for ResidentId {
    type Err = ResidentIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for ResidentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ResidentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ResidentId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for ResidentId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ResidentId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "公民身份号码: 18-character resident identity number (GB 11643-1999); the \
                            receiver also checks the birth date and the ISO 7064 MOD 11-2 check digit",
            "pattern": "^[1-8][0-9]{16}[0-9Xx]$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 29);

    fn check(input: &str, expected: Result<&str, ResidentIdError>) {
        assert_eq!(
            ResidentId::parse_on(input, TODAY).map(|id| id.expose().to_owned()),
            expected.map(str::to_owned),
            "input {input:?}"
        );
    }

    #[test]
    fn accepts_valid_numbers() {
        // Check digits computed by hand with the MOD 11-2 weights.
        check("11010519491231002X", Ok("11010519491231002X"));
        check("11010519491231002x", Ok("11010519491231002X"));
        check("440524188001010014", Ok("440524188001010014"));
        check(
            "370811199001011234",
            Err(ResidentIdError::CheckDigit {
                found: '4',
                expected: '6',
            }),
        );
        check("370811199001011236", Ok("370811199001011236"));
        check("370882200002290012", Ok("370882200002290012")); // 2000 is a leap year
        check("370811202611290011", Ok("370811202611290011")); // born today
    }

    #[test]
    fn rejects_each_rule_with_its_own_error() {
        check("", Err(ResidentIdError::Length(0)));
        check("37081119900101123", Err(ResidentIdError::Length(17)));
        check("3708111990010112366", Err(ResidentIdError::Length(19)));
        check("37081119900101123６", Err(ResidentIdError::CheckCharacter)); // full-width 6
        check(
            "37081119900101A236",
            Err(ResidentIdError::NotDigit { position: 15 }),
        );
        check(
            " 70811199001011236",
            Err(ResidentIdError::NotDigit { position: 1 }),
        );
        check("37081119900101123Y", Err(ResidentIdError::CheckCharacter));
        check(
            "990811199001011236",
            Err(ResidentIdError::UnknownProvince("99".into())),
        );
        check(
            "000811199001011236",
            Err(ResidentIdError::UnknownProvince("00".into())),
        );
        check("370811199002301236", Err(ResidentIdError::BirthDateInvalid)); // 30 February
        check("370811190002290011", Err(ResidentIdError::BirthDateInvalid)); // 1900 not leap
        check("370811199013011236", Err(ResidentIdError::BirthDateInvalid)); // month 13
        check("370811199001001236", Err(ResidentIdError::BirthDateInvalid)); // day 0
        check(
            "370811187912311236",
            Err(ResidentIdError::BirthDateTooEarly),
        );
        check(
            "370811202611300013",
            Err(ResidentIdError::BirthDateInFuture),
        );
        check("11010519491231002 ", Err(ResidentIdError::CheckCharacter));
        check(
            "110105194912310021",
            Err(ResidentIdError::CheckDigit {
                found: '1',
                expected: 'X',
            }),
        );
        check(
            "440524188001010015",
            Err(ResidentIdError::CheckDigit {
                found: '5',
                expected: '4',
            }),
        );
    }

    #[test]
    fn error_messages_name_the_rule_and_not_the_number() {
        let e = ResidentId::parse_on("110105194912310021", TODAY).unwrap_err();
        assert_eq!(e.to_string(), "check digit is 1, expected X");
        let e = ResidentId::parse_on("370811199002301236", TODAY).unwrap_err();
        assert_eq!(
            e.to_string(),
            "birth date (characters 7-14) is not a calendar date"
        );
        assert!(!e.to_string().contains("19900230"));
    }

    #[test]
    fn debug_and_display_mask_the_number() {
        let id = ResidentId::parse_on("11010519491231002X", TODAY).unwrap();
        assert_eq!(id.to_string(), "110105********002X");
        assert_eq!(format!("{id:?}"), "ResidentId(110105********002X)");
        assert!(!format!("{id:?} {id} {id:#?}").contains("19491231"));
    }

    #[test]
    fn accessors_read_the_parts() {
        let id = ResidentId::parse_on("11010519491231002X", TODAY).unwrap();
        assert_eq!(id.region(), "110105");
        assert_eq!(id.birth_date(), date!(1949 - 12 - 31));
        assert_eq!(id.sequence(), 2);
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.age_on(date!(2026 - 11 - 29)), 76);
        assert_eq!(id.age_on(date!(2026 - 12 - 31)), 77);
        assert_eq!(id.age_on(date!(1949 - 01 - 01)), 0);
        let man = ResidentId::parse_on("440524188001010014", TODAY).unwrap();
        assert_eq!(man.sex(), Sex::Male);
    }

    #[test]
    fn from_parts_computes_the_check_digit() {
        let id = ResidentId::from_parts("110105", date!(1949 - 12 - 31), 2).unwrap();
        assert_eq!(id.expose(), "11010519491231002X");
        assert_eq!(
            ResidentId::from_parts("37081", date!(1990 - 01 - 01), 1),
            Err(ResidentIdError::RegionShape)
        );
        assert_eq!(
            ResidentId::from_parts("990811", date!(1990 - 01 - 01), 1),
            Err(ResidentIdError::UnknownProvince("99".into()))
        );
        assert_eq!(
            ResidentId::from_parts("370811", date!(1990 - 01 - 01), 1000),
            Err(ResidentIdError::Sequence(1000))
        );
        assert_eq!(
            ResidentId::from_parts("370811", date!(1850 - 01 - 01), 1),
            Err(ResidentIdError::BirthDateTooEarly)
        );
    }

    #[test]
    fn serde_is_a_plain_string_and_validates() {
        let id = ResidentId::parse_on("11010519491231002X", TODAY).unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"11010519491231002X\""
        );
        let back: ResidentId = serde_json::from_str("\"11010519491231002x\"").unwrap();
        assert_eq!(back, id);
        let err = serde_json::from_str::<ResidentId>("\"110105194912310021\"").unwrap_err();
        assert!(
            err.to_string().contains("check digit is 1, expected X"),
            "{err}"
        );
    }

    #[test]
    fn pseudonym_is_keyed_and_stable() {
        let id = ResidentId::parse_on("11010519491231002X", TODAY).unwrap();
        let k1 = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"key one");
        let k2 = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"key two");
        assert_eq!(id.pseudonym(&k1), id.pseudonym(&k1));
        assert_ne!(id.pseudonym(&k1), id.pseudonym(&k2));
        assert_eq!(id.pseudonym(&k1).len(), 64);
        assert!(!id.pseudonym(&k1).contains("19491231"));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn arb_parts() -> impl Strategy<Value = (String, Date, u16)> {
            let province = proptest::sample::select(PROVINCE_CODES.to_vec());
            let birth = (date!(1880 - 01 - 01).to_julian_day()..=TODAY.to_julian_day(),)
                .prop_map(|(j,)| Date::from_julian_day(j).unwrap());
            (province, 0u32..10_000, birth, 0u16..1000)
                .prop_map(|(p, rest, b, s)| (format!("{p}{rest:04}"), b, s))
        }

        proptest! {
            #[test]
            fn from_parts_then_parse_round_trips((region, birth, seq) in arb_parts()) {
                let id = ResidentId::from_parts(&region, birth, seq).unwrap();
                let parsed = ResidentId::parse_on(id.expose(), TODAY).unwrap();
                prop_assert_eq!(&parsed, &id);
                prop_assert_eq!(parsed.region(), region.as_str());
                prop_assert_eq!(parsed.birth_date(), birth);
                prop_assert_eq!(parsed.sequence(), seq);
                prop_assert_eq!(parsed.sex() == Sex::Male, seq % 2 == 1);
                // The birth date and the full number never show in Debug or Display.
                let shown = format!("{parsed:?} {parsed} {parsed:#?}");
                prop_assert!(!shown.contains(id.expose()));
                prop_assert!(!shown.contains(&id.expose()[6..14]));
            }

            /// MOD 11-2 detects every single-digit substitution: changing one of the first 17
            /// digits always makes the number invalid (by the check digit or an earlier rule).
            #[test]
            fn any_single_digit_change_is_rejected(
                (region, birth, seq) in arb_parts(),
                pos in 0usize..17,
                delta in 1u8..10,
            ) {
                let id = ResidentId::from_parts(&region, birth, seq).unwrap();
                let mut bytes = id.expose().as_bytes().to_vec();
                bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
                let mutated = String::from_utf8(bytes).unwrap();
                prop_assert!(ResidentId::parse_on(&mutated, TODAY).is_err());
            }
        }
    }
}
