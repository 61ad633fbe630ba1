//! Traces leave the process: the real `hub` binary exports its spans over OTLP/HTTP (protobuf)
//! to a receiver in this test, decoded with the OpenTelemetry protocol's own types; every
//! department query carries the W3C `traceparent` of the hub's trace; and the admin port's
//! `/metrics` has the per-department series (requests, errors, timeouts, latency, breaker state).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use connectors::sim::Fault;
use hub::demo::DemoDepartments;
use hub_tests::{TestEnv, raw_request};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use schemas::Department;
use serde_json::Value;

use crate::process::HubProcess;
use crate::verification::{XUZHUANG, households, letter, verification};

/// One span the receiver got.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    /// `key=value`
    attrs: Vec<String>,
    /// Lower-case hex, as in `traceparent`.
    trace_id: String,
    span_id: String,
}

/// Every span the receiver got.
type Received = Arc<Mutex<Vec<Got>>>;

fn text(kv: &KeyValue) -> String {
    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    format!("{}={v}", kv.key)
}

/// An OTLP/HTTP trace receiver on 127.0.0.1: `POST /v1/traces` with a protobuf body.
async fn receiver() -> anyhow::Result<(String, Received)> {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                    return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                };
                let mut spans = sink.lock().expect("receiver lock");
                for rs in req.resource_spans {
                    let service = rs
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|kv| kv.key == "service.name")
                        .map(|kv| text(kv).trim_start_matches("service.name=").to_owned())
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        for span in ss.spans {
                            spans.push(Got {
                                service: service.clone(),
                                attrs: span.attributes.iter().map(text).collect(),
                                name: span.name,
                                trace_id: hex::encode(&span.trace_id),
                                span_id: hex::encode(&span.span_id),
                            });
                        }
                    }
                }
                (
                    axum::http::StatusCode::OK,
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, got))
}

