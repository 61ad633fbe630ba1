//! End-to-end tests: one test binary, one module per feature (zero2prod style).
//! Real mTLS on 127.0.0.1, real SQLite files, the real PostgreSQL on this machine, real processes.

mod access_log;
mod authz_table;
mod bad_input;
mod browser;
mod case_cli;
mod cases;
mod connections;
mod console;
mod console_case;
mod console_check;
mod declared_facts;
mod demo;
mod departments;
mod escalation;
mod events;
mod handshake;
mod household_check;
mod jurisdiction;
mod log_integrity;
mod otlp;
mod policy;
mod process;
mod reload;
mod replicas;
mod shared_limits;
mod slips;
mod slowloris;
mod store;
mod supervision;
mod trawling;
mod verification;
mod village;
mod warnings;
mod withholding;
mod witness;
