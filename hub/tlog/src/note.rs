//! C2SP `signed-note` (c2sp.org/signed-note@v1.0.0) with Ed25519 via ring.
//!
//! A note is UTF-8 text ending in `\n`, one blank line, then signature lines
//! `— <key name> <base64(key ID[4] || signature)>\n` (EM DASH U+2014). The key ID is
//! `SHA-256(name || "\n" || type || public key)[:4]` as a big-endian u32; type `0x01` is an Ed25519
//! note signature over the text, type `0x04` a `tlog-cosignature/v1` (see [`crate::cosig`]).
//!
//! Verification rules ([`open_note`], same as Go's `note.Open`): a signature counts only if both its
//! name and key ID match a known key; unknown signatures are ignored (kept as unverified); a known key
//! with a bad signature rejects the whole note; at least one known key must verify. Notes are capped at
//! [`MAX_NOTE_SIZE`] bytes and [`MAX_SIGNATURES`] signature lines.
//!
//! Key text forms (same as Go's `note` package):
//! - verifier key: `<name>+<hex8 key ID>+<base64(type || public key)>`;
//! - signer key (secret): `PRIVATE+KEY+<name>+<hex8 key ID>+<base64(0x01 || 32-byte seed)>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::{Error, Result};

/// Signature type byte of an Ed25519 note signature.
pub const ALG_ED25519: u8 = 0x01;
/// Signature type byte of an Ed25519 `tlog-cosignature/v1`.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Largest note [`open_note`] accepts, in bytes.
pub const MAX_NOTE_SIZE: usize = 1 << 20;
/// Most signature lines [`open_note`] accepts (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;

const SIG_PREFIX: &str = "\u{2014} ";

/// Key ID: `SHA-256(name || 0x0A || type || public key)[:4]`, big-endian.
pub fn key_id(name: &str, alg: u8, public_key: &[u8]) -> u32 {
    let mut buf = Vec::with_capacity(name.len() + 2 + public_key.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(alg);
    buf.extend_from_slice(public_key);
    let d = digest(&SHA256, &buf);
    let b = d.as_ref();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A key name is non-empty and contains no Unicode space and no `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Checks note text: ends in `\n`, no ASCII control character other than `\n`.
fn check_text(field: &'static str, text: &str) -> Result<()> {
    if !text.ends_with('\n') {
        return Err(Error::malformed(field, "note text must end with a newline"));
    }
    if text.chars().any(|c| (c as u32) < 0x20 && c != '\n') {
        return Err(Error::malformed(
            field,
            "note text must not contain control characters other than newline",
        ));
    }
    Ok(())
}

/// Something that can check one signature of a note (Go: `note.Verifier`).
pub trait Verifier {
    /// The key name the signature line must carry.
    fn name(&self) -> &str;
    /// The key ID the signature must carry.
    fn key_id(&self) -> u32;
    /// Checks `sig` (the signature bytes after the 4-byte key ID) over the note text (including its
    /// final newline).
    fn verify(&self, text: &[u8], sig: &[u8]) -> bool;
}

/// The kind of public key in a [`VerifierKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Type 0x01: the log's Ed25519 note key.
    Ed25519,
    /// Type 0x04: a witness's Ed25519 `tlog-cosignature/v1` key.
    CosignatureV1,
}

impl KeyKind {
    /// The signature type byte.
    pub fn alg(self) -> u8 {
        match self {
            KeyKind::Ed25519 => ALG_ED25519,
            KeyKind::CosignatureV1 => ALG_COSIGNATURE_V1,
        }
    }
}

/// A public verifier key: what auditors are given (`DIR/log.vkey`) and what witnesses publish.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    kind: KeyKind,
    public_key: [u8; 32],
}

impl VerifierKey {
    /// A type-0x01 (log) key.
    pub fn ed25519(name: &str, public_key: [u8; 32]) -> Result<VerifierKey> {
        Self::new(name, KeyKind::Ed25519, public_key)
    }

    /// A type-0x04 (witness cosignature) key.
    pub fn cosignature_v1(name: &str, public_key: [u8; 32]) -> Result<VerifierKey> {
        Self::new(name, KeyKind::CosignatureV1, public_key)
    }

