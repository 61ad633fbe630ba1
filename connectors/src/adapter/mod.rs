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
//!
//! A department the hub's code does not know (应急管理, 退役军人事务, …) and the fact kinds it
//! declares come from the hub's `departments.toml` ([`load_departments`], the binary's
//! `--policies`): loaded before the mapping file, they make its `department` and `facts` keys valid.

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

/// Load `departments.toml` (a policy directory holding it, or the file itself) and register its
/// departments and declared fact kinds, so that a mapping file may name them. The file is checked
/// as the hub checks it (`policies::Departments`); a bad one is refused whole, naming the key.
pub fn load_departments(
    path: &std::path::Path,
) -> Result<policies::Departments, policies::PolicyError> {
    let file = if path.is_dir() {
        path.join(policies::departments::DEPARTMENTS_FILE)
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| policies::PolicyError::Io {
        path: file.clone(),
        source: e,
    })?;
    policies::Departments::parse(&file, &text)
}
