//! The witness on a real SQLite file: growth, stale `old`, forks, restart, the CAS, HTTP statuses.

use tlog::checkpoint::{
    Checkpoint, WitnessPolicy, add_cosignatures, open_checkpoint, witness_request_body,
};
use tlog::cosig::CosignatureSigner;
use tlog::{Hash, MemoryHashStore, Signer};

use std::sync::Arc;

use super::*;

const ORIGIN: &str = "hub.example/access-log";

/// A log: its signer and its entries' stored hashes.
struct TestLog {
    signer: Signer,
    tree: MemoryHashStore,
}

impl TestLog {
    /// A log at `ORIGIN` signed with the fixed test key (`grow`'s tag makes forks differ).
    fn new() -> TestLog {
        TestLog {
            signer: Signer::from_seed(ORIGIN, [3; 32]).unwrap(),
            tree: MemoryHashStore::new(),
        }
    }

    fn grow(&mut self, n: usize, tag: &str) -> &mut Self {
        for _ in 0..n {
            let i = self.tree.size();
            self.tree.append(format!("{tag}-entry-{i}").as_bytes());
        }
        self
    }

    fn size(&self) -> u64 {
        self.tree.size()
    }

    fn root(&self) -> Hash {
        self.tree.root()
    }

    fn checkpoint(&self) -> String {
        Checkpoint::new(ORIGIN, self.size(), self.root())
            .unwrap()
            .sign(&self.signer)
            .unwrap()
    }

    fn proof_from(&self, old: u64) -> Vec<Hash> {
        if old == 0 || old == self.size() {
            return Vec::new();
        }
        tlog::proof::prove_tree(self.size(), old, &self.tree).unwrap()
    }

    /// The request body for the current checkpoint with a proof from `old`.
    fn body(&self, old: u64) -> String {
        witness_request_body(old, &self.proof_from(old), &self.checkpoint())
    }
}

async fn witness_at(path: &Path) -> Witness {
    let signer = CosignatureSigner::from_seed("witness.example/w1", [5; 32]).unwrap();
    let log_key = Signer::from_seed(ORIGIN, [3; 32]).unwrap().verifier_key();
    Witness::new(signer, vec![log_key], State::open(path).await.unwrap()).unwrap()
}

/// The status of a submission (200 or the error's).
async fn status(w: &Witness, body: &str) -> u16 {
    match w.add_checkpoint(body, 1_800_000_000).await {
        Ok(_) => 200,
        Err(e) => e.status(),
    }
}

/// A cosignature line answered for `log`'s checkpoint verifies with the witness key.
fn assert_cosigns(w: &Witness, log: &TestLog, line: &str) {
    let note = add_cosignatures(&log.checkpoint(), line).unwrap();
    let policy = WitnessPolicy {
        witnesses: vec![w.verifier_key()],
        quorum: 1,
    };
    let opened =
        open_checkpoint(note.as_bytes(), ORIGIN, &log.signer.verifier_key(), &policy).unwrap();
    assert_eq!(opened.cosignatures[0].1, 1_800_000_000);
}

#[tokio::test]
async fn witness_consistent_growth_is_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness_at(&dir.path().join("w.db")).await;
    let mut log = TestLog::new();
    // The empty tree first, then growth in steps, each with a proof from the last size.
    let line = w.add_checkpoint(&log.body(0), 1_800_000_000).await.unwrap();
    assert_cosigns(&w, &log, &line);
    log.grow(5, "a");
    let line = w.add_checkpoint(&log.body(0), 1_800_000_000).await.unwrap();
    assert_cosigns(&w, &log, &line);
    for step in [1, 7, 300] {
        let old = log.size();
        log.grow(step, "a");
        let line = w
            .add_checkpoint(&log.body(old), 1_800_000_000)
            .await
            .unwrap();
        assert_cosigns(&w, &log, &line);
    }
    // The same checkpoint again (old = its size, empty proof) is cosigned again.
    let line = w
        .add_checkpoint(&log.body(log.size()), 1_800_000_000)
        .await
        .unwrap();
    assert_cosigns(&w, &log, &line);
    let state = w.state().latest(ORIGIN).await.unwrap();
    assert_eq!((state.size, state.root), (log.size(), log.root()));
    assert_eq!(state.note, log.checkpoint());
}

