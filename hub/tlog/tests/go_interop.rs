//! Interoperability with Go's reference implementation (golang.org/x/mod/sumdb/note and sumdb/tlog,
//! Debian's golang-golang-x-mod-dev): our notes, checkpoints and proofs must verify there, Go's
//! proofs must equal ours byte for byte, and notes Go signs must verify here.
//!
//! Go is required: with `CI` set a missing Go toolchain fails the test; without `CI` it fails too,
//! with a loud message, unless `TLOG_SKIP_GO=1` is set. `hub/tlog/interop/install-go.sh` installs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tlog::checkpoint::{Checkpoint, WitnessPolicy, open_checkpoint};
use tlog::cosig::CosignatureSigner;
use tlog::hash::Hash;
use tlog::note::Signer;
use tlog::proof::{prove_record, prove_tree};
use tlog::stored::tree_hash;
use tlog::{MemoryHashStore, Receipt};

const GOPATH: &str = "/usr/share/gocode";
const ORIGIN: &str = "hub.example/audit-log";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Builds the Go helper once per test binary; `None` only when skipping is allowed.
fn go_helper() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let have_go = Command::new("go").arg("version").output().is_ok_and(|o| o.status.success());
        let have_xmod = Path::new(GOPATH).join("src/golang.org/x/mod/sumdb/tlog").is_dir();
        if !(have_go && have_xmod) {
            let msg = "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                       !!! Go interop test: Go or golang.org/x/mod is NOT INSTALLED.\n\
                       !!! Run hub/tlog/interop/install-go.sh (apt: golang-go golang-golang-x-mod-dev).\n\
                       !!! Set TLOG_SKIP_GO=1 to skip locally (never honoured when CI is set).\n\
                       !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n";
            eprintln!("{msg}");
            let ci = std::env::var_os("CI").is_some();
            let skip = std::env::var("TLOG_SKIP_GO").is_ok_and(|v| v == "1");
            assert!(!ci && skip, "Go reference implementation missing (go: {have_go}, x/mod: {have_xmod})");
            return None;
        }
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tlog-go-interop");
        std::fs::create_dir_all(&out_dir).unwrap();
        let bin = out_dir.join("interop");
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg("main.go")
            .current_dir(interop_dir())
            .env("GO111MODULE", "off")
            .env("GOPATH", GOPATH)
            .env("GOFLAGS", "")
            .env("GOCACHE", out_dir.join("gocache"))
            .status()
            .expect("run go build");
        assert!(status.success(), "go build of hub/tlog/interop failed");
        Some(bin)
    })
    .clone()
}

