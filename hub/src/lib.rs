//! Jishijiu Hub (济时救数据共享核对枢纽): the server and everything stateful.
//!
//! # Layout
//! - [`config`]: the TOML configuration, validated at start-up.
//! - [`console`]: the zh-CN web console under `/console/` (askama templates, CSRF, CSP) and the
//!   Chinese formats the printed documents share.
//! - [`tls`]: the crypto provider (ring), server config, client verification with CRLs, hot reload.
//! - [`identity`]: certificate URI SAN → [`schemas::Identity`]; the [`identity::Caller`] extractor.
//! - [`server`]: the accept loop (handshake deadline, connection cap, graceful shutdown).
//! - [`authz`]: the live Cedar policy engine (hot reload) and the 403 helper.
//! - [`ratelimit`]: per-identity request budgets and the distinct-household (anti-trawling) cap.
//! - [`api`]: routes, the JSON error type, request ids, metrics and tracing layers.
//! - [`store`]: the database interface and its SQLite and PostgreSQL implementations.
//! - [`keys`]: the hub's Ed25519 signing key, the pseudonym HMAC key and the data-encryption keys
//!   (AES-256-GCM sealing of personal fields at rest, with key ids for rotation).
//! - [`pki`]: the development CA behind `hub pki`.
//! - [`telemetry`]: logs, OpenTelemetry export, the Prometheus recorder.
//! - [`app`]: `Application::build(config)` / `run_until_stopped` shared by `main` and tests.
//! - [`cases`]: 救助案件, the closed loop's case: filing, the stage machine, moves, lists.
//! - [`notify`]: the notification outbox, signed webhook delivery, the escalation lease and the
//!   background task that runs the escalation scan ([`cases::escalation`]) on the lease holder.
//! - [`verify`]: authorization letters, verifications, planning and the department fan-out.
//! - [`client`]: `hub client verify|report`, the caseworker's command line.
//! - [`cli`], [`demo`]: the `hub` command line and the demo.
//! - [`witness`]: `hub witness`, a C2SP tlog-witness that cosigns the access log's checkpoints
//!   (run by the audit office or a partner department; the hub's side is [`log::witnessing`]).
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod audit;
pub mod authz;
pub mod cases;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod demo;
pub mod identity;
pub mod keys;
pub mod log;
pub mod notify;
pub mod pki;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod verify;
pub mod warning;
pub mod witness;
