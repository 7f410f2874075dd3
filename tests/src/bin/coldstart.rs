//! `make bench-coldstart`: each function's cold start (see `tributary_tests::coldstart`).
//!
//! `coldstart [--starts N] [--function NAME]`

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match tributary_tests::coldstart::parse_args(&args) {
        Ok((starts, only)) => tributary_tests::coldstart::run(starts, only).await,
        Err(message) => Err(message),
    };
    match outcome {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("coldstart: {message}");
            ExitCode::FAILURE
        }
    }
}
