//! `schemas::ResidentId::parse`: never panics; an accepted number re-parses to itself, rebuilds
//! from its parts, round-trips through serde, and never shows its birth date in `Display`/`Debug`;
//! an error message never repeats a run of 15 or more digits of the input.
#![no_main]

use jishijiu_fuzz::TODAY;
use libfuzzer_sys::fuzz_target;
use schemas::ResidentId;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ResidentId::parse(s);
    let _ = s.parse::<ResidentId>();
    match ResidentId::parse_on(s, TODAY) {
        Ok(id) => {
            let full = id.expose();
            assert_eq!(full.len(), 18);
            assert_eq!(ResidentId::parse_on(full, TODAY).as_ref(), Ok(&id));
            let shown = format!("{id} {id:?} {}", id.masked());
            assert!(!shown.contains(&full[6..14]), "the birth date is shown");
            assert!(!shown.contains(full));
            let rebuilt = ResidentId::from_parts(id.region(), id.birth_date(), id.sequence());
            assert_eq!(rebuilt.as_ref(), Ok(&id));
            let _ = (id.sex(), id.age_on(TODAY), id.age_on(time::Date::MIN));
            let json = serde_json::to_string(&id).expect("serializes");
            let back: Result<ResidentId, _> = serde_json::from_str(&json);
            assert_eq!(back.ok().as_ref(), Some(&id));
        }
        Err(e) => {
            // A run of 15+ digits could be a resident ID: the message must not repeat it.
            let msg = format!("{e} {e:?}");
            for run in s.split(|c: char| !c.is_ascii_digit()) {
                assert!(
                    run.len() < 15 || !msg.contains(run),
                    "the error repeats the input"
                );
            }
        }
    }
});
