//! The working-day calendar: arithmetic across the 2026 Spring Festival and National Day weeks
//! (with their make-up working days), provisional deadlines in a year without a file, and the
//! load-time refusals of malformed files.

use policies::{CalendarError, DayKind, Deadline, PolicyEngine, WorkingCalendar};
use time::Date;
use time::macros::date;

fn shipped() -> WorkingCalendar {
    WorkingCalendar::load_dir(WorkingCalendar::shipped_dir()).expect("shipped calendar loads")
}

/// `n` working days after `start` land on `due`, and counting back gives `n` again.
fn check(cal: &WorkingCalendar, start: Date, n: u32, due: Date, provisional: bool) {
    let got = cal.add_working_days(start, n);
    assert_eq!(
        got,
        Deadline {
            date: due,
            provisional
        },
        "{n} working days after {start}"
    );
    assert_eq!(
        cal.working_days_between(start, due),
        (n, provisional),
        "working days in ({start}, {due}]"
    );
}

#[test]
fn all_six_shipped_years_load_and_cite_their_notice() {
    let cal = shipped();
    let years: Vec<i32> = cal.years().map(|y| y.year).collect();
    assert_eq!(years, vec![2021, 2022, 2023, 2024, 2025, 2026]);
    for y in cal.years() {
        assert_eq!(
            y.notice.title,
            format!("国务院办公厅关于{}年部分节假日安排的通知", y.year)
        );
        assert!(
            y.notice.number.starts_with("国办发明电〔"),
            "{}",
            y.notice.number
        );
        assert!(
            y.notice.issued.year() == y.year - 1,
            "{}: issued {}",
            y.year,
            y.notice.issued
        );
        assert!(!y.holidays.is_empty(), "{}", y.year);
    }
    let y2026 = cal.years().find(|y| y.year == 2026).expect("2026");
    assert_eq!(y2026.notice.number, "国办发明电〔2025〕7号");
    assert_eq!(y2026.notice.issued, date!(2025 - 11 - 04));
    // The policy engine loads the same calendar with the rest of the directory.
    let engine = PolicyEngine::load(PolicyEngine::shipped_dir()).expect("shipped policies load");
    assert_eq!(engine.calendar(), &cal);
}

#[test]
fn spring_festival_2026_week() {
    let cal = shipped();
    // 2026-02-15 (Sun) .. 02-23 (Mon) off; Saturdays 02-14 and 02-28 worked.
    assert_eq!(
        cal.day(date!(2026 - 02 - 17)).kind,
        DayKind::Holiday {
            name_zh: "春节".into(),
            name_en: "Spring Festival".into()
        }
    );
    assert!(matches!(
        cal.day(date!(2026 - 02 - 14)).kind,
        DayKind::MakeUpWorkday { .. }
    ));
    assert!(cal.is_working_day(date!(2026 - 02 - 28)));
    assert!(
        !cal.is_working_day(date!(2026 - 02 - 23)),
        "the Monday after is still off"
    );
    assert!(cal.is_working_day(date!(2026 - 02 - 24)));
    assert!(!cal.is_working_day(date!(2026 - 02 - 21)));

    // Thursday before: Fri 13, Sat 14 (make-up), then Tue 24, Wed 25, Thu 26.
    check(&cal, date!(2026 - 02 - 12), 5, date!(2026 - 02 - 26), false);
    // The make-up Saturday is the next working day after the Friday.
    check(&cal, date!(2026 - 02 - 13), 1, date!(2026 - 02 - 14), false);
    // From inside the holiday: the first working day is the Tuesday after it.
    check(&cal, date!(2026 - 02 - 16), 1, date!(2026 - 02 - 24), false);
    // The second make-up Saturday counts: Wed 25, Thu 26, Fri 27, Sat 28.
    check(&cal, date!(2026 - 02 - 24), 4, date!(2026 - 02 - 28), false);
    check(&cal, date!(2026 - 02 - 24), 5, date!(2026 - 03 - 02), false);
}

#[test]
fn national_day_2026_week() {
    let cal = shipped();
    // Sunday 09-20 worked; 中秋 09-25..27; 国庆 10-01..07; Saturday 10-10 worked.
    assert!(cal.is_working_day(date!(2026 - 09 - 20)));
    assert!(!cal.is_working_day(date!(2026 - 09 - 25)));
    assert!(!cal.is_working_day(date!(2026 - 10 - 07)));
    assert!(cal.is_working_day(date!(2026 - 10 - 10)));
    assert_eq!(cal.day(date!(2026 - 10 - 11)).kind, DayKind::Weekend);

    check(&cal, date!(2026 - 09 - 18), 1, date!(2026 - 09 - 20), false);
    check(&cal, date!(2026 - 09 - 24), 2, date!(2026 - 09 - 29), false);
    // Wednesday before: Thu 8, Fri 9, Sat 10 (make-up), Mon 12, Tue 13.
    check(&cal, date!(2026 - 09 - 30), 5, date!(2026 - 10 - 13), false);
    // Monday–Friday counting would have said 10-07, in the middle of the holiday.
    assert_ne!(
        cal.add_working_days(date!(2026 - 09 - 30), 5).date,
        date!(2026 - 10 - 07)
    );
}

