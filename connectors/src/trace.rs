//! 链路追踪: the W3C trace context (`traceparent`, `tracestate`) on the department wire.
//!
//! The hub's client ([`crate::remote`]) injects the context of the current span — the
//! `department_query` span, a child of the verification's spans — into every query's headers; the
//! department's server ([`crate::adapter::server`], which the simulated departments run too)
//! extracts it and makes its own `department_answer` span a child of the hub's, so one trace covers
//! the hub and the departments. Both use the OpenTelemetry propagator ([`TraceContextPropagator`]).
//!
//! Invariant: only trace and span ids travel; no attribute of a span, and nothing about the query,
//! goes into these headers.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header a department reads the trace from.
pub const TRACEPARENT: &str = "traceparent";

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// The trace-context headers of `span` (empty when no OpenTelemetry layer gives it a valid
/// context).
pub fn headers_of(span: &tracing::Span) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
    }
    headers
}

/// Make `span` a child of the trace context in `headers`, if they carry a valid one. Returns
/// whether they did. Without an OpenTelemetry layer in the subscriber the span stays as it is.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) -> bool {
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if !cx.span().span_context().is_valid() {
        return false;
    }
    let _ = span.set_parent(cx);
    true
}

/// The trace id of a valid `traceparent` header value (`00-<trace id>-<parent id>-<flags>`),
/// parsed by the propagator.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let mut headers = HeaderMap::new();
    headers.insert(TRACEPARENT, HeaderValue::from_str(traceparent).ok()?);
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_parsed_and_a_bad_one_is_not() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id_of(tp).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(trace_id_of("garbage"), None);
    }

    #[test]
    fn without_an_opentelemetry_layer_nothing_is_injected() {
        let span = tracing::info_span!("department_query");
        assert!(headers_of(&span).is_empty());
    }
}
