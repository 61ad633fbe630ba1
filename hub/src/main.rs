#![forbid(unsafe_code)]
//! The `hub` binary: all logic lives in the library (`hub::cli::main`).

fn main() -> anyhow::Result<()> {
    hub::cli::main()
}