fn run_go(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("run Go helper");
    assert!(
        out.status.success(),
        "Go helper {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn test_signer() -> Signer {
    let mut seed = [0u8; 32];
    seed.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    Signer::from_seed(ORIGIN, seed).unwrap()
}

fn entry(i: u64) -> Vec<u8> {
    format!("access-record-{i}").into_bytes()
}

fn store(n: u64) -> MemoryHashStore {
    let mut s = MemoryHashStore::new();
    (0..n).for_each(|i| {
        s.append(&entry(i));
    });
    s
}

fn b64(hs: &[Hash]) -> Vec<String> {
    hs.iter().map(Hash::to_base64).collect()
}

#[test]
fn our_checkpoints_and_proofs_verify_with_go() {
    let Some(bin) = go_helper() else { return };
    let signer = test_signer();
    let vkey = signer.verifier_key().to_string();
    let n = 37u64;
    let s = store(n);
    let mut cases: Vec<(Value, bool)> = Vec::new();

    // Signed checkpoints at several sizes, including the anchors' size 13.
    for size in [1u64, 13, 37] {
        let cp = Checkpoint::new(ORIGIN, size, tree_hash(size, &s).unwrap()).unwrap();
        let signed = cp.sign(&signer).unwrap();
        let case = |name: String, note: &str, vkey: &str| {
            json!({"name": name, "kind": "note", "vkey": vkey, "note": note, "origin": ORIGIN,
                   "size": size, "root": cp.root.to_base64()})
        };
        cases.push((case(format!("note {size}"), &signed, &vkey), true));
        // Negative: size line altered, and a note signed by another key of the same name.
        let altered = signed.replace(&format!("\n{size}\n"), &format!("\n{}\n", size + 1));
        cases.push((case(format!("note {size} altered"), &altered, &vkey), false));
        let other = Signer::from_seed(ORIGIN, [0xaa; 32]).unwrap();
        cases.push((
            case(
                format!("note {size} other key"),
                &cp.sign(&other).unwrap(),
                &vkey,
            ),
            false,
        ));
    }
    // Every inclusion proof in the size-37 tree and for size 13, plus tampered variants.
    for t in [13u64, n] {
        let root = tree_hash(t, &s).unwrap();
        for i in 0..t {
            let p = prove_record(t, i, &s).unwrap();
            let incl = |name: String, proof: &[Hash], index: u64| {
                json!({"name": name, "kind": "inclusion", "size": t, "root": root.to_base64(),
                       "index": index, "data": B64.encode(entry(i)), "proof": b64(proof)})
            };
            cases.push((incl(format!("incl {i}/{t}"), &p, i), true));
            let mut bad = p.clone();
            bad[0].0[0] ^= 1;
            cases.push((incl(format!("incl {i}/{t} tampered"), &bad, i), false));
            if i > 0 {
                cases.push((incl(format!("incl {i}/{t} wrong index"), &p, i - 1), false));
            }
        }
    }
    // Every consistency proof between sizes 1..=37 (Go rejects old size 0, so start at 1).
    for t in 1..=n {
        for m in 1..=t {
            let p = prove_tree(t, m, &s).unwrap();
            let old_root = tree_hash(m, &s).unwrap();
            let cons = |name: String, proof: &[Hash], old: Hash| {
                json!({"name": name, "kind": "consistency", "size": t,
                       "root": tree_hash(t, &s).unwrap().to_base64(), "old_size": m,
                       "old_root": old.to_base64(), "proof": b64(proof)})
            };
            cases.push((cons(format!("cons {m}->{t}"), &p, old_root), true));
            if m < t {
                let wrong = tree_hash(m - 1, &s).unwrap_or_default();
                cases.push((
                    cons(format!("cons {m}->{t} wrong old root"), &p, wrong),
                    false,
                ));
            }
        }
    }
    // Witness cosignatures (type 0x04) through a spec-written Go verifier.
    let w = CosignatureSigner::from_seed("witness.example/w1", [5; 32]).unwrap();
    let cp = Checkpoint::new(ORIGIN, n, s.root()).unwrap();
    let text = cp.to_note_text();
    let cosigned = format!(
        "{}{}",
        cp.sign(&signer).unwrap(),
        w.cosign(&text, 1_764_000_000)
    );
    let wk = w.verifier_key().to_string();
    cases.push((
        json!({"name": "cosig", "kind": "cosignature", "vkey": wk, "note": cosigned}),
        true,
    ));
    let tampered = cosigned.replace(&format!("\n{n}\n"), "\n1\n");
    cases.push((
        json!({"name": "cosig tampered", "kind": "cosignature", "vkey": wk, "note": tampered}),
        false,
    ));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cases.json");
    let list: Vec<&Value> = cases.iter().map(|(c, _)| c).collect();
    std::fs::write(&file, serde_json::to_vec(&list).unwrap()).unwrap();
    let out = run_go(&bin, &["verify", file.to_str().unwrap()]);
    let results: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), cases.len(), "Go answered every case");
    let mut mismatches = Vec::new();
    for ((case, expected), r) in cases.iter().zip(&results) {
        assert_eq!(r["name"], case["name"]);
        if r["ok"].as_bool() != Some(*expected) {
            mismatches.push(format!(
                "{}: Go ok={} err={}",
                case["name"], r["ok"], r["err"]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "Go disagrees on {} case(s):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(cases.len() > 800, "ran {} cases", cases.len());
}

#[test]
fn go_generated_roots_and_proofs_equal_ours() {
    let Some(bin) = go_helper() else { return };
    let n = 40u64;
    let s = store(n);
    let go: Value = serde_json::from_str(&run_go(&bin, &["prove", &n.to_string()])).unwrap();
    for t in 1..=n {
        assert_eq!(
            go["roots"][(t - 1) as usize],
            tree_hash(t, &s).unwrap().to_base64(),
            "root {t}"
        );
        for i in 0..t {
            let ours = b64(&prove_record(t, i, &s).unwrap());
            assert_eq!(
                go["inclusion"][format!("{t}/{i}")],
                json!(ours),
                "inclusion {i} in {t}"
            );
            let ours = b64(&prove_tree(t, i + 1, &s).unwrap());
            assert_eq!(
                go["consistency"][format!("{t}/{}", i + 1)],
                json!(ours),
                "consistency {} -> {t}",
                i + 1
            );
        }
    }
}

#[test]
fn notes_signed_by_go_verify_here() {
    let Some(bin) = go_helper() else { return };
    let signer = test_signer();
    let s = store(13);
    let cp = Checkpoint::new(ORIGIN, 13, s.root()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let skey = dir.path().join("key.skey");
    let text = dir.path().join("checkpoint.txt");
    std::fs::write(&skey, signer.to_skey_text()).unwrap();
    std::fs::write(&text, cp.to_note_text()).unwrap();
    let go_signed = run_go(
        &bin,
        &["sign", skey.to_str().unwrap(), text.to_str().unwrap()],
    );
    // Ed25519 is deterministic: Go's bytes equal ours, and equal the anchors' vector.
    assert_eq!(go_signed, cp.sign(&signer).unwrap());
    assert!(go_signed.contains("HKI40jMw4rhIgGRxTY6E6m/PoctiVlTIqdFGBtjqRU7C7+GQFSIsSemkK6qe7nhSuI3tltYeRHx+3kABNASQoL81Lgk="));
    let opened = open_checkpoint(
        go_signed.as_bytes(),
        ORIGIN,
        &signer.verifier_key(),
        &WitnessPolicy::default(),
    )
    .unwrap();
    assert_eq!(opened.checkpoint, cp);
    // A Go-signed note by another key does not verify with ours.
    let other = Signer::generate(ORIGIN).unwrap();
    std::fs::write(&skey, other.to_skey_text()).unwrap();
    let by_other = run_go(
        &bin,
        &["sign", skey.to_str().unwrap(), text.to_str().unwrap()],
    );
    assert!(
        open_checkpoint(
            by_other.as_bytes(),
            ORIGIN,
            &signer.verifier_key(),
            &WitnessPolicy::default()
        )
        .is_err()
    );
    // A receipt built around the Go-signed checkpoint verifies.
    let r = Receipt {
        extra: None,
        index: 5,
        proof: prove_record(13, 5, &s).unwrap(),
        checkpoint: go_signed,
    };
    Receipt::parse(&r.to_text())
        .unwrap()
        .verify(
            &entry(5),
            ORIGIN,
            &signer.verifier_key(),
            &WitnessPolicy::default(),
        )
        .unwrap();
}

#[test]
fn go_tiles_equal_ours() {
    let Some(bin) = go_helper() else { return };
    // The spec's example size: full and partial tiles at levels 0, 1 and 2.
    let n = 70_000u64;
    let s = store(n);
    let go: Vec<Value> = serde_json::from_str(&run_go(&bin, &["tiles", &n.to_string()])).unwrap();
    // Go's NewTiles(8, 0, n) also lists every intermediate partial width (1..W) of each level's last
    // tile; ours lists only the tiles that exist at size n. Every Go tile's data must equal ours, and
    // Go's full tiles plus its widest partial per (level, index) must be exactly our list.
    let mut widest: std::collections::BTreeMap<(u64, u64), u64> = std::collections::BTreeMap::new();
    for g in &go {
        let (l, idx, w) = (
            g["l"].as_u64().unwrap(),
            g["n"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
        );
        let t = tlog::Tile {
            level: l as u8,
            n: idx,
            width: w as u16,
        };
        // Go's sumdb path carries the height (tile/8/L/N…); C2SP drops it.
        assert_eq!(
            g["path"].as_str().unwrap().replacen("tile/8/", "tile/", 1),
            t.path()
        );
        let data = tlog::tile::read_tile_data(&t, &s).unwrap();
        assert_eq!(
            g["data"].as_str().unwrap(),
            B64.encode(&data),
            "data of {}",
            t.path()
        );
        let e = widest.entry((l, idx)).or_default();
        *e = (*e).max(w);
    }
    let from_go: Vec<tlog::Tile> = widest
        .into_iter()
        .map(|((l, idx), w)| tlog::Tile {
            level: l as u8,
            n: idx,
            width: w as u16,
        })
        .collect();
    let mut ours = tlog::tile::tiles_for_size(n);
    ours.sort();
    assert_eq!(from_go, ours);
    assert_eq!(ours.len(), 277, "273 + 1 full, 3 partial (spec example)");
}
