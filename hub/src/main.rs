#![forbid(unsafe_code)]
//! The `hub` binary: all logic lives in the library (`hub::cli::run`).

fn main() -> std::process::ExitCode {
    hub::cli::run()
}
