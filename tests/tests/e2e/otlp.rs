//! Traces leave the process: the real `hub` binary exports its spans over OTLP/HTTP (protobuf)
//! to a receiver in this test, decoded with the OpenTelemetry protocol's own types.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use hub_tests::{TestEnv, raw_request};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

use crate::process::HubProcess;

/// Every span the receiver got: (service name, span name, attributes as `key=value`).
type Received = Arc<Mutex<Vec<(String, String, Vec<String>)>>>;

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
                            let attrs = span.attributes.iter().map(text).collect();
                            spans.push((service.clone(), span.name, attrs));
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
        if let Some(s) = spans.iter().find(|(_, name, attrs)| {
            name == "request" && attrs.iter().any(|a| a == "route=/healthz")
        }) {
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
        request_span.0, "hub-otlp-test",
        "the configured service name"
    );
    assert!(
        request_span.2.iter().any(|a| a.starts_with("request_id=")),
        "the span carries the request id: {:?}",
        request_span.2
    );
    Ok(())
}