#[test]
fn a_deadline_reaching_into_a_year_without_a_file_is_provisional_monday_to_friday() {
    let cal = shipped();
    assert!(!cal.has_year(2027));
    // Tue 29, Wed 30, Thu 31, then 2027: Fri 1 (counted Monday–Friday), Mon 4.
    check(&cal, date!(2026 - 12 - 28), 5, date!(2027 - 01 - 04), true);
    // Staying inside 2026 is final.
    check(&cal, date!(2026 - 12 - 24), 3, date!(2026 - 12 - 29), false);
    let day = cal.day(date!(2027 - 01 - 01));
    assert!(day.provisional && day.is_working());
    assert_eq!(cal.day(date!(2027 - 01 - 02)).kind, DayKind::Weekend);

    // An empty calendar is Monday–Friday and provisional everywhere.
    let empty = WorkingCalendar::empty();
    check(
        &empty,
        date!(2026 - 09 - 30),
        5,
        date!(2026 - 10 - 07),
        true,
    );
}

#[test]
fn the_new_year_holiday_may_begin_in_the_previous_december() {
    let cal = shipped();
    // 2023's notice: 2022-12-31 .. 2023-01-02; 2024's: 2023-12-30 .. 2024-01-01.
    assert!(matches!(
        cal.day(date!(2022 - 12 - 31)).kind,
        DayKind::Holiday { .. }
    ));
    check(&cal, date!(2022 - 12 - 30), 1, date!(2023 - 01 - 03), false);
    check(&cal, date!(2023 - 12 - 29), 1, date!(2024 - 01 - 02), false);
}

#[test]
fn a_missing_next_year_is_reported_from_the_first_of_december() {
    let cal = shipped();
    assert_eq!(cal.missing_next_year(date!(2026 - 11 - 30)), None);
    assert_eq!(cal.missing_next_year(date!(2026 - 12 - 01)), Some(2027));
    assert_eq!(cal.missing_next_year(date!(2026 - 12 - 31)), Some(2027));
    assert_eq!(
        cal.missing_next_year(date!(2025 - 12 - 01)),
        None,
        "2026 is loaded"
    );
}

// ---- load-time refusals ----

/// A directory holding the shipped 2026 file, edited by `f`, under `name`.
fn load_edited(
    name: &str,
    f: impl FnOnce(String) -> String,
) -> Result<WorkingCalendar, CalendarError> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = std::fs::read_to_string(WorkingCalendar::shipped_dir().join("2026.toml"))
        .expect("read 2026.toml");
    std::fs::write(tmp.path().join(name), f(src)).expect("write");
    WorkingCalendar::load_dir(tmp.path())
}

fn replace(src: String, old: &str, new: &str) -> String {
    assert!(src.contains(old), "2026.toml does not contain {old:?}");
    src.replacen(old, new, 1)
}

/// The load fails naming `file` and `key`, with `words` in the message.
fn refused(result: Result<WorkingCalendar, CalendarError>, file: &str, key: &str, words: &str) {
    match result {
        Err(CalendarError::Invalid {
            file: f,
            key: k,
            message,
        }) => {
            assert_eq!(
                f.file_name().and_then(|n| n.to_str()),
                Some(file),
                "{message}"
            );
            assert_eq!(k, key, "{message}");
            assert!(message.contains(words), "{message:?} lacks {words:?}");
        }
        other => panic!("expected a refusal of {file} at {key}, got {other:?}"),
    }
}

#[test]
fn the_unedited_copy_loads() {
    let cal = load_edited("2026.toml", |s| s).expect("loads");
    assert!(cal.has_year(2026) && !cal.has_year(2025));
}

#[test]
fn year_must_match_the_file_name() {
    refused(
        load_edited("2025.toml", |s| s),
        "2025.toml",
        "year",
        "2025.toml",
    );
    refused(
        load_edited("holidays.toml", |s| s),
        "holidays.toml",
        "(file name)",
        "<year>.toml",
    );
}

