//! 部门侧适配器: the department-side adapter — serve connector protocol v1 over mTLS in front of a
//! department's own SQL database, from a mapping file, without writing code.
//!
//! - [`mapping`]: the TOML mapping file (which SQL query answers which fact kind) and its checks.
//! - [`sql`]: the [`source::FactSource`] that runs those queries through `sqlx::Any`.
//! - [`source`]: the trait the server asks for facts (also implemented by the simulator).
//! - [`server`]: routes, query handling, signing, query log, and the mTLS accept loop.
//! - [`tls`]: rustls server configuration (ring, client certificates required).
//! - [`signing`]: the department's Ed25519 answer-signing key (generate, load, describe).
//!
//! The `connector` binary (`src/bin/connector.rs`) wires these together; tests and the simulator
//! call the same [`server::serve`].

pub mod mapping;
pub mod server;
pub mod signing;
pub mod source;
pub mod sql;
pub mod tls;

pub use mapping::Mapping;
pub use server::{QueryLog, QueryRecord, ServeOptions, Service};
pub use source::FactSource;
pub use sql::SqlFactSource;
pub use tls::ServerTls;
