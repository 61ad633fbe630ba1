//! C2SP `tlog-checkpoint` (c2sp.org/tlog-checkpoint@v1.0.0): the signed tree head.
//!
//! The note text is `<origin>\n<size>\n<base64 root>\n` followed by optional non-empty extension
//! lines. We never emit extension lines; parsing tolerates them ([`Checkpoint::parse_with_extensions`]
//! returns them). Origins should be URL-like (`hub.example/audit-log`: no scheme, no spaces, no `+`);
//! [`Checkpoint::new`] enforces that for checkpoints we create, parsing accepts any non-empty origin.
//!
//! [`open_checkpoint`] checks a signed checkpoint against the log's key (type 0x01, required) and an
//! optional witness policy (k-of-n `tlog-cosignature/v1`). The signed note text itself is what is
//! exported to witnesses (tlog-witness `add-checkpoint`, see [`witness_request_body`]).

use crate::cosig::verify_cosignature;
use crate::hash::Hash;
use crate::note::{KeyKind, Note, Signature, Signer, VerifierKey, open_note, sign_note};
use crate::{Error, Result};

/// A tree head: origin, size and RFC 6962 root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// 日志标识: the log's origin line, e.g. `jishijiu.jining/access-log`.
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// RFC 6962 root of the first `size` entries.
    pub root: Hash,
}

/// Checks that an origin is URL-like: non-empty, no whitespace, no `+`, no control characters.
pub fn validate_origin(origin: &str) -> Result<()> {
    if origin.is_empty()
        || origin
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(Error::malformed(
            "checkpoint.origin",
            "must be non-empty and URL-like: no spaces, no '+', no control characters",
        ));
    }
    Ok(())
}

impl Checkpoint {
    /// A checkpoint for our own log (origin validated as URL-like).
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Checkpoint> {
        validate_origin(origin)?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// The note text: `origin\nsize\nroot\n`, no extension lines.
    pub fn to_note_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        )
    }

    /// Parses note text (signatures already removed), ignoring extension lines.
    pub fn parse(text: &str) -> Result<Checkpoint> {
        Self::parse_with_extensions(text).map(|(c, _)| c)
    }

    /// Parses note text and returns the extension lines too.
    pub fn parse_with_extensions(text: &str) -> Result<(Checkpoint, Vec<String>)> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| Error::malformed("checkpoint", "must end with a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.len() < 3 {
            return Err(Error::malformed(
                "checkpoint",
                "needs origin, size and root lines",
            ));
        }
        let origin = lines[0];
        if origin.is_empty() {
            return Err(Error::malformed("checkpoint.origin", "must not be empty"));
        }
        let size_str = lines[1];
        let size = parse_size("checkpoint.size", size_str)?;
        let root = Hash::from_base64("checkpoint.root", lines[2])?;
        let extensions: Vec<String> = lines[3..].iter().map(|s| (*s).to_owned()).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(Error::malformed(
                "checkpoint.extension",
                "extension lines must not be empty",
            ));
        }
        Ok((
            Checkpoint {
                origin: origin.to_owned(),
                size,
                root,
            },
            extensions,
        ))
    }

    /// Signs the checkpoint as a signed note.
    pub fn sign(&self, signer: &Signer) -> Result<String> {
        sign_note(&self.to_note_text(), &[signer])
    }
}

/// k-of-n witness policy: how many of the configured witness keys must have cosigned.
#[derive(Debug, Clone, Default)]
pub struct WitnessPolicy {
    /// Trusted witness keys (type 0x04).
    pub witnesses: Vec<VerifierKey>,
    /// Cosignatures required (0 = witnesses optional; present ones must still verify).
    pub quorum: usize,
}

/// A checkpoint whose log signature (and witness cosignatures, if any) verified.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    /// The parsed tree head.
    pub checkpoint: Checkpoint,
    /// The opened note.
    pub note: Note,
    /// Verified witness cosignatures: (witness name, timestamp).
    pub cosignatures: Vec<(String, u64)>,
}

