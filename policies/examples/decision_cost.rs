//! `cargo build --workspace --locked --example decision_cost && target/debug/examples/decision_cost [N]`:
//! the mean cost of one Cedar decision, measured without criterion (a development aid for a loaded
//! machine; the `authorize` criterion bench is the reference). Prints µs per decision for the
//! decisions of one household verification: the same caseworker again and again (the common case),
//! and a different caseworker every time (nothing cached for them yet); and the time to load the
//! shipped policies (Cedar's parser and validator), median of five.

use std::time::Instant;

use policies::{Action, AuthorizationStatus, PolicyEngine, RequestCtx, ResourceCtx};
use schemas::{DivisionCode, Identity, Purpose, Role, Urgency};

fn caseworker(n: usize) -> Identity {
    Identity {
        uri: format!("spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-{n:04}"),
        principal: format!("cw-{n:04}"),
        role: Role::Caseworker,
        organisation: "mz-370811002".into(),
        division: DivisionCode::parse("370811002").expect("division"),
        display_name: "bench".into(),
        serial: "01".into(),
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000);
    // Loading parses and validates every policy file (Cedar's parser): at start-up and on reload.
    let mut loads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        PolicyEngine::load(PolicyEngine::shipped_dir()).expect("shipped policies");
        loads.push(started.elapsed().as_secs_f64() * 1e3);
    }
    loads.sort_by(f64::total_cmp);
    println!(
        "policy load (parse + validate): {:.1} ms median of 5",
        loads[2]
    );
    let engine = PolicyEngine::load(PolicyEngine::shipped_dir()).expect("shipped policies");
    let household = ResourceCtx {
        region: Some(DivisionCode::parse("370811002").expect("region")),
        member_count: 4,
        ..Default::default()
    };
    let ctx = RequestCtx {
        purpose: Some(Purpose::DibaoApplication),
        urgency: Urgency::Normal,
        authorization: AuthorizationStatus::VALID,
        ..Default::default()
    };
    let view = RequestCtx {
        purpose: Some(Purpose::DibaoApplication),
        ..Default::default()
    };
    let same = caseworker(1);
    let run = |label: &str, who: &dyn Fn(usize) -> Identity| {
        let people: Vec<Identity> = (0..n).map(who).collect();
        let started = Instant::now();
        let mut allowed = 0;
        for p in &people {
            allowed += usize::from(
                engine
                    .authorize(p, Action::RequestVerification, &household, &ctx)
                    .allowed,
            );
            allowed += usize::from(
                engine
                    .authorize(p, Action::ViewReport, &household, &view)
                    .allowed,
            );
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / (2 * n) as f64;
        println!(
            "{label}: {per:.1} µs per decision ({allowed} of {} allowed)",
            2 * n
        );
    };
    run("same caseworker", &|_| same.clone());
    run("new caseworker each time", &|i| caseworker(i + 2));
}
