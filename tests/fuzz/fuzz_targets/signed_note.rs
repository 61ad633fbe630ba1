//! C2SP signed notes (`tlog::note`): framing (`split_note`), verification against known keys
//! (`open_note`, with the test log key and a witness key), and the key text forms
//! (`VerifierKey::parse`, `Signer::from_skey_text`). Never panics; an opened note has at least one
//! verified signature, each by a known key, and the text it returns is the signed prefix of the
//! input; a parsed verifier key prints back to its input (up to the case of its hex key ID).
#![no_main]

use jishijiu_fuzz::{log_signer, witness};
use libfuzzer_sys::fuzz_target;
use tlog::note::{Signer, VerifierKey, open_note, split_note};

fuzz_target!(|data: &[u8]| {
    if let Ok((text, sigs)) = split_note(data) {
        assert!(text.ends_with('\n'));
        assert!(data.starts_with(text.as_bytes()));
        // The signature block re-renders to the bytes it was read from.
        let block: String = sigs.iter().map(|s| s.to_line()).collect();
        assert_eq!(&data[text.len() + 1..], block.as_bytes());
    }
    let known = [log_signer().verifier_key(), witness().verifier_key()];
    if let Ok(note) = open_note(data, &known) {
        assert!(!note.verified.is_empty());
        for s in &note.verified {
            assert!(
                known
                    .iter()
                    .any(|k| k.name() == s.name && k.key_id() == s.key_id)
            );
        }
        assert!(data.starts_with(note.text.as_bytes()));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(vk) = VerifierKey::parse(text) {
        let printed = vk.to_string();
        assert!(printed.eq_ignore_ascii_case(text.trim_end_matches(['\n', '\r'])));
        assert_eq!(VerifierKey::parse(&printed).ok(), Some(vk));
    }
    if let Ok(signer) = Signer::from_skey_text(text) {
        let again = Signer::from_skey_text(&signer.to_skey_text()).expect("own key text parses");
        assert_eq!(again.verifier_key(), signer.verifier_key());
    }
});