    fn new(name: &str, kind: KeyKind, public_key: [u8; 32]) -> Result<VerifierKey> {
        if !is_valid_key_name(name) {
            return Err(Error::malformed(
                "key name",
                "must be non-empty without spaces or '+'",
            ));
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: key_id(name, kind.alg(), &public_key),
            kind,
            public_key,
        })
    }

    /// Parses `<name>+<hex8 key ID>+<base64(type || public key)>`; the key ID must match.
    pub fn parse(vkey: &str) -> Result<VerifierKey> {
        let vkey = vkey.trim_end_matches(['\n', '\r']);
        // Names hold no '+', base64 may: split from the left (as Go's `note.NewVerifier` does).
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::malformed(
                "verifier key",
                "expected <name>+<hex key id>+<base64 key>",
            ));
        };
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::malformed(
                "verifier key.key_id",
                "must be 8 hex digits",
            ));
        }
        let id = u32::from_str_radix(id_hex, 16)
            .map_err(|_| Error::malformed("verifier key.key_id", "must be 8 hex digits"))?;
        let key = B64
            .decode(key_b64)
            .map_err(|_| Error::malformed("verifier key.key", "not standard padded base64"))?;
        let kind = match key.first() {
            Some(&ALG_ED25519) => KeyKind::Ed25519,
            Some(&ALG_COSIGNATURE_V1) => KeyKind::CosignatureV1,
            Some(t) => {
                return Err(Error::malformed(
                    "verifier key.key",
                    format!("unsupported key type 0x{t:02x} (want 0x01 or 0x04)"),
                ));
            }
            None => return Err(Error::malformed("verifier key.key", "empty")),
        };
        let public_key: [u8; 32] = key[1..].try_into().map_err(|_| {
            Error::malformed("verifier key.key", "Ed25519 public key must be 32 bytes")
        })?;
        let vk = Self::new(name, kind, public_key)?;
        if vk.key_id != id {
            return Err(Error::malformed(
                "verifier key.key_id",
                format!(
                    "{id:08x} does not match the key (expected {:08x})",
                    vk.key_id
                ),
            ));
        }
        Ok(vk)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
    /// Log key or witness key.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }
    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }
}

impl std::fmt::Display for VerifierKey {
    /// The vkey text form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut key = Vec::with_capacity(33);
        key.push(self.kind.alg());
        key.extend_from_slice(&self.public_key);
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, B64.encode(key))
    }
}

impl std::fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl std::str::FromStr for VerifierKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl Verifier for VerifierKey {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn verify(&self, text: &[u8], sig: &[u8]) -> bool {
        let pk = UnparsedPublicKey::new(&ED25519, &self.public_key);
        match self.kind {
            KeyKind::Ed25519 => sig.len() == 64 && pk.verify(text, sig).is_ok(),
            KeyKind::CosignatureV1 => {
                if sig.len() != 72 {
                    return false;
                }
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&sig[..8]);
                let msg = crate::cosig::cosigned_message(u64::from_be_bytes(ts), text);
                pk.verify(&msg, &sig[8..]).is_ok()
            }
        }
    }
}

/// A fresh random 32-byte seed (ring's system RNG).
pub(crate) fn random_seed() -> Result<[u8; 32]> {
    use ring::rand::SecureRandom as _;
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| Error::InvalidInput("system random generator failed".into()))?;
    Ok(seed)
}

/// `PRIVATE+KEY+<name>+<hex8 key ID>+<base64(alg || seed)>`: the secret key text (Go's form).
pub(crate) fn skey_text(name: &str, key_id: u32, alg: u8, seed: &[u8; 32]) -> String {
    let mut key = Vec::with_capacity(33);
    key.push(alg);
    key.extend_from_slice(seed);
    format!("PRIVATE+KEY+{name}+{key_id:08x}+{}", B64.encode(key))
}

