//! C2SP checkpoints (`tlog::checkpoint`): parsing note text (`Checkpoint::parse_with_extensions`),
//! opening a signed checkpoint against the test log key and a k-of-n witness policy
//! (`open_checkpoint`), and appending a witness's cosignature lines (`add_cosignatures`). Never
//! panics; a parsed checkpoint prints back to its text; an opened one has the expected origin and
//! enough verified cosignatures.
//!
//! The input is read three ways: as a signed note; as checkpoint text, which the harness signs
//! with the log key and cosigns with the witness (reaching the checks behind the signatures); and,
//! after its first blank line, as cosignature lines appended to that signed note.
#![no_main]

use jishijiu_fuzz::{LOG_ORIGIN, log_signer, witness};
use libfuzzer_sys::fuzz_target;
use tlog::checkpoint::{WitnessPolicy, add_cosignatures, open_checkpoint};
use tlog::{Checkpoint, note::sign_note};

fn open(msg: &[u8], policies: &[WitnessPolicy]) {
    let log_key = log_signer().verifier_key();
    for policy in policies {
        if let Ok(c) = open_checkpoint(msg, LOG_ORIGIN, &log_key, policy) {
            assert_eq!(c.checkpoint.origin, LOG_ORIGIN);
            assert!(c.cosignatures.len() >= policy.quorum);
            assert!(c.note.verified.iter().any(|s| s.name == log_key.name()));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let policies = [
        WitnessPolicy::default(),
        WitnessPolicy {
            witnesses: vec![witness().verifier_key()],
            quorum: 1,
        },
    ];
    open(data, &policies);
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (text, cosignature_lines) = match input.find("\n\n") {
        Some(i) => (&input[..=i], &input[i + 2..]),
        None => (input, ""),
    };
    if let Ok((c, extensions)) = Checkpoint::parse_with_extensions(text) {
        let mut printed = c.to_note_text();
        for e in &extensions {
            printed.push_str(e);
            printed.push('\n');
        }
        assert_eq!(printed, text, "a checkpoint prints back to its text");
        assert_eq!(Checkpoint::parse(&c.to_note_text()).ok(), Some(c));
    }
    let Ok(signed) = sign_note(text, &[log_signer()]) else {
        return;
    };
    let cosigned = format!("{signed}{}", witness().cosign(text, 1_764_460_800));
    open(signed.as_bytes(), &policies);
    open(cosigned.as_bytes(), &policies);
    if let Ok(more) = add_cosignatures(&signed, cosignature_lines) {
        open(more.as_bytes(), &policies);
    }
});