#[test]
fn a_make_up_day_must_fall_on_a_weekend() {
    refused(
        load_edited("2026.toml", |s| {
            replace(s, "date = 2026-02-14", "date = 2026-02-13")
        }),
        "2026.toml",
        "makeup_workday[1].date",
        "Friday",
    );
}

#[test]
fn a_date_cannot_be_both_holiday_and_make_up_day() {
    refused(
        load_edited("2026.toml", |s| {
            replace(s, "date = 2026-01-04", "date = 2026-01-03")
        }),
        "2026.toml",
        "makeup_workday[0].date",
        "already listed as holiday New Year's Day",
    );
}

#[test]
fn holidays_cannot_overlap() {
    refused(
        load_edited("2026.toml", |s| {
            s + "\n[[holiday]]\nname_zh = \"国庆节\"\nname_en = \"National Day\"\nfrom = 2026-10-07\nto = 2026-10-08\n"
        }),
        "2026.toml",
        "holiday[7]",
        "2026-10-07 is already listed",
    );
}

#[test]
fn dates_must_lie_in_the_files_year() {
    refused(
        load_edited("2026.toml", |s| {
            replace(s, "to = 2026-10-07", "to = 2027-10-07")
        }),
        "2026.toml",
        "holiday[6].to",
        "not in 2026",
    );
    refused(
        load_edited("2026.toml", |s| {
            replace(s, "from = 2026-04-04", "from = 2025-04-04")
        }),
        "2026.toml",
        "holiday[2].from",
        "not in 2026",
    );
    refused(
        load_edited("2026.toml", |s| {
            replace(s, "from = 2026-10-01", "from = 2026-10-09")
        }),
        "2026.toml",
        "holiday[6].from",
        "after",
    );
}

#[test]
fn malformed_values_and_keys_name_the_field() {
    refused(
        load_edited("2026.toml", |s| {
            replace(s, "from = 2026-02-15", "from = \"2026-02-15\"")
        }),
        "2026.toml",
        "holiday[1].from",
        "must be a date",
    );
    refused(
        load_edited("2026.toml", |s| {
            replace(s, "name_en = \"Labour Day\"", "name_en = \"\"")
        }),
        "2026.toml",
        "holiday[3].name_en",
        "must not be empty",
    );
    refused(
        load_edited("2026.toml", |s| {
            replace(s, "for_zh = \"春节\"", "for_zh = \"春节\"\nweekday = 6")
        }),
        "2026.toml",
        "makeup_workday[1].weekday",
        "unknown key",
    );
    refused(
        load_edited("2026.toml", |s| replace(s, "number = ", "numero = ")),
        "2026.toml",
        "notice.numero",
        "unknown key",
    );
    let err = load_edited("2026.toml", |s| replace(s, "[notice]", "[notice")).unwrap_err();
    assert!(err.to_string().contains("2026.toml"), "{err}");
}

#[test]
fn two_files_cannot_list_the_same_day() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src =
        std::fs::read_to_string(WorkingCalendar::shipped_dir().join("2026.toml")).expect("read");
    std::fs::write(tmp.path().join("2026.toml"), &src).expect("write");
    // 2027's New Year's Day holiday may begin on 2026-12-31 (as 2023's began on 2022-12-31).
    let y2027 = "year = 2027\n[notice]\ntitle = \"国务院办公厅关于2027年部分节假日安排的通知\"\nnumber = \"国办发明电〔2026〕1号\"\nissued = 2026-11-01\n[[holiday]]\nname_zh = \"元旦\"\nname_en = \"New Year's Day\"\nfrom = 2026-12-31\nto = 2027-01-01\n";
    std::fs::write(tmp.path().join("2027.toml"), y2027).expect("write");
    let cal = WorkingCalendar::load_dir(tmp.path()).expect("a December start is allowed");
    assert!(!cal.is_working_day(date!(2026 - 12 - 31)));
    assert!(!cal.day(date!(2026 - 12 - 31)).provisional);
    // ... but not on a day the 2026 file already lists.
    let with_eve = src
        + "\n[[holiday]]\nname_zh = \"测试\"\nname_en = \"Test\"\nfrom = 2026-12-31\nto = 2026-12-31\n";
    std::fs::write(tmp.path().join("2026.toml"), with_eve).expect("write");
    refused(
        WorkingCalendar::load_dir(tmp.path()),
        "2027.toml",
        "holiday[0]",
        "2026-12-31 is already listed as holiday Test",
    );
    // Only December of the previous year.
    let early = y2027.replace("from = 2026-12-31", "from = 2026-10-07");
    std::fs::write(tmp.path().join("2027.toml"), early).expect("write");
    refused(
        WorkingCalendar::load_dir(tmp.path()),
        "2027.toml",
        "holiday[0].from",
        "previous December",
    );
}