/// Parses [`skey_text`] for signature type `alg`: (name, key ID as written, seed). The caller checks
/// the key ID against the key it derives.
pub(crate) fn parse_skey_text(skey: &str, alg: u8) -> Result<(String, u32, [u8; 32])> {
    let skey = skey.trim_end_matches(['\n', '\r']);
    let rest = skey
        .strip_prefix("PRIVATE+KEY+")
        .ok_or_else(|| Error::malformed("signer key", "must start with PRIVATE+KEY+"))?;
    let mut parts = rest.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::malformed(
            "signer key",
            "expected PRIVATE+KEY+<name>+<hex key id>+<base64 key>",
        ));
    };
    let key = B64
        .decode(key_b64)
        .map_err(|_| Error::malformed("signer key.key", "not standard padded base64"))?;
    if key.len() != 33 || key[0] != alg {
        return Err(Error::malformed(
            "signer key.key",
            format!("must be 0x{alg:02x} followed by a 32-byte Ed25519 seed"),
        ));
    }
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&key[1..]);
    let id = (id_hex.len() == 8)
        .then(|| u32::from_str_radix(id_hex, 16).ok())
        .flatten()
        .ok_or_else(|| Error::malformed("signer key.key_id", "must be 8 hex digits"))?;
    Ok((name.to_owned(), id, seed))
}

/// An Ed25519 note signer (the log's private key). Its `Debug` never shows the key.
pub struct Signer {
    name: String,
    key_id: u32,
    seed: [u8; 32],
    pair: Ed25519KeyPair,
}

impl Signer {
    /// A signer from a 32-byte RFC 8032 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Signer> {
        if !is_valid_key_name(name) {
            return Err(Error::malformed(
                "key name",
                "must be non-empty without spaces or '+'",
            ));
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| Error::malformed("signer key", "invalid Ed25519 seed"))?;
        let key_id = key_id(name, ALG_ED25519, pair.public_key().as_ref());
        Ok(Signer {
            name: name.to_owned(),
            key_id,
            seed,
            pair,
        })
    }

    /// A fresh random signer (ring's system RNG).
    pub fn generate(name: &str) -> Result<Signer> {
        Self::from_seed(name, random_seed()?)
    }

    /// Parses `PRIVATE+KEY+<name>+<hex8 key ID>+<base64(0x01 || seed)>` (Go's signer key form).
    pub fn from_skey_text(skey: &str) -> Result<Signer> {
        let (name, id, seed) = parse_skey_text(skey, ALG_ED25519)?;
        let signer = Self::from_seed(&name, seed)?;
        if id != signer.key_id {
            return Err(Error::malformed(
                "signer key.key_id",
                "does not match the key",
            ));
        }
        Ok(signer)
    }

    /// The secret signer-key text. Treat it as a secret: never log it.
    pub fn to_skey_text(&self) -> String {
        skey_text(&self.name, self.key_id, ALG_ED25519, &self.seed)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching public verifier key.
    pub fn verifier_key(&self) -> VerifierKey {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(self.pair.public_key().as_ref());
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            kind: KeyKind::Ed25519,
            public_key: pk,
        }
    }

    /// A signature line (`— name base64\n`) over `text`.
    pub fn signature_line(&self, text: &str) -> String {
        let sig = self.pair.sign(text.as_bytes());
        let mut bytes = Vec::with_capacity(68);
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(sig.as_ref());
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(bytes))
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}+{:08x}, <secret>)", self.name, self.key_id)
    }
}

/// Signs `text` (must end in `\n`) with every signer: `text + "\n" + signature lines`.
pub fn sign_note(text: &str, signers: &[&Signer]) -> Result<String> {
    check_text("note text", text)?;
    if signers.is_empty() {
        return Err(Error::InvalidInput(
            "sign_note needs at least one signer".into(),
        ));
    }
    let mut out = String::with_capacity(text.len() + 1 + 100 * signers.len());
    out.push_str(text);
    out.push('\n');
    for s in signers {
        out.push_str(&s.signature_line(text));
    }
    Ok(out)
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Key name.
    pub name: String,
    /// Key ID.
    pub key_id: u32,
    /// Signature bytes after the key ID (64 for Ed25519; 8-byte timestamp + 64 for cosignatures).
    pub sig: Vec<u8>,
}

impl Signature {
    /// The signature line as it appears in a note, with its newline.
    pub fn to_line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.sig.len());
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&self.sig);
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(bytes))
    }
}

