//! Cost of the policy layer on the request path: one `authorize` (entities built from the identity,
//! Cedar evaluation, reason lookup), and one full `load` (parse + strict validation + profiles +
//! standards), which bounds how long a hot reload takes.

use criterion::{Criterion, criterion_group, criterion_main};
use policies::{Action, AuthorizationStatus, PolicyEngine, RequestCtx, ResourceCtx};
use schemas::{DivisionCode, Identity, Purpose, Role, Urgency};

fn identity(division: &str) -> Identity {
    Identity {
        uri: "spiffe://jishijiu.jining/caseworker/mz/370811002/cw-0001".into(),
        principal: "cw-0001".into(),
        role: Role::Caseworker,
        organisation: "mz-370811002".into(),
        division: DivisionCode::parse(division).expect("division"),
        display_name: "bench".into(),
        serial: "01".into(),
    }
}

fn bench(c: &mut Criterion) {
    let dir = PolicyEngine::shipped_dir();
    let engine = PolicyEngine::load(&dir).expect("shipped policies load");
    let resource = ResourceCtx {
        region: Some(DivisionCode::parse("370811002").expect("region")),
        department: None,
        ..Default::default()
    };
    let request = RequestCtx {
        purpose: Some(Purpose::DibaoApplication),
        urgency: Urgency::Normal,
        authorization: AuthorizationStatus::VALID,
        raw_fact_kinds: vec![],
        ..Default::default()
    };
    let own = identity("370811002");
    let other = identity("370811005");
    c.bench_function("authorize/allow", |b| {
        b.iter(|| engine.authorize(&own, Action::RequestVerification, &resource, &request))
    });
    c.bench_function("authorize/deny_jurisdiction", |b| {
        b.iter(|| engine.authorize(&other, Action::RequestVerification, &resource, &request))
    });
    c.bench_function("load/shipped_dir", |b| {
        b.iter(|| PolicyEngine::load(&dir).expect("load"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
