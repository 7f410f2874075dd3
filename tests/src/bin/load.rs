//! `make load`: the demo's stack under volume (see `tributary_tests::load`).
//!
//! `load [--deliveries N] [--leads N] [--batch N] [--senders N] [--instances N]`

use std::process::ExitCode;
use tributary_tests::load::{LoadPlan, run};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = match LoadPlan::from_args(&args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("load: {message}");
            return ExitCode::FAILURE;
        }
    };
    match run(plan).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("load: {message}");
            ExitCode::FAILURE
        }
    }
}
