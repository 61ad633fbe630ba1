//! Telemetry: structured logs (JSON by default), OpenTelemetry trace export over OTLP/HTTP
//! (protobuf) when configured, and the Prometheus recorder behind the admin listener.
//!
//! Invariant: nothing here ever records a resident ID. Spans carry the request id, the route template
//! (`MatchedPath`, never the raw URI with ids in it) and the caller's principal.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, TelemetryConfig};

/// Keeps the OTel provider alive; flushes it on drop.
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            // Why a thread: the exporter's shutdown blocks on its last export and must not run
            // on a runtime worker (rust-stack.md §3.3).
            let _ = std::thread::spawn(move || p.shutdown()).join();
        }
    }
}

/// Install the global subscriber. Call once, inside the tokio runtime.
pub fn init(cfg: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log_filter));
    let fmt = match cfg.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        // Colour only on a terminal: a log redirected to a file has no escape codes.
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // Always an OpenTelemetry layer, so that every span has a trace context and every department
    // query carries a W3C `traceparent` (connectors::trace). Without an endpoint the provider has
    // no exporter and samples nothing it starts itself (ids only, no span data kept); a span whose
    // parent came sampled from elsewhere keeps that decision.
    let (otel, provider) = match &cfg.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_http_client(
                    reqwest::Client::builder()
                        .no_proxy()
                        .connect_timeout(std::time::Duration::from_secs(5))
                        .build()?,
                )
                .with_endpoint(traces_url(endpoint))
                .build()?;
            // The batch processor runs on the tokio runtime: the HTTP client needs its reactor
            // (the SDK's default processor thread has none).
            let processor =
                opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .build();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_span_processor(processor)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(cfg.service_name.clone())
                        .build(),
                )
                .build();
            let tracer = provider.tracer("jishijiu-hub");
            (Some(otel_layer(tracer)), Some(provider))
        }
        None => {
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
                    opentelemetry_sdk::trace::Sampler::AlwaysOff,
                )))
                .build();
            let tracer = provider.tracer("jishijiu-hub");
            (Some(otel_layer(tracer)), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

/// The OpenTelemetry layer without the per-span extras that cost on every request: busy/idle
/// times (two clock reads and lookups at each enter and exit), the source location and the thread
/// (attributes built for every span, exported or not).
fn otel_layer<S>(
    tracer: opentelemetry_sdk::trace::SdkTracer,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
}

/// The collector's trace URL: `telemetry.otlp_endpoint` is the OTLP/HTTP base URL (as in
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://127.0.0.1:4318`); the signal path is added unless
/// the URL already names it.
fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Department latencies as a real histogram (`_bucket` series, for the dashboard's
        // quantiles across replicas); other timings stay summaries.
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(
                    crate::verify::metrics::DEPARTMENT_DURATION.to_owned(),
                ),
                crate::verify::metrics::DEPARTMENT_DURATION_BUCKETS,
            )
            .expect("non-empty bucket list")
            .build_recorder();
        let handle = recorder.handle();
        // In tests several hubs share a process; only the first install wins, which is fine: all
        // of them then record into the same registry.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_trace_path_is_added_once() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
    }
}
