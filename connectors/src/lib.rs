//! How the hub reaches partner departments (部门) through connector protocol v1.
//!
//! # Layout
//! - [`connector`]: the [`Connector`] trait and [`VerifiedAnswer`].
//! - [`remote`]: [`RemoteConnector`], protocol v1 over HTTPS + mTLS with per-department timeout,
//!   bounded concurrency, connect-only retries and a circuit breaker.
//! - [`breaker`]: the circuit breaker (closed → open → half-open).
//! - [`error`]: [`ConnectorError`] with stable codes and whose fault it was ([`Fault`]).
//! - [`tls`]: the per-department rustls client configuration (ring provider, department CA only).
//! - [`trace`]: the W3C trace context (`traceparent`) sent with every query and continued by the
//!   department's server.
//! - `adapter`: the department-side adapter (serves protocol v1 from a SQL database).
//! - `sim`: the seven-department simulator.
//!
//! Architecture invariant: only this crate knows the department wire; it depends on `schemas` only.
#![forbid(unsafe_code)]

pub mod breaker;
pub mod connector;
pub mod error;
pub mod remote;
pub mod tls;
pub mod trace;

pub mod adapter;
pub mod sim;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use connector::{Connector, VerifiedAnswer};
pub use error::{ConnectorError, Fault};
pub use remote::{RemoteConfig, RemoteConnector, RetryPolicy};