/// A note whose signatures were checked by [`open_note`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline.
    pub text: String,
    /// Signatures by known keys that verified (at least one).
    pub verified: Vec<Signature>,
    /// Signatures by unknown keys (ignored, kept so they can be passed on).
    pub unverified: Vec<Signature>,
}

/// Splits a note into its text (with final newline) and its signature lines, checking the framing
/// and size rules but no signatures.
pub fn split_note(msg: &[u8]) -> Result<(String, Vec<Signature>)> {
    if msg.len() > MAX_NOTE_SIZE {
        return Err(Error::malformed(
            "note",
            format!("larger than {MAX_NOTE_SIZE} bytes"),
        ));
    }
    let msg = std::str::from_utf8(msg).map_err(|_| Error::malformed("note", "not UTF-8"))?;
    if msg.chars().any(|c| (c as u32) < 0x20 && c != '\n') {
        return Err(Error::malformed(
            "note",
            "contains a control character other than newline",
        ));
    }
    let split = msg
        .rfind("\n\n")
        .ok_or_else(|| Error::malformed("note", "no blank line before the signatures"))?;
    let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(Error::malformed(
            "note",
            "signature block must be non-empty and end with a newline",
        ));
    }
    let mut out = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        if out.len() >= MAX_SIGNATURES {
            return Err(Error::malformed(
                "note",
                format!("more than {MAX_SIGNATURES} signatures"),
            ));
        }
        let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
            Error::malformed(
                "note.signature",
                "line must start with an em dash and a space",
            )
        })?;
        let (name, b64) = rest.split_once(' ').unwrap_or((rest, ""));
        if !is_valid_key_name(name) {
            return Err(Error::malformed("note.signature", "invalid key name"));
        }
        let bytes = B64
            .decode(b64)
            .map_err(|_| Error::malformed("note.signature", "not standard padded base64"))?;
        if bytes.len() < 5 {
            return Err(Error::malformed("note.signature", "too short"));
        }
        out.push(Signature {
            name: name.to_owned(),
            key_id: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            sig: bytes[4..].to_vec(),
        });
    }
    Ok((text.to_owned(), out))
}

