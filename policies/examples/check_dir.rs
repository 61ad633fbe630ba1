//! `cargo run -p policies --example check_dir -- DIR [TABLE]`: load a policy directory and run a
//! decision table, printing what `hub policy check` would print. A development aid; the hub's CLI is
//! the supported entry point.

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: check_dir DIR [TABLE]");
        return std::process::ExitCode::from(2);
    };
    let engine = match policies::PolicyEngine::load(&dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{dir}: {} policies valid", engine.policy_ids().count());
    if let Some(table) = args.next() {
        match policies::run_decision_table(&engine, &table) {
            Ok(report) => {
                print!("{report}");
                if !report.complete() {
                    return std::process::ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("{e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
