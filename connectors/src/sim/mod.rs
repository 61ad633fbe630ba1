//! 模拟器: a deterministic synthetic population and seven simulated departments serving it over
//! connector protocol v1, with fault switches — for tests and the demo.
//!
//! - [`population`]: the ground truth (households, people, every department's data, awkward cases).
//! - [`divisions`]: Jining's real counties and townships (embedded CSV).
//! - [`facts`]: each department's view of a person as protocol fact values.
//! - [`server`]: [`SimDepartment::spawn`] — an in-process department on the adapter's server.
//! - [`faults`]: the runtime fault switches (slow, hang, refuse, malformed JSON, bad signature,
//!   close the connection).
//! - [`export`]: write one department's data to SQLite or PostgreSQL with a matching mapping file,
//!   so the real `connector` binary can serve simulated data.
//! - [`pki`]: throw-away certificates for tests and the demo (rcgen).
//! - [`rng`]: the simulator's own deterministic RNG.

pub mod divisions;
pub mod export;
pub mod facts;
pub mod faults;
pub mod pki;
pub mod population;
pub mod rng;
pub mod server;
pub mod villages;

pub use faults::{Fault, FaultSwitch};
pub use population::{
    AwkwardCase, Household, HouseholdId, Person, PersonId, Population, PopulationConfig, Side,
};
pub use server::{PopulationSource, SimDepartment, SimDepartmentHandle};