/// Opens a signed note, checking its signatures against the `known` keys (rules in the module doc).
pub fn open_note<V: Verifier>(msg: &[u8], known: &[V]) -> Result<Note> {
    let (text, sigs) = split_note(msg)?;
    let mut note = Note {
        text,
        verified: Vec::new(),
        unverified: Vec::new(),
    };
    for sig in sigs {
        let Some(v) = known
            .iter()
            .find(|v| v.name() == sig.name && v.key_id() == sig.key_id)
        else {
            if !note.unverified.contains(&sig) {
                note.unverified.push(sig);
            }
            continue;
        };
        if note
            .verified
            .iter()
            .any(|s| s.name == sig.name && s.key_id == sig.key_id)
        {
            continue; // a repeated signature by one key counts once
        }
        if !v.verify(note.text.as_bytes(), &sig.sig) {
            return Err(Error::InvalidSignature {
                name: sig.name,
                key_id: sig.key_id,
            });
        }
        note.verified.push(sig);
    }
    if note.verified.is_empty() {
        return Err(Error::UnverifiedNote);
    }
    Ok(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    const GO_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
    const GO_CHECKPOINT: &str = "go.sum database tree\n65664258\nWVVNVD2qx+fTq31zkj6UAqxT5X6HvGphGM+o8Thnbsg=\n\n\u{2014} sum.golang.org Az3grligJmgX7KGyGPKybykNTh3VgsbLvUuvOwrM5zLVlulmFp2wdvbxOw74/gcNxURShXEpb7RXcs3+BYflYN+w0gQ=\n";

    fn test_signer() -> Signer {
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = i as u8;
        }
        Signer::from_seed("hub.example/audit-log", seed).unwrap()
    }

    #[test]
    fn spec_and_sum_golang_org_vectors_verify() {
        let vk = VerifierKey::parse(SPEC_VKEY).unwrap();
        assert_eq!(vk.to_string(), SPEC_VKEY);
        let n = open_note(SPEC_NOTE.as_bytes(), &[vk]).unwrap();
        assert_eq!(n.text, "This is an example message.\n");
        let go = VerifierKey::parse(GO_VKEY).unwrap();
        let n = open_note(GO_CHECKPOINT.as_bytes(), &[go]).unwrap();
        assert_eq!(n.verified.len(), 1);
    }

    #[test]
    fn our_test_key_matches_anchor_vkey() {
        let s = test_signer();
        assert_eq!(
            s.verifier_key().to_string(),
            "hub.example/audit-log+1ca238d2+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
        );
        let again = Signer::from_skey_text(&s.to_skey_text()).unwrap();
        assert_eq!(again.verifier_key(), s.verifier_key());
        assert!(!format!("{s:?}").contains(&s.to_skey_text()));
    }

    fn check_open(msg: &str, known: &[VerifierKey], expected: std::result::Result<usize, &str>) {
        match (open_note(msg.as_bytes(), known), expected) {
            (Ok(n), Ok(count)) => assert_eq!(n.verified.len(), count, "{msg:?}"),
            (Err(e), Err(kind)) => assert!(
                format!("{e:?}").contains(kind),
                "{msg:?}: got {e:?}, want {kind}"
            ),
            (got, want) => panic!("{msg:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn verification_rules() {
        let s = test_signer();
        let vk = s.verifier_key();
        let other = Signer::generate("other.example/log").unwrap();
        let text = "hub.example/audit-log\n1\nAAAA\n";
        let signed = sign_note(text, &[&s]).unwrap();
        let both = sign_note(text, &[&s, &other]).unwrap();
        // Unknown signature ignored; known one verifies.
        check_open(&both, std::slice::from_ref(&vk), Ok(1));
        check_open(&both, &[vk.clone(), other.verifier_key()], Ok(2));
        // No known key.
        check_open(&signed, &[other.verifier_key()], Err("UnverifiedNote"));
        // Known key, bad signature (text altered).
        let altered = signed.replace("\n1\n", "\n2\n");
        check_open(&altered, std::slice::from_ref(&vk), Err("InvalidSignature"));
        // Same name, different key ID: treated as unknown.
        let impostor = Signer::generate("hub.example/audit-log").unwrap();
        let forged = sign_note(text, &[&impostor]).unwrap();
        check_open(&forged, std::slice::from_ref(&vk), Err("UnverifiedNote"));
        // Framing errors.
        check_open(
            "no signatures\n",
            std::slice::from_ref(&vk),
            Err("Malformed"),
        );
        check_open(
            &signed.replace('\u{2014}', "-"),
            std::slice::from_ref(&vk),
            Err("Malformed"),
        );
        check_open(
            signed.trim_end(),
            std::slice::from_ref(&vk),
            Err("Malformed"),
        );
        check_open(
            &format!("a\tb\n{}", &signed),
            std::slice::from_ref(&vk),
            Err("Malformed"),
        );
        // Duplicate signature lines count once.
        let dup = format!("{signed}{}", s.signature_line(text));
        check_open(&dup, std::slice::from_ref(&vk), Ok(1));
        // Too many signatures.
        let mut many = signed.clone();
        for _ in 0..MAX_SIGNATURES {
            many.push_str(&other.signature_line(text));
        }
        check_open(&many, std::slice::from_ref(&vk), Err("Malformed"));
        // Too large.
        let big = format!("{}\n{}", "x".repeat(MAX_NOTE_SIZE), s.signature_line("x"));
        check_open(&big, std::slice::from_ref(&vk), Err("Malformed"));
    }

    #[test]
    fn key_text_errors_name_the_field() {
        let check = |input: &str, needle: &str| {
            let e = VerifierKey::parse(input).unwrap_err().to_string();
            assert!(e.contains(needle), "{input}: {e}");
        };
        check("nokey", "verifier key");
        check(
            "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "key_id",
        );
        check("example.com/foo+530d903a+AekyeRrm56hApGFk", "key");
        check(
            "example.com/foo+530d903a+BekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "key type",
        );
        check(
            "+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
            "key name",
        );
        assert!(Signer::from_skey_text("PRIVATE+KEY+x+00000000+AAAA").is_err());
        assert!(sign_note("no newline", &[&test_signer()]).is_err());
    }
}