/// Wait (bounded) until the receiver holds a span matching `pred`.
async fn span_where(
    got: &Received,
    what: &str,
    log: &std::path::Path,
    pred: impl Fn(&Got) -> bool,
) -> anyhow::Result<Got> {
    let start = Instant::now();
    loop {
        let spans = got.lock().expect("receiver lock").clone();
        if let Some(s) = spans.iter().find(|s| pred(s)) {
            return Ok(s.clone());
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no {what} reached the receiver; got {spans:?}; hub log:\n{}",
            std::fs::read_to_string(log)?
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A real `hub serve` process wired to the seven simulated departments (in this process), its
/// admin listener on a known port.
struct Proc {
    env: TestEnv,
    deps: DemoDepartments,
    /// Kept for its Drop (kills the process).
    _hub: HubProcess,
    addr: SocketAddr,
    admin: u16,
}

impl Proc {
    async fn start(edit: impl Fn(String) -> String, vars: &[(&str, &str)]) -> anyhow::Result<Proc> {
        let env = TestEnv::new()?;
        let deps = env.start_departments().await?;
        let admin = free_port()?;
        env.config(|t| {
            edit(t.replace(
                "[admin]\nlisten = \"127.0.0.1:0\"",
                &format!("[admin]\nlisten = \"127.0.0.1:{admin}\""),
            ))
        })?;
        let hub =
            HubProcess::start_with_env(&env.config_path(), &env.path().join("hub.log"), vars)?;
        let addr = hub.addr()?;
        Ok(Proc {
            env,
            deps,
            _hub: hub,
            addr,
            admin,
        })
    }

    async fn post(&self, who: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let r = self
            .env
            .http(who)?
            .post(format!("https://localhost:{}{path}", self.addr.port()))
            .json(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// A 低保 verification of `h` as the caseworker, with a letter recorded first.
    async fn verify(&self, h: &schemas::Household, case_ref: &str) -> anyhow::Result<(u16, Value)> {
        let (status, body) = self
            .post(
                "caseworker",
                "/v1/authorizations",
                &letter(h, &["dibao_application"]),
            )
            .await?;
        assert_eq!(status, 201, "{body}");
        let auth = body["id"].as_str().expect("letter id").to_owned();
        self.post(
            "caseworker",
            "/v1/verifications",
            &verification(h, "dibao_application", case_ref, "normal", Some(&auth)),
        )
        .await
    }

    async fn scrape(&self) -> anyhow::Result<String> {
        // reqwest is built without a default TLS provider (plain HTTP here, but it asks).
        hub::tls::install_default_provider();
        Ok(reqwest::Client::builder()
            .no_proxy()
            .build()?
            .get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }
}

/// The value of the series `name{labels}` in a Prometheus text scrape (labels in any order; the
/// series must have exactly these labels).
fn series(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort();
    scrape.lines().find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        let (n, rest) = match key.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (key, ""),
        };
        if n != name {
            return None;
        }
        let mut have: Vec<String> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split(',').map(str::to_owned).collect()
        };
        have.sort();
        (have == want).then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_exports_its_request_spans_over_otlp_http() -> anyhow::Result<()> {
    let (url, got) = receiver().await?;
    let env = TestEnv::new()?;
    env.config(|t| {
        t.replace(
            "[telemetry]\n",
            &format!("[telemetry]\notlp_endpoint = \"{url}\"\nservice_name = \"hub-otlp-test\"\n"),
        )
    })?;
    // The batch exporter's delay, shortened (the SDK reads the standard variable).
    let hub = HubProcess::start_with_env(
        &env.config_path(),
        &env.path().join("hub.log"),
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )?;
    let addr = hub.addr()?;
    let ok = raw_request(addr, env.client_config(Some("caseworker"))?, "/healthz").await;
    assert_eq!(ok.as_deref(), Ok("HTTP/1.1 200 OK"));

    let start = Instant::now();
    let request_span = loop {
        let spans = got.lock().expect("receiver lock").clone();
        if let Some(s) = spans
            .iter()
            .find(|s| s.name == "request" && s.attrs.iter().any(|a| a == "route=/healthz"))
        {
            break s.clone();
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "no request span reached the receiver; got {spans:?}; hub log:\n{}",
            std::fs::read_to_string(env.path().join("hub.log"))?
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        request_span.service, "hub-otlp-test",
        "the configured service name"
    );
    assert!(
        request_span
            .attrs
            .iter()
            .any(|a| a.starts_with("request_id=")),
        "the span carries the request id: {:?}",
        request_span.attrs
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_department_query_carries_the_hubs_trace_context() -> anyhow::Result<()> {
    let (url, got) = receiver().await?;
    let p = Proc::start(
        |t| {
            t.replace(
                "[telemetry]\n",
                &format!(
                    "[telemetry]\notlp_endpoint = \"{url}\"\nservice_name = \"hub-trace-test\"\n"
                ),
            )
        },
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await?;
    let h = households(&p.deps, XUZHUANG)[0].clone();
    let (status, body) = p.verify(&h, "TRACE-1").await?;
    assert_eq!(status, 200, "{body}");

    // Every query every department received carries a valid traceparent, all of one trace (the
    // registration check with civil affairs included).
    let mut parents = Vec::new();
    for (d, handle) in &p.deps.handles {
        for q in handle.queries() {
            let tp = q
                .traceparent
                .clone()
                .unwrap_or_else(|| panic!("{d}: a query without a valid traceparent"));
            let trace_id = connectors::trace::trace_id_of(&tp).expect("valid traceparent");
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts.len(), 4, "{tp}");
            assert_eq!(parts[0], "00", "W3C version 00: {tp}");
            assert_eq!(parts[3], "01", "sampled (the hub exports this trace): {tp}");
            parents.push((*d, trace_id, parts[2].to_owned()));
        }
    }
    assert!(
        parents.len() >= 2,
        "civil affairs and at least one more department: {parents:?}"
    );
    let trace_id = parents[0].1.clone();
    assert!(
        parents.iter().all(|(_, t, _)| *t == trace_id),
        "one verification, one trace: {parents:?}"
    );

    // The parent named in each traceparent is the hub's exported `department_query` span for that
    // department, in the same trace as the hub's request span for POST /v1/verifications.
    let log = p.env.path().join("hub.log");
    for (d, t, parent) in &parents {
        let span = span_where(
            &got,
            &format!("department_query span {parent}"),
            &log,
            |s| s.span_id == *parent,
        )
        .await?;
        assert_eq!(span.name, "department_query");
        assert_eq!(span.service, "hub-trace-test");
        assert_eq!(span.trace_id, *t);
        assert!(
            span.attrs
                .iter()
                .any(|a| *a == format!("department={}", d.code())),
            "{span:?}"
        );
    }
    let request = span_where(&got, "the verification's request span", &log, |s| {
        s.name == "request" && s.attrs.iter().any(|a| a == "route=/v1/verifications")
    })
    .await?;
    assert_eq!(
        request.trace_id, trace_id,
        "the departments' trace is the hub's request trace"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_department_metrics_and_the_breaker_state_are_scraped() -> anyhow::Result<()> {
    // Labor gives up after 300 ms, so that a hanging labor department times out quickly.
    let p = Proc::start(
        |t| {
            t.replace(
                "[departments.labor]\n",
                "[departments.labor]\ntimeout_ms = 300\n",
            )
        },
        &[],
    )
    .await?;
    let labor = &p.deps.handles[&Department::Labor];
    let hh = households(&p.deps, XUZHUANG);
    assert!(hh.len() >= 8, "{} households", hh.len());
    let (status, body) = p.verify(&hh[0], "METRICS-0").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(labor.query_count(), 1, "a 低保 check asks labor");
    let m = p.scrape().await?;
    let labor_series = |m: &str, name: &str, extra: &[(&str, &str)]| {
        let mut l: Vec<(&str, &str)> = vec![("department", "labor")];
        l.extend_from_slice(extra);
        series(m, name, &l)
    };
    assert_eq!(
        labor_series(
            &m,
            "hub_department_requests_total",
            &[("outcome", "answered")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        labor_series(&m, "hub_department_circuit_state", &[]),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        labor_series(&m, "hub_department_request_duration_seconds_count", &[]),
        Some(1.0),
        "{m}"
    );
    assert!(
        labor_series(
            &m,
            "hub_department_request_duration_seconds_bucket",
            &[("le", "+Inf")]
        ) == Some(1.0),
        "a histogram with buckets: {m}"
    );
    // Every configured department has a breaker gauge, closed.
    for d in Department::ALL {
        assert_eq!(
            series(
                &m,
                "hub_department_circuit_state",
                &[("department", d.code())]
            ),
            Some(0.0),
            "{d}: {m}"
        );
    }
    assert_eq!(
        labor_series(&m, "hub_department_timeouts_total", &[]),
        None,
        "{m}"
    );

    // Labor hangs: each check times out at labor until the breaker opens (5 consecutive
    // failures), then labor is no longer asked (circuit_open).
    labor.set_fault(Fault::Hang);
    let mut open = false;
    let mut next = hh.len();
    for (i, h) in hh.iter().enumerate().skip(1) {
        let (status, body) = p.verify(h, &format!("METRICS-{i}")).await?;
        assert!(status < 500, "{status} {body}");
        let m = p.scrape().await?;
        if labor_series(&m, "hub_department_circuit_state", &[]) == Some(2.0) {
            open = true;
            next = i + 1;
            break;
        }
    }
    assert!(open, "the breaker opened after labor's timeouts");
    let asked_while_hanging = (labor.query_count() - 1) as f64;
    assert_eq!(asked_while_hanging, 5.0, "the breaker's threshold");
    let m = p.scrape().await?;
    assert_eq!(
        labor_series(&m, "hub_department_timeouts_total", &[]),
        Some(asked_while_hanging),
        "{m}"
    );
    assert_eq!(
        labor_series(
            &m,
            "hub_department_requests_total",
            &[("outcome", "timeout")]
        ),
        Some(asked_while_hanging),
        "{m}"
    );
    assert_eq!(
        labor_series(&m, "hub_department_errors_total", &[("code", "timeout")]),
        Some(asked_while_hanging),
        "{m}"
    );
    // The next check does not reach labor: refused by the open breaker (cool-down 30 s).
    let mut completed = false;
    for (i, h) in hh.iter().enumerate().skip(next) {
        let (status, _) = p.verify(h, &format!("METRICS-OPEN-{i}")).await?;
        if status == 200 {
            completed = true;
            break;
        }
    }
    assert!(completed, "a check completed while the breaker was open");
    assert_eq!(labor.query_count() as f64, asked_while_hanging + 1.0);
    let m = p.scrape().await?;
    assert_eq!(
        labor_series(
            &m,
            "hub_department_requests_total",
            &[("outcome", "circuit_open")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        labor_series(
            &m,
            "hub_department_errors_total",
            &[("code", "circuit_open")]
        ),
        Some(1.0),
        "{m}"
    );
    // The other departments answered every time and stay closed; nothing in the scrape names a
    // resident.
    assert_eq!(
        series(
            &m,
            "hub_department_circuit_state",
            &[("department", "health")]
        ),
        Some(0.0)
    );
    for h in &hh {
        for member in &h.members {
            assert!(
                !m.contains(member.resident_id.as_str()),
                "a resident ID in /metrics"
            );
        }
    }
    // The scrape-time gauges of the alert rules are there too.
    assert!(series(&m, "hub_escalations_open", &[]).is_some(), "{m}");
    assert!(m.contains("hub_crl_next_update_timestamp_seconds{"), "{m}");
    Ok(())
}