#[tokio::test]
async fn witness_stale_old_size_is_a_409_with_the_witnessed_size() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness_at(&dir.path().join("w.db")).await;
    let mut log = TestLog::new();
    log.grow(10, "a");
    assert_eq!(status(&w, &log.body(0)).await, 200);
    log.grow(10, "a");
    // The client thinks the witness is at 0, or at 5: both stale.
    for old in [0, 5] {
        match w.add_checkpoint(&log.body(old), 1).await {
            Err(AddError::Conflict { old: o, size }) => assert_eq!((o, size), (old, 10)),
            other => panic!("old {old}: expected 409, got {other:?}"),
        }
    }
    // Learning 10 from the 409, the client succeeds.
    assert_eq!(status(&w, &log.body(10)).await, 200);
    assert_eq!(w.state().latest(ORIGIN).await.unwrap().size, 20);
}

#[tokio::test]
async fn witness_refuses_a_forked_log() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness_at(&dir.path().join("w.db")).await;
    let mut honest = TestLog::new();
    honest.grow(20, "honest");
    assert_eq!(status(&w, &honest.body(0)).await, 200);
    // The fork: same origin, same key, different entries.
    let mut fork = TestLog::new();
    fork.grow(20, "fork");
    // Same size, different root.
    assert_eq!(status(&w, &fork.body(20)).await, 422);
    // Grown from the fork's own size-20 tree: its proof does not lead from the witnessed root.
    fork.grow(5, "fork");
    assert_eq!(status(&w, &fork.body(20)).await, 422);
    // The honest continuation with a tampered proof.
    honest.grow(5, "honest");
    let mut proof = honest.proof_from(20);
    proof[0].0[0] ^= 1;
    let tampered = witness_request_body(20, &proof, &honest.checkpoint());
    assert_eq!(status(&w, &tampered).await, 422);
    // A non-empty proof from 0, on a fresh witness: refused too.
    let fresh = witness_at(&dir.path().join("fresh.db")).await;
    let from_zero = witness_request_body(0, &honest.proof_from(20), &honest.checkpoint());
    assert_eq!(status(&fresh, &from_zero).await, 422);
    // Nothing moved; the refusals are kept as evidence.
    let state = w.state().latest(ORIGIN).await.unwrap();
    assert_eq!(
        (state.size, state.root),
        (20, TestLog::new().grow(20, "honest").root())
    );
    assert_eq!(w.state().refusals(ORIGIN).await.unwrap(), 3);
    // The honest log still gets its cosignature.
    assert_eq!(status(&w, &honest.body(20)).await, 200);
}

#[tokio::test]
async fn witness_refuses_unknown_origins_foreign_keys_and_bad_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness_at(&dir.path().join("w.db")).await;
    let mut log = TestLog::new();
    log.grow(3, "a");
    // A checkpoint of another origin.
    let other = Signer::from_seed("other.example/log", [3; 32]).unwrap();
    let cp = Checkpoint::new("other.example/log", 3, log.root())
        .unwrap()
        .sign(&other)
        .unwrap();
    assert_eq!(status(&w, &witness_request_body(0, &[], &cp)).await, 404);
    // Our origin signed by another key.
    let impostor = Signer::from_seed(ORIGIN, [4; 32]).unwrap();
    let cp = Checkpoint::new(ORIGIN, 3, log.root())
        .unwrap()
        .sign(&impostor)
        .unwrap();
    assert_eq!(status(&w, &witness_request_body(0, &[], &cp)).await, 403);
    // A signature by the right key over altered text.
    let altered = log.checkpoint().replacen("\n3\n", "\n4\n", 1);
    assert_eq!(
        status(&w, &witness_request_body(0, &[], &altered)).await,
        403
    );
    // old > size; no `old` line; garbage.
    let above = witness_request_body(4, &[], &log.checkpoint());
    assert_eq!(status(&w, &above).await, 400);
    assert_eq!(status(&w, &log.checkpoint()).await, 400);
    assert_eq!(status(&w, "old 0\n\nnot a note").await, 400);
    // A size-0 checkpoint must carry the empty tree's root.
    let bad_empty = Checkpoint::new(ORIGIN, 0, log.root())
        .unwrap()
        .sign(&log.signer)
        .unwrap();
    assert_eq!(
        status(&w, &witness_request_body(0, &[], &bad_empty)).await,
        422
    );
    assert_eq!(w.state().latest(ORIGIN).await.unwrap().size, 0);
}