/// Opens a signed checkpoint: the note must verify with `log_key` (type 0x01), its origin must equal
/// `origin`, every cosignature by a configured witness must verify, and at least `policy.quorum`
/// witnesses must have cosigned. Signatures by unknown keys are ignored.
pub fn open_checkpoint(
    msg: &[u8],
    origin: &str,
    log_key: &VerifierKey,
    policy: &WitnessPolicy,
) -> Result<SignedCheckpoint> {
    if log_key.kind() != KeyKind::Ed25519 {
        return Err(Error::InvalidInput(
            "the log key must be an Ed25519 (0x01) note key".into(),
        ));
    }
    if policy
        .witnesses
        .iter()
        .any(|w| w.kind() != KeyKind::CosignatureV1)
    {
        return Err(Error::InvalidInput(
            "witness keys must be cosignature/v1 (0x04) keys".into(),
        ));
    }
    let mut known = Vec::with_capacity(1 + policy.witnesses.len());
    known.push(log_key.clone());
    known.extend(policy.witnesses.iter().cloned());
    let note = open_note(msg, &known)?;
    let is_log_sig = |s: &Signature| s.name == log_key.name() && s.key_id == log_key.key_id();
    if !note.verified.iter().any(is_log_sig) {
        return Err(Error::UnverifiedNote);
    }
    let checkpoint = Checkpoint::parse(&note.text)?;
    if checkpoint.origin != origin {
        return Err(Error::malformed(
            "checkpoint.origin",
            format!("is {:?}, expected {origin:?}", checkpoint.origin),
        ));
    }
    let mut cosignatures = Vec::new();
    for sig in note.verified.iter().filter(|s| !is_log_sig(s)) {
        if let Some(w) = policy
            .witnesses
            .iter()
            .find(|w| w.name() == sig.name && w.key_id() == sig.key_id)
        {
            let ts = verify_cosignature(w, &note.text, sig)?;
            cosignatures.push((sig.name.clone(), ts));
        }
    }
    if cosignatures.len() < policy.quorum {
        return Err(Error::QuorumNotMet {
            cosigned: cosignatures.len(),
            required: policy.quorum,
            missing: policy
                .witnesses
                .iter()
                .filter(|w| {
                    !note
                        .verified
                        .iter()
                        .any(|s| s.name == w.name() && s.key_id == w.key_id())
                })
                .map(|w| format!("{}+{:08x}", w.name(), w.key_id()))
                .collect(),
        });
    }
    Ok(SignedCheckpoint {
        checkpoint,
        note,
        cosignatures,
    })
}

/// Appends cosignature lines (from a witness's response) to a signed checkpoint note.
pub fn add_cosignatures(signed_note: &str, cosignature_lines: &str) -> Result<String> {
    crate::note::split_note(signed_note.as_bytes())?;
    let mut out = signed_note.to_owned();
    for line in cosignature_lines.lines().filter(|l| !l.is_empty()) {
        out.push_str(line);
        out.push('\n');
    }
    // Re-check the framing of the result (each line must be a well-formed signature line).
    crate::note::split_note(out.as_bytes())?;
    Ok(out)
}

/// The body of a C2SP tlog-witness `add-checkpoint` request: `old <size>\n`, the consistency proof
/// from `old_size` (base64, one per line), a blank line, then the signed checkpoint.
pub fn witness_request_body(old_size: u64, proof: &[Hash], signed_checkpoint: &str) -> String {
    let mut out = format!("old {old_size}\n");
    for h in proof {
        out.push_str(&h.to_base64());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_checkpoint);
    out
}

/// A parsed C2SP tlog-witness `add-checkpoint` request body (see [`witness_request_body`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessRequest {
    /// The size of the checkpoint the client believes the witness last cosigned.
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub signed_checkpoint: String,
}

/// Most consistency-proof lines a request may carry (tlog-witness: at most 63).
pub const MAX_WITNESS_PROOF_LINES: usize = 63;

