#![forbid(unsafe_code)]
//! The `hub` command, built inside the end-to-end crate so tests can start it as a real process
//! (`env!("CARGO_BIN_EXE_hub-e2e")`). Same code path as the `hub` binary.

fn main() -> std::process::ExitCode {
    hub::cli::run()
}