#[tokio::test]
async fn witness_state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut log = TestLog::new();
    log.grow(40, "a");
    {
        let w = witness_at(&path).await;
        assert_eq!(status(&w, &log.body(0)).await, 200);
    }
    let w = witness_at(&path).await;
    let state = w.state().latest(ORIGIN).await.unwrap();
    assert_eq!((state.size, state.root), (40, log.root()));
    // After the restart the witness still knows 40: a stale `old` is a 409, a fork a 422.
    log.grow(2, "a");
    assert_eq!(status(&w, &log.body(0)).await, 409);
    let mut fork = TestLog::new();
    fork.grow(42, "fork");
    assert_eq!(status(&w, &fork.body(40)).await, 422);
    assert_eq!(status(&w, &log.body(40)).await, 200);
}

#[tokio::test]
async fn witness_compare_and_swap_never_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let w = witness_at(&dir.path().join("w.db")).await;
    let mut log = TestLog::new();
    log.grow(8, "a");
    let small = log.body(0);
    let small_size = log.size();
    log.grow(8, "a");
    let big = log.body(0);
    // Both claim the witness is at 0: concurrently, exactly one wins; the other gets 409.
    let (a, b) = tokio::join!(status(&w, &small), status(&w, &big));
    let mut got = [a, b];
    got.sort_unstable();
    assert_eq!(got, [200, 409]);
    let size = w.state().latest(ORIGIN).await.unwrap().size;
    assert!(size == small_size || size == 16, "{size}");
    // The CAS itself: moving from a state that is no longer current does nothing.
    let stale = Witnessed {
        size: 0,
        root: tlog::hash::empty_root(),
        note: String::new(),
    };
    let rollback = Witnessed {
        size: 1,
        root: Hash::default(),
        note: String::new(),
    };
    assert!(
        !w.state()
            .advance(ORIGIN, &stale, &rollback, 0)
            .await
            .unwrap()
    );
    assert_eq!(w.state().latest(ORIGIN).await.unwrap().size, size);
}

#[tokio::test]
async fn witness_http_statuses_follow_the_spec() {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let dir = tempfile::tempdir().unwrap();
    let w = Arc::new(witness_at(&dir.path().join("w.db")).await);
    let mut log = TestLog::new();
    log.grow(4, "a");
    let post = |body: String| {
        http::Request::post("/add-checkpoint")
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    let app = serve::router(w.clone());
    let r = app.clone().oneshot(post(log.body(0))).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.into_body().collect().await.unwrap().to_bytes();
    let line = std::str::from_utf8(&text).unwrap();
    assert!(line.starts_with("\u{2014} witness.example/w1 ") && line.ends_with('\n'));
    log.grow(1, "a");
    let r = app.clone().oneshot(post(log.body(0))).await.unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()[http::header::CONTENT_TYPE], "text/x.tlog.size");
    let text = r.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&text[..], b"4\n");
    let r = app.clone().oneshot(post("old x\n".into())).await.unwrap();
    assert_eq!(r.status(), 400);
    // The monitoring view: the latest cosigned checkpoint (size 4), cosigned afresh.
    let origin_hash = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        ORIGIN.as_bytes(),
    ));
    let get = |path: String| {
        http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let r = app
        .clone()
        .oneshot(get(format!("/{origin_hash}/checkpoint")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.into_body().collect().await.unwrap().to_bytes();
    let policy = WitnessPolicy {
        witnesses: vec![w.verifier_key()],
        quorum: 1,
    };
    let seen = open_checkpoint(&text[..], ORIGIN, &log.signer.verifier_key(), &policy).unwrap();
    assert_eq!(seen.checkpoint.size, 4);
    let r = app
        .oneshot(get(format!("/{}/checkpoint", "0".repeat(64))))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn witness_keygen_writes_a_key_it_can_load_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let vkey = keygen("audit.example/witness", dir.path()).unwrap();
    assert_eq!(vkey.kind(), tlog::note::KeyKind::CosignatureV1);
    let loaded = load_key(&dir.path().join(KEY_FILE)).unwrap();
    assert_eq!(loaded.verifier_key(), vkey);
    let written = std::fs::read_to_string(dir.path().join(VKEY_FILE)).unwrap();
    assert_eq!(VerifierKey::parse(written.trim()).unwrap(), vkey);
    assert!(keygen("audit.example/witness", dir.path()).is_err());
    assert!(keygen("has space", &dir.path().join("x")).is_err());
}