/// Parses an `add-checkpoint` body: `old <size>\n` (decimal, no leading zeros), at most 63 base64
/// hash lines, an empty line, then the signed checkpoint (which is not verified here).
pub fn parse_witness_request(body: &str) -> Result<WitnessRequest> {
    let (first, mut rest) = body
        .split_once('\n')
        .ok_or_else(|| Error::malformed("old", "the body must start with `old <size>\\n`"))?;
    let size_text = first
        .strip_prefix("old ")
        .ok_or_else(|| Error::malformed("old", "the first line must be `old <size>`"))?;
    let old_size = parse_size("old", size_text)?;
    let mut proof = Vec::new();
    loop {
        let (line, after) = rest.split_once('\n').ok_or_else(|| {
            Error::malformed("proof", "an empty line must end the consistency proof")
        })?;
        rest = after;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_WITNESS_PROOF_LINES {
            return Err(Error::malformed(
                "proof",
                format!("more than {MAX_WITNESS_PROOF_LINES} lines"),
            ));
        }
        proof.push(Hash::from_base64("proof", line)?);
    }
    Ok(WitnessRequest {
        old_size,
        proof,
        signed_checkpoint: rest.to_owned(),
    })
}

/// A tree size in decimal without sign or leading zeros (`0` for zero).
fn parse_size(field: &'static str, text: &str) -> Result<u64> {
    text.parse()
        .ok()
        .filter(|s: &u64| s.to_string() == text)
        .ok_or_else(|| {
            Error::malformed(
                field,
                "must be a decimal number without sign or leading zeros",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosig::CosignatureSigner;

    fn check_parse(text: &str, expected: std::result::Result<(u64, usize), &str>) {
        match (Checkpoint::parse_with_extensions(text), expected) {
            (Ok((c, ext)), Ok((size, n_ext))) => {
                assert_eq!((c.size, ext.len()), (size, n_ext), "{text:?}")
            }
            (Err(e), Err(field)) => assert!(e.to_string().contains(field), "{text:?}: {e}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }

    const ROOT: &str = "r6qbgJBQY6iwhSmrUKXVmbTuI/27UmOUJJaIcMXwN0g=";

    #[test]
    fn parsing_rules() {
        check_parse(&format!("o\n13\n{ROOT}\n"), Ok((13, 0)));
        check_parse(&format!("o\n13\n{ROOT}\next one\next two\n"), Ok((13, 2)));
        check_parse(&format!("go.sum database tree\n0\n{ROOT}\n"), Ok((0, 0)));
        check_parse(&format!("o\n013\n{ROOT}\n"), Err("checkpoint.size"));
        check_parse(&format!("o\n+13\n{ROOT}\n"), Err("checkpoint.size"));
        check_parse(&format!("o\n-1\n{ROOT}\n"), Err("checkpoint.size"));
        check_parse("o\n13\nAAAA\n", Err("checkpoint.root"));
        check_parse(&format!("\n13\n{ROOT}\n"), Err("checkpoint.origin"));
        check_parse(&format!("o\n13\n{ROOT}"), Err("newline"));
        check_parse("o\n13\n", Err("checkpoint"));
        check_parse(
            &format!("o\n13\n{ROOT}\n\nx\n"),
            Err("checkpoint.extension"),
        );
        assert!(Checkpoint::new("has space", 1, Hash::default()).is_err());
        assert!(Checkpoint::new("a+b", 1, Hash::default()).is_err());
    }

    #[test]
    fn anchor_signed_checkpoint_is_reproduced_and_checked() {
        let mut seed = [0u8; 32];
        seed.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let signer = Signer::from_seed("hub.example/audit-log", seed).unwrap();
        let root = Hash::from_base64("root", ROOT).unwrap();
        let cp = Checkpoint::new("hub.example/audit-log", 13, root).unwrap();
        let signed = cp.sign(&signer).unwrap();
        assert_eq!(
            signed,
            format!(
                "hub.example/audit-log\n13\n{ROOT}\n\n\u{2014} hub.example/audit-log HKI40jMw4rhIgGRxTY6E6m/PoctiVlTIqdFGBtjqRU7C7+GQFSIsSemkK6qe7nhSuI3tltYeRHx+3kABNASQoL81Lgk=\n"
            )
        );
        let vk = VerifierKey::parse(
            "hub.example/audit-log+1ca238d2+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4",
        )
        .unwrap();
        let none = WitnessPolicy::default();
        let opened =
            open_checkpoint(signed.as_bytes(), "hub.example/audit-log", &vk, &none).unwrap();
        assert_eq!(opened.checkpoint, cp);
        // Negative: size line 13 → 12.
        let altered = signed.replace("\n13\n", "\n12\n");
        assert!(matches!(
            open_checkpoint(altered.as_bytes(), "hub.example/audit-log", &vk, &none),
            Err(Error::InvalidSignature { .. })
        ));
        // Wrong origin expected.
        assert!(open_checkpoint(signed.as_bytes(), "other.example/log", &vk, &none).is_err());

        // Witness policy: 2-of-2 with one cosignature fails, with both passes.
        let w1 = CosignatureSigner::from_seed("w1.example", [1; 32]).unwrap();
        let w2 = CosignatureSigner::from_seed("w2.example", [2; 32]).unwrap();
        let text = cp.to_note_text();
        let one = add_cosignatures(&signed, &w1.cosign(&text, 100)).unwrap();
        let two = add_cosignatures(&one, &w2.cosign(&text, 200)).unwrap();
        let policy = WitnessPolicy {
            witnesses: vec![w1.verifier_key(), w2.verifier_key()],
            quorum: 2,
        };
        match open_checkpoint(one.as_bytes(), "hub.example/audit-log", &vk, &policy) {
            Err(e @ Error::QuorumNotMet { .. }) => {
                let w2_id = format!("w2.example+{:08x}", w2.verifier_key().key_id());
                assert_eq!(
                    e,
                    Error::QuorumNotMet {
                        cosigned: 1,
                        required: 2,
                        missing: vec![w2_id.clone()],
                    }
                );
                assert!(
                    e.to_string()
                        .contains(&format!("1 of 2 required cosignatures; missing: {w2_id}"))
                );
            }
            other => panic!("expected a missed quorum, got {other:?}"),
        }
        let ok = open_checkpoint(two.as_bytes(), "hub.example/audit-log", &vk, &policy).unwrap();
        assert_eq!(
            ok.cosignatures,
            vec![
                ("w1.example".to_string(), 100),
                ("w2.example".to_string(), 200)
            ]
        );
        // A note signed only by a witness is not a log checkpoint.
        let only_witness = format!("{text}\n{}", w1.cosign(&text, 5));
        assert!(
            open_checkpoint(
                only_witness.as_bytes(),
                "hub.example/audit-log",
                &vk,
                &policy
            )
            .is_err()
        );
        // Witness request body framing, and its parser.
        let body = witness_request_body(7, &[root], &signed);
        assert!(body.starts_with(&format!("old 7\n{ROOT}\n\nhub.example/audit-log\n")));
        assert_eq!(
            parse_witness_request(&body).unwrap(),
            WitnessRequest {
                old_size: 7,
                proof: vec![root],
                signed_checkpoint: signed.clone(),
            }
        );
    }

    #[test]
    fn witness_request_parsing_rules() {
        let cp = "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} o x\n";
        let ok = parse_witness_request(&format!("old 0\n\n{cp}")).unwrap();
        assert_eq!((ok.old_size, ok.proof.len()), (0, 0));
        assert_eq!(ok.signed_checkpoint, cp);
        for (body, field) in [
            (format!("old 01\n\n{cp}"), "old"),
            (format!("old -1\n\n{cp}"), "old"),
            (format!("olds 1\n\n{cp}"), "old"),
            ("old 1".to_owned(), "old"),
            (format!("old 1\nAAAA\n\n{cp}"), "proof"),
            (format!("old 1\n{ROOT}\n"), "proof"),
            (
                format!("old 1\n{}\n{cp}", format!("{ROOT}\n").repeat(64)),
                "proof",
            ),
        ] {
            let e = parse_witness_request(&body).unwrap_err();
            assert!(e.to_string().starts_with(field), "{body:?}: {e}");
        }
        let max = format!("old 1\n{}\n{cp}", format!("{ROOT}\n").repeat(63));
        assert_eq!(parse_witness_request(&max).unwrap().proof.len(), 63);
    }
}
